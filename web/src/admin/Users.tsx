import { useState, type FormEvent } from 'react'
import * as api from '../api/client'
import type { Role, User } from '../api/types'
import { ErrorNote, OkNote } from '../components/Notice'
import { Pager } from '../components/Pager'
import { formatBytes } from '../format'
import { errorText, useLoad } from '../hooks'
import { UserRow } from './UserRow'

export function Users() {
  const [cursors, setCursors] = useState<(string | null)[]>([null])
  const cursor = cursors[cursors.length - 1]
  const users = useLoad(() => {
    const query = new URLSearchParams({ limit: '100' })
    if (cursor) query.set('cursor', cursor)
    return api.getJson<{ users: User[]; next_cursor: string | null }>(`/api/v1/admin/users?${query}`)
  }, [cursor])
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [role, setRole] = useState<Role>('user')
  const [quota, setQuota] = useState('')
  const [error, setError] = useState<string>()
  const [message, setMessage] = useState<string>()

  async function create(e: FormEvent) {
    e.preventDefault()
    setError(undefined)
    setMessage(undefined)
    try {
      const body: Record<string, unknown> = { username: username.trim(), password, role }
      if (quota) body.quota_bytes = Math.round(Number(quota) * 1024 * 1024)
      await api.sendJson('POST', '/api/v1/admin/users', body)
      setMessage(`Created ${username.trim()}.`)
      setUsername('')
      setPassword('')
      setQuota('')
      users.reload()
    } catch (err) {
      setError(errorText(err))
    }
  }

  return (
    <section>
      <h1>Users</h1>
      <form className="card inline-form" onSubmit={(e) => void create(e)} aria-labelledby="new-user-title">
        <h2 id="new-user-title">New user</h2>
        <div className="field">
          <label htmlFor="nu-name">Username</label>
          <input id="nu-name" value={username} onChange={(e) => setUsername(e.target.value)} required autoComplete="off" />
        </div>
        <div className="field">
          <label htmlFor="nu-password">Initial password</label>
          <input id="nu-password" type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} required minLength={10} />
        </div>
        <div className="field">
          <label htmlFor="nu-role">Role</label>
          <select id="nu-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            <option value="user">user</option>
            <option value="admin">admin</option>
            <option value="auditor">auditor</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="nu-quota">Quota in MiB (empty: unlimited)</label>
          <input id="nu-quota" type="number" min={0} value={quota} onChange={(e) => setQuota(e.target.value)} />
        </div>
        <button type="submit" className="primary">
          Create user
        </button>
      </form>
      <ErrorNote>{error ?? users.error}</ErrorNote>
      <OkNote>{message}</OkNote>
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Role</th>
              <th scope="col">Used</th>
              <th scope="col">Quota (MiB)</th>
              <th scope="col">MFA</th>
              <th scope="col">State</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {users.data?.users.map((u) => (
              <UserRow key={u.username} user={u} onChanged={users.reload} onError={setError} />
            ))}
          </tbody>
        </table>
      </div>
      <Pager cursors={cursors} onChange={setCursors} next={users.data?.next_cursor} />
      <p className="muted">Users on this page: {users.data?.users.length ?? '…'}. Quotas apply to bytes stored ({formatBytes(1024 * 1024)} = 1 MiB).</p>
    </section>
  )
}
