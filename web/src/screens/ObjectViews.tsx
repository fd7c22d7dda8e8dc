import type { ObjectEntry } from '../api/types'
import { baseName, formatBytes, formatDate } from '../format'
import { filesPath } from '../router'
import { Link } from '../Shell'
import { Thumbnail } from './Thumbnail'

export interface ItemActions {
  bucket: string
  selected: Set<string>
  toggle: (key: string) => void
  open: (kind: 'preview' | 'share' | 'presign' | 'lock', object: ObjectEntry) => void
  download: (key: string) => void
  remove: (key: string) => void
  canWrite: boolean
  canManage: boolean
}

function ItemButtons({ object, actions }: { object: ObjectEntry; actions: ItemActions }) {
  const name = baseName(object.key)
  return (
    <div className="item-actions">
      <button type="button" onClick={() => actions.download(object.key)} aria-label={`Download ${name}`}>
        Download
      </button>
      <button type="button" onClick={() => actions.open('share', object)} aria-label={`Share ${name}`}>
        Share
      </button>
      <button type="button" onClick={() => actions.open('presign', object)} aria-label={`Presigned URL for ${name}`}>
        Presign
      </button>
      {actions.canManage && (
        <button type="button" onClick={() => actions.open('lock', object)} aria-label={`Retention and legal hold of ${name}`}>
          Lock
        </button>
      )}
      {actions.canWrite && (
        <button type="button" className="danger" onClick={() => actions.remove(object.key)} aria-label={`Delete ${name}`}>
          Delete
        </button>
      )}
    </div>
  )
}

function SelectBox({ object, actions }: { object: ObjectEntry; actions: ItemActions }) {
  return (
    <input
      type="checkbox"
      checked={actions.selected.has(object.key)}
      onChange={() => actions.toggle(object.key)}
      aria-label={`Select ${baseName(object.key)}`}
    />
  )
}

export function ObjectTable(props: { prefixes: string[]; objects: ObjectEntry[]; actions: ItemActions }) {
  const { actions } = props
  return (
    <div className="table-wrap">
      <table className="objects">
        <thead>
          <tr>
            <th scope="col">
              <span className="visually-hidden">Select</span>
            </th>
            <th scope="col">Name</th>
            <th scope="col">Size</th>
            <th scope="col">Modified</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {props.prefixes.map((p) => (
            <tr key={p} className="folder">
              <td />
              <td>
                <Link to={filesPath(actions.bucket, p)}>
                  <span className="folder-mark" aria-hidden="true" />
                  {baseName(p)}/
                </Link>
              </td>
              <td />
              <td />
              <td />
            </tr>
          ))}
          {props.objects.map((o) => (
            <tr key={o.key} data-key={o.key}>
              <td>
                <SelectBox object={o} actions={actions} />
              </td>
              <td>
                <button type="button" className="link name" onClick={() => actions.open('preview', o)}>
                  {baseName(o.key)}
                </button>
              </td>
              <td>{formatBytes(o.size)}</td>
              <td>{formatDate(o.last_modified)}</td>
              <td>
                <ItemButtons object={o} actions={actions} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

export function ObjectGrid(props: { prefixes: string[]; objects: ObjectEntry[]; actions: ItemActions }) {
  const { actions } = props
  return (
    <ul className="grid">
      {props.prefixes.map((p) => (
        <li key={p} className="card folder">
          <Link to={filesPath(actions.bucket, p)}>
            <span className="thumb icon" aria-hidden="true">
              <span className="type-badge">FOLDER</span>
            </span>
            <span className="name">{baseName(p)}/</span>
          </Link>
        </li>
      ))}
      {props.objects.map((o) => (
        <li key={o.key} className="card" data-key={o.key}>
          <SelectBox object={o} actions={actions} />
          <button type="button" className="thumb-button" onClick={() => actions.open('preview', o)} aria-label={`Preview ${baseName(o.key)}`}>
            <Thumbnail bucket={actions.bucket} objectKey={o.key} contentType={o.content_type} etag={o.etag} />
          </button>
          <span className="name" title={o.key}>
            {baseName(o.key)}
          </span>
          <span className="muted">{formatBytes(o.size)}</span>
          <ItemButtons object={o} actions={actions} />
        </li>
      ))}
    </ul>
  )
}
