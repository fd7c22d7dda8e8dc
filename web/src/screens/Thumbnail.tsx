import * as api from '../api/client'
import { useObjectUrl } from '../hooks'
import { isThumbnailable } from '../format'

/** A short label standing in for a thumbnail (no emoji: not every system has the font). */
function label(contentType: string, key: string): string {
  const dot = key.lastIndexOf('.')
  const extension = dot > key.lastIndexOf('/') && key.length - dot <= 6 ? key.slice(dot + 1) : ''
  if (extension) return extension.toUpperCase()
  return (contentType.split('/')[1] ?? 'file').split(/[;+.-]/)[0]!.slice(0, 5).toUpperCase()
}

/** A 256 px thumbnail fetched with the bearer token, shown from a blob: URL. */
export function Thumbnail(props: { bucket: string; objectKey: string; contentType: string; etag: string; size?: number }) {
  const wanted = isThumbnailable(props.contentType)
  const url = useObjectUrl(
    wanted
      ? () => api.getBlob(`${api.bucketPath(props.bucket, '/thumbnails/' + api.encodeKey(props.objectKey))}?size=${props.size ?? 256}`)
      : null,
    [props.bucket, props.objectKey, props.etag, wanted],
  )
  if (url) return <img className="thumb" src={url} alt="" data-testid="thumbnail" />
  return (
    <span className="thumb icon" aria-hidden="true">
      <span className="type-badge">{label(props.contentType, props.objectKey)}</span>
    </span>
  )
}
