import { useState, type FormEvent } from 'react'
import * as api from '../api/client'
import type { Bucket } from '../api/types'
import { ErrorNote } from '../components/Notice'
import { errorText, useLoad } from '../hooks'
import { filesPath } from '../router'
import { Link } from '../Shell'
import { formatDate } from '../format'

export function BucketList({ onCreated }: { onCreated?: () => void } = {}) {
  const buckets = useLoad(() => api.getJson<{ buckets: Bucket[] }>('/api/v1/buckets'), [])
  const [name, setName] = useState('')
  const [error, setError] = useState<string>()

  async function create(e: FormEvent) {
    e.preventDefault()
    setError(undefined)
    try {
      await api.sendJson('POST', '/api/v1/buckets', { name: name.trim() })
      setName('')
      buckets.reload()
      onCreated?.()
    } catch (err) {
      setError(errorText(err))
    }
  }

  return (
    <section>
      <h1>Buckets</h1>
      <ErrorNote>{buckets.error}</ErrorNote>
      {buckets.data && buckets.data.buckets.length === 0 && <p>No buckets yet. Create one below.</p>}
      <ul className="bucket-list">
        {buckets.data?.buckets.map((b) => (
          <li key={b.name}>
            <Link to={filesPath(b.name)} className="bucket">
              <span className="bucket-name">{b.name}</span>
              <span className="muted">
                {b.permission} · created {formatDate(b.created_at)}
              </span>
            </Link>
          </li>
        ))}
      </ul>
      <form className="inline-form" onSubmit={(e) => void create(e)}>
        <div className="field">
          <label htmlFor="new-bucket">New bucket name</label>
          <input
            id="new-bucket"
            value={name}
            onChange={(e) => setName(e.target.value)}
            pattern="[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]"
            title="3-63 characters: lowercase letters, digits, dots and hyphens"
            required
          />
        </div>
        <button type="submit">Create bucket</button>
      </form>
      <ErrorNote>{error}</ErrorNote>
    </section>
  )
}
