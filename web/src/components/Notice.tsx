import type { ReactNode } from 'react'

export function ErrorNote({ children }: { children?: ReactNode }) {
  if (!children) return null
  return (
    <p className="note error" role="alert">
      {children}
    </p>
  )
}

export function OkNote({ children }: { children?: ReactNode }) {
  if (!children) return null
  return (
    <p className="note ok" role="status">
      {children}
    </p>
  )
}
