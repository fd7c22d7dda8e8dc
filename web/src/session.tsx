import { createContext, useContext } from 'react'
import type { Me } from './api/types'

export interface Session {
  me: Me
  reloadMe: () => void
  signOut: () => void
}

export const SessionContext = createContext<Session | null>(null)

export function useSession(): Session {
  const session = useContext(SessionContext)
  if (!session) throw new Error('no session')
  return session
}
