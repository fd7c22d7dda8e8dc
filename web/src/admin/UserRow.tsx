import { useState } from 'react'
import * as api from '../api/client'
import type { Role, User } from '../api/types'
import { formatBytes } from '../format'
import { errorText } from '../hooks'

export function UserRow({ user, onChanged, onError }: { user: User; onChanged: () => void; onError: (e: string) => void }) {
  const shown = user.quota_bytes == null ? '' : String(Math.round((user.quota_bytes / 1048576) * 100) / 100)
  const [quota, setQuota] = useState(shown)
  const path = `/api/v1/admin/users/${encodeURIComponent(user.username)}`

  async function patch(body: Record<string, unknown>) {
    try {
      await api.sendJson('PATCH', path, body)
      onChanged()
    } catch (e) {
      onError(`${user.username}: ${errorText(e)}`)
    }
  }

  async function resetMfa() {
    try {
      await api.sendJson('POST', `${path}/reset-mfa`)
      onChanged()
    } catch (e) {
      onError(`${user.username}: ${errorText(e)}`)
    }
  }

  return (
    <tr data-user={user.username}>
      <th scope="row">{user.username}</th>
      <td>
        <select aria-label={`Role of ${user.username}`} value={user.role} onChange={(e) => void patch({ role: e.target.value as Role })}>
          <option value="user">user</option>
          <option value="admin">admin</option>
          <option value="auditor">auditor</option>
        </select>
      </td>
      <td>{formatBytes(user.used_bytes)}</td>
      <td>
        <input
          aria-label={`Quota of ${user.username} in MiB`}
          className="narrow"
          type="number"
          min={0}
          step="any"
          value={quota}
          onChange={(e) => setQuota(e.target.value)}
          // Only an edit is saved: leaving the field untouched keeps the exact quota (and writes no audit event).
          onBlur={() => {
            if (quota !== shown) void patch({ quota_bytes: quota === '' ? null : Math.round(Number(quota) * 1048576) })
          }}
        />
      </td>
      <td>
        {user.mfa_enabled ? 'on' : 'off'}
        {user.mfa_enabled && (
          <button type="button" onClick={() => void resetMfa()}>
            Reset MFA
          </button>
        )}
      </td>
      <td>{user.disabled ? 'disabled' : 'active'}</td>
      <td>
        <button type="button" className={user.disabled ? '' : 'danger'} onClick={() => void patch({ disabled: !user.disabled })}>
          {user.disabled ? 'Enable' : 'Disable'}
        </button>
      </td>
    </tr>
  )
}
