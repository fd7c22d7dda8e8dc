import type { ReactNode } from 'react'

/** Previous and next page buttons over the cursors of the pages seen so far (the first page's is null). */
export function Pager({
  cursors,
  onChange,
  next,
  children,
}: {
  cursors: (string | null)[]
  onChange: (cursors: (string | null)[]) => void
  next: string | null | undefined
  children?: ReactNode
}) {
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" disabled={cursors.length < 2} onClick={() => onChange(cursors.slice(0, -1))}>
        Previous page
      </button>
      <span>Page {cursors.length}</span>
      <button type="button" disabled={!next} onClick={() => onChange([...cursors, next ?? null])}>
        Next page
      </button>
      {children}
    </nav>
  )
}
