import * as api from '../api/client'
import { useObjectUrl } from '../hooks'
import { isThumbnailable } from '../format'

function icon(contentType: string): string {
  if (contentType.startsWith('image/')) return '🖼'
  if (contentType.startsWith('video/')) return '🎞'
  if (contentType.startsWith('audio/')) return '🎵'
  if (contentType === 'application/pdf') return '📕'
  if (contentType.startsWith('text/')) return '📄'
  return '📦'
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
      {icon(props.contentType)}
    </span>
  )
}
