import { useState, type FormEvent } from 'react'
import * as api from '../api/client'
import { Dialog } from '../components/Dialog'
import { ErrorNote, OkNote } from '../components/Notice'
import { baseName, formatDate } from '../format'
import { errorText, useLoad } from '../hooks'

interface RetentionState {
  mode: 'GOVERNANCE' | 'COMPLIANCE' | null
  retain_until: string | null
  active?: boolean
  legal_hold?: string
}

/** Object retention and legal hold (needs `manage` on the bucket). */
export function LockDialog({ bucket, objectKey, onClose }: { bucket: string; objectKey: string; onClose: () => void }) {
  const retentionPath = api.bucketPath(bucket, '/retention/' + api.encodeKey(objectKey))
  const holdPath = api.bucketPath(bucket, '/legal-hold/' + api.encodeKey(objectKey))
  const retention = useLoad(() => api.getJson<RetentionState>(retentionPath), [retentionPath])
  const hold = useLoad(() => api.getJson<{ status: 'ON' | 'OFF' }>(holdPath), [holdPath])
  const [mode, setMode] = useState<'GOVERNANCE' | 'COMPLIANCE'>('GOVERNANCE')
  const [until, setUntil] = useState('')
  const [bypass, setBypass] = useState(false)
  const [error, setError] = useState<string>()
  const [message, setMessage] = useState<string>()

  async function setHold(status: 'ON' | 'OFF') {
    setError(undefined)
    try {
      await api.sendJson('PUT', holdPath, { status })
      setMessage(`Legal hold is ${status === 'ON' ? 'on' : 'off'}.`)
      hold.reload()
      retention.reload()
    } catch (e) {
      setError(errorText(e))
    }
  }

  async function saveRetention(e: FormEvent, clear = false) {
    e.preventDefault()
    setError(undefined)
    const headers: Record<string, string> = bypass ? { 'X-Bypass-Governance-Retention': 'true' } : {}
    const body = clear ? {} : { mode, retain_until: new Date(until).toISOString() }
    try {
      await api.sendJson('PUT', retentionPath, body, headers)
      setMessage(clear ? 'Retention removed.' : 'Retention saved.')
      retention.reload()
    } catch (err) {
      setError(errorText(err))
    }
  }

  const current = retention.data
  const holdOn = hold.data?.status === 'ON'
  return (
    <Dialog title={`Retention of “${baseName(objectKey)}”`} onClose={onClose}>
      <section aria-labelledby="hold-title">
        <h3 id="hold-title">Legal hold</h3>
        <p>
          Legal hold is <strong data-testid="legal-hold-status">{hold.data ? (holdOn ? 'ON' : 'OFF') : '…'}</strong>.
        </p>
        <button type="button" onClick={() => void setHold(holdOn ? 'OFF' : 'ON')} disabled={!hold.data}>
          {holdOn ? 'Release legal hold' : 'Place legal hold'}
        </button>
      </section>
      <section aria-labelledby="ret-title">
        <h3 id="ret-title">Retention</h3>
        <p>
          {current?.mode
            ? `${current.mode} until ${formatDate(current.retain_until)}${current.active === false ? ' (expired)' : ''}`
            : 'No retention period.'}
        </p>
        <form onSubmit={(e) => void saveRetention(e)}>
          <div className="field">
            <label htmlFor="ret-mode">Mode</label>
            <select id="ret-mode" value={mode} onChange={(e) => setMode(e.target.value as 'GOVERNANCE' | 'COMPLIANCE')}>
              <option value="GOVERNANCE">Governance</option>
              <option value="COMPLIANCE">Compliance (cannot be shortened by anyone)</option>
            </select>
          </div>
          <div className="field">
            <label htmlFor="ret-until">Retain until</label>
            <input id="ret-until" type="datetime-local" value={until} onChange={(e) => setUntil(e.target.value)} required />
          </div>
          <label className="check">
            <input type="checkbox" checked={bypass} onChange={(e) => setBypass(e.target.checked)} />
            Bypass governance retention (shorten or remove)
          </label>
          <div className="actions">
            <button type="button" onClick={(e) => void saveRetention(e, true)} disabled={!current?.mode}>
              Remove retention
            </button>
            <button type="submit" className="primary">
              Save retention
            </button>
          </div>
        </form>
      </section>
      <OkNote>{message}</OkNote>
      <ErrorNote>{error ?? retention.error ?? hold.error}</ErrorNote>
    </Dialog>
  )
}
