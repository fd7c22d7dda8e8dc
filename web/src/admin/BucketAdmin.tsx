import { useState, type FormEvent } from 'react'
import * as api from '../api/client'
import type { Grant, Permission } from '../api/types'
import { ErrorNote, OkNote } from '../components/Notice'
import { errorText, useLoad } from '../hooks'

export function BucketAdmin({ bucket, onDelete }: { bucket: string; onDelete: () => void }) {
  const grants = useLoad(() => api.getJson<{ grants: Grant[] }>(api.bucketPath(bucket, '/grants')), [bucket])
  const retention = useLoad(
    () => api.getJson<{ mode: string; days: number } | null>(api.bucketPath(bucket, '/default-retention')),
    [bucket],
  )
  const [user, setUser] = useState('')
  const [permission, setPermission] = useState<Permission>('write')
  const [mode, setMode] = useState('GOVERNANCE')
  const [days, setDays] = useState('30')
  const [error, setError] = useState<string>()
  const [message, setMessage] = useState<string>()

  async function run(action: () => Promise<unknown>, done: string) {
    setError(undefined)
    setMessage(undefined)
    try {
      await action()
      setMessage(done)
      grants.reload()
      retention.reload()
    } catch (e) {
      setError(errorText(e))
    }
  }

  const grant = (e: FormEvent) => {
    e.preventDefault()
    void run(
      () => api.sendJson('PUT', api.bucketPath(bucket, `/grants/${encodeURIComponent(user.trim())}`), { permission }),
      `Granted ${permission} to ${user.trim()}.`,
    )
  }
  const setDefault = (e: FormEvent) => {
    e.preventDefault()
    void run(
      () => api.sendJson('PUT', api.bucketPath(bucket, '/default-retention'), { mode, days: Number(days) }),
      'Default retention saved.',
    )
  }

  return (
    <div className="card">
      <h3>Grants on {bucket}</h3>
      <ul>
        {grants.data?.grants.map((g) => (
          <li key={g.username}>
            {g.username}: {g.permission}{' '}
            <button
              type="button"
              className="danger"
              onClick={() =>
                void run(
                  () => api.sendJson('DELETE', api.bucketPath(bucket, `/grants/${encodeURIComponent(g.username)}`)),
                  `Removed ${g.username}'s grant.`,
                )
              }
            >
              Remove
            </button>
          </li>
        ))}
        {grants.data?.grants.length === 0 && <li>No grants.</li>}
      </ul>
      <form className="inline-form" onSubmit={grant}>
        <div className="field">
          <label htmlFor="grant-user">Username</label>
          <input id="grant-user" value={user} onChange={(e) => setUser(e.target.value)} required />
        </div>
        <div className="field">
          <label htmlFor="grant-permission">Permission</label>
          <select id="grant-permission" value={permission} onChange={(e) => setPermission(e.target.value as Permission)}>
            <option value="read">read</option>
            <option value="write">write</option>
            <option value="manage">manage</option>
          </select>
        </div>
        <button type="submit">Grant</button>
      </form>
      <h3>Default retention</h3>
      <p>
        {retention.data ? `${retention.data.mode} for ${retention.data.days} days on new objects` : 'None: new objects are not retained.'}
      </p>
      <form className="inline-form" onSubmit={setDefault}>
        <div className="field">
          <label htmlFor="dr-mode">Mode</label>
          <select id="dr-mode" value={mode} onChange={(e) => setMode(e.target.value)}>
            <option value="GOVERNANCE">GOVERNANCE</option>
            <option value="COMPLIANCE">COMPLIANCE</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="dr-days">Days</label>
          <input id="dr-days" type="number" min={1} max={36500} value={days} onChange={(e) => setDays(e.target.value)} />
        </div>
        <button type="submit">Save default</button>
        <button
          type="button"
          onClick={() => void run(() => api.sendJson('PUT', api.bucketPath(bucket, '/default-retention'), null), 'Default retention cleared.')}
        >
          Clear default
        </button>
      </form>
      <ErrorNote>{error}</ErrorNote>
      <OkNote>{message}</OkNote>
      <p>
        <button type="button" className="danger" onClick={onDelete}>
          Delete bucket {bucket} (must be empty)
        </button>
      </p>
    </div>
  )
}
