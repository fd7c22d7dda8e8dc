import { useState, type FormEvent } from 'react'
import * as api from '../api/client'
import type { Signed } from '../api/types'
import { CopyField } from '../components/CopyField'
import { Dialog } from '../components/Dialog'
import { ErrorNote } from '../components/Notice'
import { baseName, formatDate } from '../format'
import { errorText } from '../hooks'

export function PresignDialog({ bucket, objectKey, onClose }: { bucket: string; objectKey: string; onClose: () => void }) {
  const [method, setMethod] = useState<'GET' | 'PUT'>('GET')
  const [minutes, setMinutes] = useState('60')
  const [signed, setSigned] = useState<Signed>()
  const [error, setError] = useState<string>()

  async function submit(e: FormEvent) {
    e.preventDefault()
    setError(undefined)
    try {
      setSigned(
        await api.sendJson<Signed>('POST', '/api/v1/presign', {
          bucket,
          key: objectKey,
          method,
          expires_in_seconds: Math.round(Number(minutes) * 60),
        }),
      )
    } catch (err) {
      setError(errorText(err))
    }
  }

  return (
    <Dialog title={`Presigned URL for “${baseName(objectKey)}”`} onClose={onClose}>
      <form onSubmit={(e) => void submit(e)}>
        <p className="muted">A URL an app can use without credentials until it expires.</p>
        <div className="field">
          <label htmlFor="presign-method">Method</label>
          <select id="presign-method" value={method} onChange={(e) => setMethod(e.target.value as 'GET' | 'PUT')}>
            <option value="GET">GET (download)</option>
            <option value="PUT">PUT (upload/replace)</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="presign-minutes">Valid for (minutes)</label>
          <input
            id="presign-minutes"
            type="number"
            min={1}
            max={10080}
            value={minutes}
            onChange={(e) => setMinutes(e.target.value)}
          />
        </div>
        <ErrorNote>{error}</ErrorNote>
        <div className="actions">
          <button type="submit" className="primary">
            Create URL
          </button>
        </div>
      </form>
      {signed && (
        <>
          <CopyField label={`${signed.method} URL`} value={signed.url} />
          <p className="muted">Expires {formatDate(signed.expires_at)}</p>
        </>
      )}
    </Dialog>
  )
}
