import { useState, type FormEvent } from 'react'
import * as api from '../api/client'
import { CopyField } from '../components/CopyField'
import { Dialog } from '../components/Dialog'
import { ErrorNote } from '../components/Notice'
import { baseName, formatDate } from '../format'
import { errorText } from '../hooks'

const EXPIRIES: [number, string][] = [
  [3600, '1 hour'],
  [86400, '1 day'],
  [7 * 86400, '7 days'],
  [30 * 86400, '30 days'],
  [0, 'Never'],
]

export function ShareDialog({ bucket, objectKey, onClose }: { bucket: string; objectKey: string; onClose: () => void }) {
  const [expires, setExpires] = useState(7 * 86400)
  const [password, setPassword] = useState('')
  const [maxDownloads, setMaxDownloads] = useState('')
  const [created, setCreated] = useState<{ url: string; expires_at: string | null }>()
  const [error, setError] = useState<string>()

  async function submit(e: FormEvent) {
    e.preventDefault()
    setError(undefined)
    const body: Record<string, unknown> = { bucket, key: objectKey }
    if (expires) body.expires_in_seconds = expires
    if (password) body.password = password
    if (maxDownloads) body.max_downloads = Number(maxDownloads)
    try {
      setCreated(await api.sendJson('POST', '/api/v1/shares', body))
    } catch (err) {
      setError(errorText(err))
    }
  }

  return (
    <Dialog title={`Share “${baseName(objectKey)}”`} onClose={onClose}>
      {created ? (
        <>
          <CopyField label="Share link" value={created.url} />
          <p className="muted">Expires: {created.expires_at ? formatDate(created.expires_at) : 'never'}</p>
        </>
      ) : (
        <form onSubmit={(e) => void submit(e)}>
          <div className="field">
            <label htmlFor="share-expiry">Expires after</label>
            <select id="share-expiry" value={expires} onChange={(e) => setExpires(Number(e.target.value))}>
              {EXPIRIES.map(([seconds, label]) => (
                <option key={seconds} value={seconds}>
                  {label}
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor="share-password">Password (optional)</label>
            <input
              id="share-password"
              type="password"
              autoComplete="new-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor="share-max">Maximum downloads (optional)</label>
            <input
              id="share-max"
              type="number"
              min={1}
              value={maxDownloads}
              onChange={(e) => setMaxDownloads(e.target.value)}
            />
          </div>
          <ErrorNote>{error}</ErrorNote>
          <div className="actions">
            <button type="submit" className="primary">
              Create link
            </button>
          </div>
        </form>
      )}
    </Dialog>
  )
}
