import { useEffect, useState } from 'react'
import * as api from '../api/client'
import type { LifecycleRule } from '../api/types'
import { ErrorNote, OkNote } from '../components/Notice'
import { errorText } from '../hooks'

const blank = (): LifecycleRule => ({ id: `rule-${Date.now().toString(36)}`, prefix: '', enabled: true, expire_after_days: 30 })

function numberOrNull(value: string): number | null {
  return value === '' ? null : Number(value)
}

export function LifecycleRules({ bucket }: { bucket: string }) {
  const [rules, setRules] = useState<LifecycleRule[]>([])
  const [error, setError] = useState<string>()
  const [message, setMessage] = useState<string>()
  const path = api.bucketPath(bucket, '/lifecycle')

  useEffect(() => {
    api.getJson<{ rules: LifecycleRule[] }>(path).then(
      (r) => setRules(r.rules ?? []),
      (e: unknown) => (e instanceof api.ApiError && e.status === 404 ? setRules([]) : setError(errorText(e))),
    )
  }, [path])

  const update = (i: number, change: Partial<LifecycleRule>) =>
    setRules((all) => all.map((r, j) => (i === j ? { ...r, ...change } : r)))

  async function save() {
    setError(undefined)
    setMessage(undefined)
    try {
      const clean = rules.map((r) => {
        const rule: Record<string, unknown> = { id: r.id, enabled: r.enabled }
        if (r.prefix) rule.prefix = r.prefix
        if (r.expire_after_days != null) rule.expire_after_days = r.expire_after_days
        if (r.abort_incomplete_uploads_after_days != null) rule.abort_incomplete_uploads_after_days = r.abort_incomplete_uploads_after_days
        return rule
      })
      if (clean.length) await api.sendJson('PUT', path, { rules: clean })
      else await api.sendJson('DELETE', path)
      setMessage('Lifecycle rules saved.')
    } catch (e) {
      setError(errorText(e))
    }
  }

  return (
    <div className="card">
      <h2>Lifecycle rules of {bucket}</h2>
      {rules.length === 0 && <p>No rules.</p>}
      {rules.map((r, i) => (
        <fieldset key={i} className="rule">
          <legend>Rule {i + 1}</legend>
          <div className="inline-form">
            <div className="field">
              <label htmlFor={`r${i}-id`}>Id</label>
              <input id={`r${i}-id`} value={r.id} onChange={(e) => update(i, { id: e.target.value })} />
            </div>
            <div className="field">
              <label htmlFor={`r${i}-prefix`}>Prefix</label>
              <input id={`r${i}-prefix`} value={r.prefix ?? ''} onChange={(e) => update(i, { prefix: e.target.value })} />
            </div>
            <div className="field">
              <label htmlFor={`r${i}-exp`}>Expire after days</label>
              <input id={`r${i}-exp`} type="number" min={1} value={r.expire_after_days ?? ''} onChange={(e) => update(i, { expire_after_days: numberOrNull(e.target.value) })} />
            </div>
            <div className="field">
              <label htmlFor={`r${i}-abort`}>Abort uploads after days</label>
              <input
                id={`r${i}-abort`}
                type="number"
                min={1}
                value={r.abort_incomplete_uploads_after_days ?? ''}
                onChange={(e) => update(i, { abort_incomplete_uploads_after_days: numberOrNull(e.target.value) })}
              />
            </div>
            <label className="check">
              <input type="checkbox" checked={r.enabled} onChange={(e) => update(i, { enabled: e.target.checked })} /> enabled
            </label>
            <button type="button" className="danger" onClick={() => setRules((all) => all.filter((_, j) => j !== i))}>
              Remove rule
            </button>
          </div>
        </fieldset>
      ))}
      <div className="actions">
        <button type="button" onClick={() => setRules((all) => [...all, blank()])}>
          Add rule
        </button>
        <button type="button" className="primary" onClick={() => void save()}>
          Save rules
        </button>
      </div>
      <ErrorNote>{error}</ErrorNote>
      <OkNote>{message}</OkNote>
    </div>
  )
}
