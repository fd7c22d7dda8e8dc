import { useState } from 'react'
import * as api from '../api/client'
import type { Bucket } from '../api/types'
import { ErrorNote } from '../components/Notice'
import { errorText, useLoad } from '../hooks'
import { LifecycleRules } from './LifecycleRules'

interface RunReport {
  dry_run: boolean
  as_of?: string
  expired: { bucket: string; key: string }[]
  expired_count: number
  aborted_uploads: number
  skipped_locked: { bucket: string; key: string }[]
  skipped_locked_count: number
  truncated: boolean
  bytes_freed?: number
}

export function Retention() {
  const buckets = useLoad(() => api.getJson<{ buckets: Bucket[] }>('/api/v1/buckets'), [])
  const [bucket, setBucket] = useState('')
  const [asOf, setAsOf] = useState('')
  const [report, setReport] = useState<RunReport>()
  const [error, setError] = useState<string>()

  async function runRules(dryRun: boolean) {
    setError(undefined)
    try {
      const body: Record<string, unknown> = { dry_run: dryRun }
      if (dryRun && asOf) body.as_of = new Date(asOf).toISOString()
      setReport(await api.sendJson<RunReport>('POST', '/api/v1/admin/lifecycle/run', body))
    } catch (e) {
      setError(errorText(e))
    }
  }

  return (
    <section>
      <h1>Retention and lifecycle</h1>
      <p className="muted">Default retention per bucket is under Buckets; object retention and legal hold under each file's Lock button.</p>
      <div className="field">
        <label htmlFor="lc-bucket">Bucket</label>
        <select id="lc-bucket" value={bucket} onChange={(e) => setBucket(e.target.value)}>
          <option value="">Choose…</option>
          {buckets.data?.buckets.map((b) => (
            <option key={b.name} value={b.name}>
              {b.name}
            </option>
          ))}
        </select>
      </div>
      {bucket && <LifecycleRules key={bucket} bucket={bucket} />}
      <div className="card">
        <h2>Run the rules</h2>
        <div className="inline-form">
          <div className="field">
            <label htmlFor="lc-asof">Preview as of (optional)</label>
            <input id="lc-asof" type="datetime-local" value={asOf} onChange={(e) => setAsOf(e.target.value)} />
          </div>
          <button type="button" className="primary" onClick={() => void runRules(true)}>
            Preview (dry run)
          </button>
          <button type="button" className="danger" onClick={() => void runRules(false)}>
            Run now
          </button>
        </div>
        <ErrorNote>{error}</ErrorNote>
        {report && (
          <div role="status" data-testid="lifecycle-report">
            <p>
              {report.dry_run ? 'Would expire' : 'Expired'} {report.expired_count} objects, {report.dry_run ? 'would abort' : 'aborted'}{' '}
              {report.aborted_uploads} uploads; {report.skipped_locked_count} locked objects skipped.
              {report.truncated ? ' Only the first of them are listed below.' : ''}
            </p>
            <ul>
              {report.expired.map((o) => (
                <li key={`${o.bucket}/${o.key}`}>
                  {o.bucket}/{o.key}
                </li>
              ))}
            </ul>
          </div>
        )}
      </div>
    </section>
  )
}
