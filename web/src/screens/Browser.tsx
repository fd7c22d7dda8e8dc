import { useMemo, useState } from 'react'
import * as api from '../api/client'
import type { Bucket, Listing, ObjectEntry } from '../api/types'
import { ErrorNote, OkNote } from '../components/Notice'
import { Pager } from '../components/Pager'
import { baseName } from '../format'
import { errorText, useLoad } from '../hooks'
import { Breadcrumbs } from './Breadcrumbs'
import { ObjectGrid, ObjectTable, type ItemActions } from './ObjectViews'
import { Preview } from './Preview'
import { ShareDialog } from './ShareDialog'
import { PresignDialog } from './PresignDialog'
import { LockDialog } from './LockDialog'
import { ConfirmDialog } from '../components/ConfirmDialog'
import { Uploader } from '../upload/Uploader'
import { downloadObject } from '../download'

type Sort = 'name' | 'size' | 'date'
type Open = { kind: 'preview' | 'share' | 'presign' | 'lock'; object: ObjectEntry } | { kind: 'delete'; keys: string[] }

const PAGE_SIZES = [25, 50, 100, 500]

function sorted(objects: ObjectEntry[], sort: Sort, descending: boolean): ObjectEntry[] {
  const copy = [...objects]
  copy.sort((a, b) => {
    if (sort === 'size') return a.size - b.size
    if (sort === 'date') return a.last_modified.localeCompare(b.last_modified)
    return a.key.localeCompare(b.key)
  })
  return descending ? copy.reverse() : copy
}

