import { useCallback, useEffect, useState } from 'react'
import * as api from './api/client'
import type { Me } from './api/types'
import { Login } from './screens/Login'
import { Shell } from './Shell'
import { SessionContext } from './session'
import { forgetAll as forgetRememberedUploads } from './upload/resume'

type State = { phase: 'starting' } | { phase: 'out'; message?: string } | { phase: 'in'; me: Me }

export function App() {
  const [state, setState] = useState<State>({ phase: 'starting' })

  const loadMe = useCallback(async () => {
    try {
      const me = await api.getJson<Me>('/api/v1/me')
      setState({ phase: 'in', me })
    } catch (e) {
      setState({ phase: 'out', message: api.currentToken() ? String(e) : undefined })
    }
  }, [])

  useEffect(() => {
    api.setExpiryHandler(() => setState({ phase: 'out', message: 'Your session expired. Please sign in again.' }))
    // Restore the session from the refresh cookie, if any.
    void api.refreshSession().then((ok) => (ok ? loadMe() : setState({ phase: 'out' })))
  }, [loadMe])

  if (state.phase === 'starting') {
    return (
      <p className="centered" role="status">
        Loading…
      </p>
    )
  }
  if (state.phase === 'out') {
    return <Login message={state.message} onSignedIn={() => void loadMe()} />
  }
  const signOut = async () => {
    await api.logout()
    forgetRememberedUploads()
    setState({ phase: 'out', message: 'You are signed out.' })
  }
  return (
    <SessionContext.Provider value={{ me: state.me, reloadMe: () => void loadMe(), signOut }}>
      <Shell />
    </SessionContext.Provider>
  )
}
