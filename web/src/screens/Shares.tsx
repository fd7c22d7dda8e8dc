import * as api from '../api/client'
import type { Share } from '../api/types'
import { ErrorNote } from '../components/Notice'
import { Pager } from '../components/Pager'
import { formatDate } from '../format'
import { errorText, useLoad } from '../hooks'
import { useState } from 'react'

const PAGE_SIZE = 100

/** Whether a link still opens, as the server would decide it now. */
function shareState(share: Share): string {
  if (share.revoked) return 'revoked'
  if (share.expires_at && Date.parse(share.expires_at) <= Date.now()) return 'expired'
  if (share.max_downloads != null && (share.downloads ?? 0) >= share.max_downloads) return 'used up'
  return 'active'
}

export function Shares() {
  const [cursors, setCursors] = useState<(string | null)[]>([null])
  const cursor = cursors[cursors.length - 1] ?? null
  const shares = useLoad(() => {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) })
    if (cursor) query.set('cursor', cursor)
    return api.getJson<{ shares: Share[]; next_cursor: string | null }>(`/api/v1/shares?${query}`)
  }, [cursor])
  const [error, setError] = useState<string>()

  async function revoke(id: string) {
    setError(undefined)
    try {
      await api.sendJson('DELETE', `/api/v1/shares/${encodeURIComponent(id)}`)
      shares.reload()
    } catch (e) {
      setError(errorText(e))
    }
  }

  const list = shares.data?.shares ?? []
  return (
    <section>
      <h1>My share links</h1>
      <p className="muted">A link's address is shown once, when it is created (use Share on a file).</p>
      <ErrorNote>{error ?? shares.error}</ErrorNote>
      {shares.data && list.length === 0 && <p>You have no share links.</p>}
      {list.length > 0 && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">File</th>
                <th scope="col">Expires</th>
                <th scope="col">Password</th>
                <th scope="col">Downloads</th>
                <th scope="col">State</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((s) => (
                <tr key={s.id}>
                  <td>
                    {s.bucket}/{s.key}
                  </td>
                  <td>{s.expires_at ? formatDate(s.expires_at) : 'never'}</td>
                  <td>{s.has_password ? 'yes' : 'no'}</td>
                  <td>
                    {s.downloads ?? 0}
                    {s.max_downloads ? ` / ${s.max_downloads}` : ''}
                  </td>
                  <td>{shareState(s)}</td>
                  <td>
                    {!s.revoked && (
                      <button type="button" className="danger" onClick={() => void revoke(s.id)}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {(cursors.length > 1 || shares.data?.next_cursor) && (
        <Pager cursors={cursors} onChange={setCursors} next={shares.data?.next_cursor} />
      )}
    </section>
  )
}
