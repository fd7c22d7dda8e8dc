// A tiny client-side router over the History API.
import { useEffect, useState } from 'react'

const listeners = new Set<() => void>()

export function navigate(path: string, replace = false): void {
  if (replace) window.history.replaceState(null, '', path)
  else window.history.pushState(null, '', path)
  listeners.forEach((listener) => listener())
}

export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname + window.location.search)
  useEffect(() => {
    const update = () => setPath(window.location.pathname + window.location.search)
    listeners.add(update)
    window.addEventListener('popstate', update)
    return () => {
      listeners.delete(update)
      window.removeEventListener('popstate', update)
    }
  }, [])
  return path
}

/** `/files/<bucket>/<prefix…>` with each part percent-encoded. */
export function filesPath(bucket?: string, prefix = ''): string {
  if (!bucket) return '/files'
  const rest = prefix ? '/' + prefix.split('/').map(encodeURIComponent).join('/') : ''
  return `/files/${encodeURIComponent(bucket)}${rest}`
}

export function parseFilesPath(pathname: string): { bucket?: string; prefix: string } {
  const parts = pathname.split('?')[0]!.split('/').slice(2)
  const [bucket, ...rest] = parts
  if (!bucket) return { prefix: '' }
  return { bucket: decodeURIComponent(bucket), prefix: rest.map(decodeURIComponent).join('/') }
}
