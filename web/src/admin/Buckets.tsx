import { useState } from 'react'
import * as api from '../api/client'
import type { Bucket } from '../api/types'
import { ErrorNote } from '../components/Notice'
import { errorText, useLoad } from '../hooks'
import { BucketAdmin } from './BucketAdmin'
import { BucketList } from '../screens/BucketList'

export function Buckets() {
  const buckets = useLoad(() => api.getJson<{ buckets: Bucket[] }>('/api/v1/buckets'), [])
  const [chosen, setChosen] = useState('')
  const [error, setError] = useState<string>()

  async function remove(name: string) {
    setError(undefined)
    try {
      await api.sendJson('DELETE', api.bucketPath(name))
      setChosen('')
      buckets.reload()
    } catch (e) {
      setError(errorText(e))
    }
  }

  return (
    <section>
      <BucketList onCreated={buckets.reload} />
      <h2>Manage a bucket</h2>
      <div className="field">
        <label htmlFor="admin-bucket">Bucket</label>
        <select id="admin-bucket" value={chosen} onChange={(e) => setChosen(e.target.value)}>
          <option value="">Choose…</option>
          {buckets.data?.buckets.map((b) => (
            <option key={b.name} value={b.name}>
              {b.name}
            </option>
          ))}
        </select>
      </div>
      <ErrorNote>{error ?? buckets.error}</ErrorNote>
      {chosen && <BucketAdmin key={chosen} bucket={chosen} onDelete={() => void remove(chosen)} />}
    </section>
  )
}
