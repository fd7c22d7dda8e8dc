import { useState, type FormEvent } from 'react'
import * as api from '../api/client'
import { ErrorNote, OkNote } from '../components/Notice'
import { errorText } from '../hooks'

export function PasswordForm() {
  const [current, setCurrent] = useState('')
  const [next, setNext] = useState('')
  const [error, setError] = useState<string>()
  const [done, setDone] = useState<string>()

  async function submit(e: FormEvent) {
    e.preventDefault()
    setError(undefined)
    setDone(undefined)
    try {
      await api.sendJson('POST', '/api/v1/me/password', { current_password: current, new_password: next })
      setCurrent('')
      setNext('')
      setDone('Password changed.')
    } catch (err) {
      setError(errorText(err))
    }
  }

  return (
    <form className="card" onSubmit={(e) => void submit(e)} aria-labelledby="pw-title">
      <h2 id="pw-title">Change password</h2>
      <div className="field">
        <label htmlFor="pw-current">Current password</label>
        <input id="pw-current" type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} required />
      </div>
      <div className="field">
        <label htmlFor="pw-new">New password</label>
        <input id="pw-new" type="password" autoComplete="new-password" minLength={10} value={next} onChange={(e) => setNext(e.target.value)} required />
        <small>At least 10 characters, not a common password, not your username.</small>
      </div>
      <ErrorNote>{error}</ErrorNote>
      <OkNote>{done}</OkNote>
      <button type="submit">Change password</button>
    </form>
  )
}
