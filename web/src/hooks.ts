import { useCallback, useEffect, useState } from 'react'

export interface Loaded<T> {
  data?: T
  error?: string
  loading: boolean
  reload: () => void
}

/** Runs `load` on mount and whenever `deps` change; `reload` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true })
  const [tick, setTick] = useState(0)
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const run = useCallback(load, deps)
  useEffect(() => {
    let live = true
    setState((s) => ({ ...s, loading: true }))
    run().then(
      (data) => live && setState({ data, loading: false }),
      (e: unknown) => live && setState({ error: e instanceof Error ? e.message : String(e), loading: false }),
    )
    return () => {
      live = false
    }
  }, [run, tick])
  return { ...state, reload: () => setTick((t) => t + 1) }
}

/** An object URL for a blob fetched by `load`, revoked when no longer used. */
export function useObjectUrl(load: (() => Promise<Blob>) | null, deps: unknown[]): string | undefined {
  const [url, setUrl] = useState<string>()
  useEffect(() => {
    if (!load) return
    let live = true
    let created: string | undefined
    load().then(
      (blob) => {
        if (!live) return
        created = URL.createObjectURL(blob)
        setUrl(created)
      },
      () => live && setUrl(undefined),
    )
    return () => {
      live = false
      if (created) URL.revokeObjectURL(created)
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps)
  return url
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
