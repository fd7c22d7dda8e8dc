import { useState, type FormEvent } from 'react'
import * as api from '../api/client'
import type { ApiKey } from '../api/types'
import { CopyField } from '../components/CopyField'
import { ErrorNote } from '../components/Notice'
import { formatDate } from '../format'
import { errorText, useLoad } from '../hooks'

export function ApiKeys() {
  const keys = useLoad(() => api.getJson<{ api_keys: ApiKey[] }>('/api/v1/me/api-keys'), [])
  const [name, setName] = useState('')
  const [days, setDays] = useState('90')
  const [read, setRead] = useState(true)
  const [write, setWrite] = useState(true)
  const [created, setCreated] = useState<string>()
  const [error, setError] = useState<string>()

  async function create(e: FormEvent) {
    e.preventDefault()
    setError(undefined)
    const scopes = [read && 'read', write && 'write'].filter(Boolean)
    try {
      const body: Record<string, unknown> = { name, scopes }
      if (days) body.expires_in_days = Number(days)
      const result = await api.sendJson<{ key: string }>('POST', '/api/v1/me/api-keys', body)
      setCreated(result.key)
      setName('')
      keys.reload()
    } catch (err) {
      setError(errorText(err))
    }
  }

  async function revoke(id: string) {
    setError(undefined)
    try {
      await api.sendJson('DELETE', `/api/v1/me/api-keys/${encodeURIComponent(id)}`)
      keys.reload()
    } catch (e) {
      setError(errorText(e))
    }
  }

  const active = (keys.data?.api_keys ?? []).filter((k) => !k.revoked_at)
  return (
    <section className="card" aria-labelledby="keys-title">
      <h2 id="keys-title">API keys</h2>
      {created && (
        <div role="status">
          <CopyField label="New API key (shown only now)" value={created} />
          <button type="button" onClick={() => setCreated(undefined)}>
            Done
          </button>
        </div>
      )}
      <form className="inline-form" onSubmit={(e) => void create(e)}>
        <div className="field">
          <label htmlFor="key-name">Name</label>
          <input id="key-name" value={name} onChange={(e) => setName(e.target.value)} required />
        </div>
        <div className="field">
          <label htmlFor="key-days">Expires in days (empty: never)</label>
          <input id="key-days" type="number" min={1} value={days} onChange={(e) => setDays(e.target.value)} />
        </div>
        <fieldset>
          <legend>Scopes</legend>
          <label className="check">
            <input type="checkbox" checked={read} onChange={(e) => setRead(e.target.checked)} /> read
          </label>
          <label className="check">
            <input type="checkbox" checked={write} onChange={(e) => setWrite(e.target.checked)} /> write
          </label>
        </fieldset>
        <button type="submit">Create key</button>
      </form>
      <ErrorNote>{error ?? keys.error}</ErrorNote>
      {active.length > 0 && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Prefix</th>
                <th scope="col">Scopes</th>
                <th scope="col">Expires</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {active.map((k) => (
                <tr key={k.id}>
                  <td>{k.name}</td>
                  <td>
                    <code>{k.prefix}</code>
                  </td>
                  <td>{k.scopes.join(', ')}</td>
                  <td>{k.expires_at ? formatDate(k.expires_at) : 'never'}</td>
                  <td>
                    <button type="button" className="danger" onClick={() => void revoke(k.id)}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
