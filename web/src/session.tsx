import { createContext, useContext } from 'react'
import type { Me } from './api/types'

export interface Session {
  me: Me
  reloadMe: () => void
  /** Ends the session; rejects (and keeps it) when the server did not end it. */
  signOut: () => Promise<void>
}

export const SessionContext = createContext<Session | null>(null)

export function useSession(): Session {
  const session = useContext(SessionContext)
  if (!session) throw new Error('no session')
  return session
}
