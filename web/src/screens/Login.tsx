import { useEffect, useRef, useState, type FormEvent } from 'react'
import * as api from '../api/client'
import { ErrorNote, OkNote } from '../components/Notice'
import { errorText } from '../hooks'

export function Login(props: { message?: string; onSignedIn: () => void }) {
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [mfaToken, setMfaToken] = useState<string>()
  const [code, setCode] = useState('')
  const [error, setError] = useState<string>()
  const [busy, setBusy] = useState(false)
  const codeRef = useRef<HTMLInputElement>(null)

  useEffect(() => {
    if (mfaToken) codeRef.current?.focus()
  }, [mfaToken])

  async function submit(e: FormEvent) {
    e.preventDefault()
    setBusy(true)
    setError(undefined)
    try {
      if (mfaToken) {
        await api.completeMfa(mfaToken, code.trim())
        props.onSignedIn()
      } else {
        const result = await api.login(username, password)
        if (result.kind === 'mfa') setMfaToken(result.mfaToken)
        else props.onSignedIn()
      }
    } catch (err) {
      if (mfaToken && err instanceof api.ApiError && err.message.includes('log in again')) {
        setMfaToken(undefined)
        setCode('')
      }
      setError(errorText(err))
    } finally {
      setBusy(false)
    }
  }

  return (
    <main className="login">
      <form className="card" onSubmit={(e) => void submit(e)} aria-labelledby="login-title">
        <h1 id="login-title">Coffer</h1>
        <OkNote>{props.message}</OkNote>
        {mfaToken ? (
          <div className="field">
            <label htmlFor="code">Authentication code</label>
            <input
              id="code"
              ref={codeRef}
              inputMode="numeric"
              autoComplete="one-time-code"
              value={code}
              onChange={(e) => setCode(e.target.value)}
              required
            />
            <small>Enter the 6-digit code from your authenticator app, or a recovery code.</small>
          </div>
        ) : (
          <>
            <div className="field">
              <label htmlFor="username">Username</label>
              <input
                id="username"
                autoComplete="username"
                value={username}
                onChange={(e) => setUsername(e.target.value)}
                required
                autoFocus
              />
            </div>
            <div className="field">
              <label htmlFor="password">Password</label>
              <input
                id="password"
                type="password"
                autoComplete="current-password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                required
              />
            </div>
          </>
        )}
        <ErrorNote>{error}</ErrorNote>
        <button type="submit" className="primary" disabled={busy}>
          {mfaToken ? 'Verify' : 'Sign in'}
        </button>
      </form>
    </main>
  )
}
