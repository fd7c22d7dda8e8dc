import { useState, type FormEvent } from 'react'
import * as api from '../api/client'
import type { AuditEvent } from '../api/types'
import { ErrorNote, OkNote } from '../components/Notice'
import { formatDate } from '../format'
import { errorText, useLoad } from '../hooks'

interface Filters {
  actor: string
  action: string
  bucket: string
  since: string
  until: string
}

const EMPTY: Filters = { actor: '', action: '', bucket: '', since: '', until: '' }

function query(filters: Filters, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams(extra)
  for (const [name, value] of Object.entries(filters)) {
    if (!value) continue
    params.set(name, name === 'since' || name === 'until' ? new Date(value).toISOString() : value)
  }
  return params.toString()
}

export function Audit() {
  const [draft, setDraft] = useState<Filters>(EMPTY)
  const [filters, setFilters] = useState<Filters>(EMPTY)
  const [cursors, setCursors] = useState<(string | null)[]>([null])
  const [verify, setVerify] = useState<string>()
  const [error, setError] = useState<string>()
  const cursor = cursors[cursors.length - 1] ?? null
  const events = useLoad(
    () =>
      api.getJson<{ events: AuditEvent[]; next_cursor: string | null }>(
        `/api/v1/admin/audit?${query(filters, cursor ? { cursor, limit: '100' } : { limit: '100' })}`,
      ),
    [filters, cursor],
  )

  function apply(e: FormEvent) {
    e.preventDefault()
    setFilters(draft)
    setCursors([null])
  }

  async function exportAs(format: 'jsonl' | 'csv') {
    setError(undefined)
    try {
      // The file holds what the table shows: the same filters.
      const blob = await api.getBlob(`/api/v1/admin/audit/export?${query(filters, { format })}`)
      const url = URL.createObjectURL(new Blob([blob], { type: 'application/octet-stream' }))
      const link = document.createElement('a')
      link.href = url
      link.download = `coffer-audit.${format}`
      link.click()
      window.setTimeout(() => URL.revokeObjectURL(url), 60_000)
    } catch (e) {
      setError(errorText(e))
    }
  }

  async function runVerify() {
    setError(undefined)
    try {
      const result = await api.getJson<{
        ok: boolean
        checked: number
        first_bad_id: number | null
        reason?: string
        keyed_from: number | null
      }>('/api/v1/admin/audit/verify')
      const keyed =
        result.keyed_from === null ? ' Not keyed yet: run `coffer audit seal`.' : ` Keyed from event ${result.keyed_from}.`
      setVerify(
        result.ok
          ? `Chain intact: ${result.checked} events checked.${keyed}`
          : `Chain BROKEN at event ${result.first_bad_id}: ${result.reason ?? 'broken'} (${result.checked} checked).`,
      )
    } catch (e) {
      setError(errorText(e))
    }
  }

  const field = (name: keyof Filters, label: string, type = 'text') => (
    <div className="field compact">
      <label htmlFor={`audit-${name}`}>{label}</label>
      <input id={`audit-${name}`} type={type} value={draft[name]} onChange={(e) => setDraft({ ...draft, [name]: e.target.value })} />
    </div>
  )

  return (
    <section>
      <h1>Audit log</h1>
      <form className="inline-form" onSubmit={apply} aria-label="Filters">
        {field('actor', 'Actor')}
        {field('action', 'Action')}
        {field('bucket', 'Bucket')}
        {field('since', 'Since', 'datetime-local')}
        {field('until', 'Until', 'datetime-local')}
        <button type="submit" className="primary">
          Filter
        </button>
      </form>
      <div className="actions left">
        <button type="button" onClick={() => void exportAs('jsonl')}>
          Export JSON lines
        </button>
        <button type="button" onClick={() => void exportAs('csv')}>
          Export CSV
        </button>
        <button type="button" onClick={() => void runVerify()}>
          Verify chain
        </button>
      </div>
      <OkNote>{verify}</OkNote>
      <ErrorNote>{error ?? events.error}</ErrorNote>
      <div className="table-wrap">
        <table className="audit">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Object</th>
              <th scope="col">Outcome</th>
              <th scope="col">Address</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {events.data?.events.map((e) => (
              <tr key={e.id} data-action={e.action}>
                <td>{formatDate(e.at)}</td>
                <td>{e.actor}</td>
                <td>
                  <code>{e.action}</code>
                </td>
                <td>{e.bucket ? `${e.bucket}/${e.key ?? ''}` : ''}</td>
                <td>{e.outcome}</td>
                <td>{e.ip ?? ''}</td>
                <td>
                  <code className="details">{e.details == null ? '' : JSON.stringify(e.details)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Newer
        </button>
        <span>Page {cursors.length}</span>
        <button type="button" disabled={!events.data?.next_cursor} onClick={() => setCursors((c) => [...c, events.data?.next_cursor ?? null])}>
          Older
        </button>
      </nav>
    </section>
  )
}
