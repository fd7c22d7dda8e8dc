import { useState, type FormEvent } from 'react'
import * as api from '../api/client'
import { CopyField } from '../components/CopyField'
import { ErrorNote, OkNote } from '../components/Notice'
import { errorText } from '../hooks'
import { useSession } from '../session'

interface Enrolment {
  secret: string
  otpauth_url: string
  qr_png_base64: string
}

export function TotpSection() {
  const { me, reloadMe } = useSession()
  const [enrolment, setEnrolment] = useState<Enrolment>()
  const [code, setCode] = useState('')
  const [codes, setCodes] = useState<string[]>()
  const [error, setError] = useState<string>()
  const [message, setMessage] = useState<string>()

  async function start() {
    setError(undefined)
    try {
      setEnrolment(await api.sendJson<Enrolment>('POST', '/api/v1/me/mfa/totp'))
    } catch (e) {
      setError(errorText(e))
    }
  }

  async function confirm(e: FormEvent) {
    e.preventDefault()
    setError(undefined)
    try {
      const result = await api.sendJson<{ recovery_codes: string[] }>('POST', '/api/v1/me/mfa/totp/confirm', { code: code.trim() })
      setCodes(result.recovery_codes)
      setEnrolment(undefined)
      setCode('')
      reloadMe()
    } catch (err) {
      setError(errorText(err))
    }
  }

  async function disable(e: FormEvent) {
    e.preventDefault()
    setError(undefined)
    try {
      await api.sendJson('DELETE', '/api/v1/me/mfa/totp', { code: code.trim() })
      setCode('')
      setMessage('Two-factor authentication is off.')
      reloadMe()
    } catch (err) {
      setError(errorText(err))
    }
  }

  return (
    <section className="card" aria-labelledby="totp-title">
      <h2 id="totp-title">Two-factor authentication</h2>
      <p>
        Status: <strong data-testid="mfa-status">{me.mfa_enabled ? 'on' : 'off'}</strong>
      </p>
      {codes && (
        <div className="recovery" role="status">
          <p>
            <strong>Save these recovery codes now.</strong> Each works once if you lose your authenticator; they are not
            shown again.
          </p>
          <ul className="codes" data-testid="recovery-codes">
            {codes.map((c) => (
              <li key={c}>
                <code>{c}</code>
              </li>
            ))}
          </ul>
          <button type="button" onClick={() => setCodes(undefined)}>
            I have saved them
          </button>
        </div>
      )}
      {!me.mfa_enabled && !enrolment && (
        <button type="button" onClick={() => void start()}>
          Set up an authenticator app
        </button>
      )}
      {enrolment && (
        <form onSubmit={(e) => void confirm(e)}>
          <p>Scan this QR code with your authenticator app, or enter the secret by hand.</p>
          <img className="qr" src={`data:image/png;base64,${enrolment.qr_png_base64}`} alt="QR code for the authenticator app" />
          <CopyField label="Secret" value={enrolment.secret} />
          <div className="field">
            <label htmlFor="totp-confirm">Code from the app</label>
            <input id="totp-confirm" inputMode="numeric" autoComplete="one-time-code" value={code} onChange={(e) => setCode(e.target.value)} required />
          </div>
          <button type="submit" className="primary">
            Confirm and turn on
          </button>
        </form>
      )}
      {me.mfa_enabled && (
        <form onSubmit={(e) => void disable(e)}>
          <div className="field">
            <label htmlFor="totp-disable">Current code to turn it off</label>
            <input id="totp-disable" inputMode="numeric" autoComplete="one-time-code" value={code} onChange={(e) => setCode(e.target.value)} required />
          </div>
          <button type="submit" className="danger">
            Turn off two-factor authentication
          </button>
        </form>
      )}
      <ErrorNote>{error}</ErrorNote>
      <OkNote>{message}</OkNote>
    </section>
  )
}