export function Browser({ bucket, prefix }: { bucket: string; prefix: string }) {
  const [search, setSearch] = useState('')
  const [cursors, setCursors] = useState<(string | null)[]>([null])
  const [limit, setLimit] = useState(50)
  const [sort, setSort] = useState<Sort>('name')
  const [descending, setDescending] = useState(false)
  const [view, setView] = useState<'grid' | 'list'>(() => (localStorage.getItem('coffer.view') === 'grid' ? 'grid' : 'list'))
  const [selected, setSelected] = useState<Set<string>>(new Set())
  const [open, setOpen] = useState<Open>()
  const [message, setMessage] = useState<string>()
  const [error, setError] = useState<string>()
  const [showUpload, setShowUpload] = useState(false)
  // Once opened, the uploader stays mounted (hidden when collapsed): unmounting it would cancel its uploads.
  const [uploaderOpened, setUploaderOpened] = useState(false)

  const listPrefix = prefix + search
  // Another folder or search: its own first page, and nothing selected that is no longer shown.
  const [pagedPrefix, setPagedPrefix] = useState(listPrefix)
  if (pagedPrefix !== listPrefix) {
    setPagedPrefix(listPrefix)
    setCursors([null])
    setSelected(new Set())
  }
  const cursor = pagedPrefix === listPrefix ? (cursors[cursors.length - 1] ?? null) : null
  const listing = useLoad(() => {
    const query = new URLSearchParams({ prefix: listPrefix, delimiter: '/', limit: String(limit) })
    if (cursor) query.set('cursor', cursor)
    return api.getJson<Listing>(api.bucketPath(bucket, `/objects?${query}`))
  }, [bucket, listPrefix, cursor, limit])
  const buckets = useLoad(() => api.getJson<{ buckets: Bucket[] }>('/api/v1/buckets'), [])
  const permission = buckets.data?.buckets.find((b) => b.name === bucket)?.permission
  const canWrite = permission === 'write' || permission === 'manage'
  const canManage = permission === 'manage'

  const objects = useMemo(
    () => sorted(listing.data?.objects ?? [], sort, descending),
    [listing.data, sort, descending],
  )

  const restart = () => {
    setCursors([null])
    setSelected(new Set())
    listing.reload()
  }

  function chooseView(next: 'grid' | 'list') {
    setView(next)
    localStorage.setItem('coffer.view', next)
  }

  function toggle(key: string) {
    setSelected((current) => {
      const next = new Set(current)
      if (next.has(key)) next.delete(key)
      else next.add(key)
      return next
    })
  }

  async function download(keys: string[]) {
    setError(undefined)
    for (const key of keys) {
      try {
        await downloadObject(bucket, key)
      } catch (e) {
        setError(`${baseName(key)}: ${errorText(e)}`)
      }
    }
  }

  async function remove(keys: string[]) {
    setOpen(undefined)
    setError(undefined)
    setMessage(undefined)
    const failures: string[] = []
    let removed = 0
    for (const key of keys) {
      try {
        await api.sendJson('DELETE', api.objectPath(bucket, key))
        removed += 1
      } catch (e) {
        const name = baseName(key)
        if (e instanceof api.ApiError && e.locked) {
          failures.push(`“${name}” is locked by a retention period or legal hold and cannot be deleted.`)
        } else failures.push(`Could not delete “${name}”: ${errorText(e)}`)
      }
    }
    if (removed) setMessage(`Deleted ${removed} file${removed === 1 ? '' : 's'}.`)
    if (failures.length) setError(failures.join(' '))
    restart()
  }

  const actions: ItemActions = {
    selected,
    toggle,
    open: (kind, object) => setOpen({ kind, object }),
    download: (key) => void download([key]),
    remove: (key) => setOpen({ kind: 'delete', keys: [key] }),
    canWrite,
    canManage,
    bucket,
  }

  const allKeys = objects.map((o) => o.key)
  // Another page shows other files: nothing stays selected that is not shown (a delete would take it too).
  const turnPage = (next: (string | null)[]) => {
    setCursors(next)
    setSelected(new Set())
  }
  const allSelected = allKeys.length > 0 && allKeys.every((k) => selected.has(k))

  return (
    <section className="browser">
      <Breadcrumbs bucket={bucket} prefix={prefix} />
      <div className="toolbar" role="toolbar" aria-label="File actions">
        <div className="field compact">
          <label htmlFor="search">Search by name prefix</label>
          <input
            id="search"
            type="search"
            value={search}
            onChange={(e) => {
              setSearch(e.target.value)
              setCursors([null])
            }}
          />
        </div>
        <div className="field compact">
          <label htmlFor="sort">Sort by</label>
          <select id="sort" value={sort} onChange={(e) => setSort(e.target.value as Sort)}>
            <option value="name">Name</option>
            <option value="size">Size</option>
            <option value="date">Date</option>
          </select>
        </div>
        <button type="button" aria-pressed={descending} onClick={() => setDescending((d) => !d)}>
          {descending ? 'Descending' : 'Ascending'}
        </button>
        <div className="segmented" role="group" aria-label="View">
          <button type="button" aria-pressed={view === 'list'} onClick={() => chooseView('list')}>
            List
          </button>
          <button type="button" aria-pressed={view === 'grid'} onClick={() => chooseView('grid')}>
            Grid
          </button>
        </div>
        {canWrite && (
          <button
            type="button"
            className="primary"
            aria-expanded={showUpload}
            onClick={() => {
              setUploaderOpened(true)
              setShowUpload((s) => !s)
            }}
          >
            Upload
          </button>
        )}
      </div>
      {uploaderOpened && canWrite && (
        <div hidden={!showUpload}>
          <Uploader bucket={bucket} prefix={prefix} visible={showUpload} onUploaded={restart} />
        </div>
      )}
      <div className="selection-bar" aria-live="polite">
        <label className="check">
          <input
            type="checkbox"
            checked={allSelected}
            onChange={() => setSelected(allSelected ? new Set() : new Set(allKeys))}
          />
          Select all
        </label>
        <span>{selected.size} selected</span>
        <button type="button" disabled={!selected.size} onClick={() => void download([...selected])}>
          Download selected
        </button>
        {canWrite && (
          <button
            type="button"
            className="danger"
            disabled={!selected.size}
            onClick={() => setOpen({ kind: 'delete', keys: [...selected] })}
          >
            Delete selected
          </button>
        )}
      </div>
      <OkNote>{message}</OkNote>
      <ErrorNote>{error ?? listing.error}</ErrorNote>
      {listing.data && listing.data.prefixes.length === 0 && objects.length === 0 && (
        <p className="muted">{search ? 'Nothing matches this prefix.' : 'This folder is empty.'}</p>
      )}
      {listing.data &&
        (listing.data.prefixes.length > 0 || objects.length > 0) &&
        (view === 'grid' ? (
          <ObjectGrid prefixes={listing.data.prefixes} objects={objects} actions={actions} />
        ) : (
          <ObjectTable prefixes={listing.data.prefixes} objects={objects} actions={actions} />
        ))}
      <Pager cursors={cursors} onChange={turnPage} next={listing.data?.next_cursor}>
        <label className="check">
          Per page{' '}
          <select value={limit} onChange={(e) => { setLimit(Number(e.target.value)); turnPage([null]) }}>
            {PAGE_SIZES.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
      </Pager>
      {open?.kind === 'preview' && (
        <Preview bucket={bucket} object={open.object} onClose={() => setOpen(undefined)} />
      )}
      {open?.kind === 'share' && (
        <ShareDialog bucket={bucket} objectKey={open.object.key} onClose={() => setOpen(undefined)} />
      )}
      {open?.kind === 'presign' && (
        <PresignDialog bucket={bucket} objectKey={open.object.key} onClose={() => setOpen(undefined)} />
      )}
      {open?.kind === 'lock' && (
        <LockDialog bucket={bucket} objectKey={open.object.key} onClose={() => setOpen(undefined)} />
      )}
      {open?.kind === 'delete' && (
        <ConfirmDialog
          title="Delete files"
          confirm="Delete"
          onCancel={() => setOpen(undefined)}
          onConfirm={() => void remove(open.keys)}
        >
          Delete {open.keys.length === 1 ? `“${baseName(open.keys[0]!)}”` : `${open.keys.length} files`}? This cannot be
          undone.
        </ConfirmDialog>
      )}
    </section>
  )
}
