import { useEffect, useState } from 'react'
import * as api from '../api/client'
import type { ObjectEntry, Signed } from '../api/types'
import { Dialog } from '../components/Dialog'
import { ErrorNote } from '../components/Notice'
import { baseName, formatBytes, formatDate, previewKind } from '../format'
import { errorText, useObjectUrl } from '../hooks'
import { downloadObject } from '../download'

const TEXT_LIMIT = 64 * 1024

function ImagePreview({ bucket, object }: { bucket: string; object: ObjectEntry }) {
  const thumb = useObjectUrl(
    () => api.getBlob(`${api.bucketPath(bucket, '/thumbnails/' + api.encodeKey(object.key))}?size=1024`),
    [bucket, object.key],
  )
  // Browsers cannot show TIFF: its 1024 px WebP thumbnail is the preview.
  const browserShows = !object.content_type.toLowerCase().startsWith('image/tiff')
  const full = useObjectUrl(
    browserShows ? () => api.getBlob(api.objectPath(bucket, object.key)) : null,
    [bucket, object.key, browserShows],
  )
  const src = full ?? thumb
  if (!src) return <p role="status">Loading preview…</p>
  return <img className="preview-media" src={src} alt={baseName(object.key)} data-full={full ? 'true' : 'false'} />
}

function SignedMedia({ bucket, object, kind }: { bucket: string; object: ObjectEntry; kind: 'video' | 'audio' | 'pdf' }) {
  const [url, setUrl] = useState<string>()
  const [error, setError] = useState<string>()
  useEffect(() => {
    api
      // Through Coffer: the page's CSP lets media load from it, not from the object store's own host.
      .sendJson<Signed>('POST', '/api/v1/presign', {
        bucket,
        key: object.key,
        method: 'GET',
        expires_in_seconds: 3600,
        transfer_mode: 'gateway',
      })
      .then((signed) => setUrl(signed.url), (e: unknown) => setError(errorText(e)))
  }, [bucket, object.key])
  if (error) return <ErrorNote>{error}</ErrorNote>
  if (!url) return <p role="status">Loading preview…</p>
  if (kind === 'video') return <video className="preview-media" src={url} controls />
  if (kind === 'audio') return <audio src={url} controls />
  return (
    <p>
      <a href={url} target="_blank" rel="noopener noreferrer">
        Open the PDF in a new tab
      </a>
    </p>
  )
}

function TextPreview({ bucket, object }: { bucket: string; object: ObjectEntry }) {
  const [text, setText] = useState<string>()
  const [error, setError] = useState<string>()
  useEffect(() => {
    // An empty file has no first byte to ask a range of (416).
    if (object.size === 0) {
      setText('')
      return
    }
    api
      .getText(api.objectPath(bucket, object.key), { Range: `bytes=0-${TEXT_LIMIT - 1}` })
      .then(setText, (e: unknown) => setError(errorText(e)))
  }, [bucket, object.key, object.size])
  if (error) return <ErrorNote>{error}</ErrorNote>
  if (text === undefined) return <p role="status">Loading preview…</p>
  return (
    <pre className="text-preview">
      {text}
      {object.size > TEXT_LIMIT ? '\n…' : ''}
    </pre>
  )
}

export function Preview({ bucket, object, onClose }: { bucket: string; object: ObjectEntry; onClose: () => void }) {
  const kind = previewKind(object.content_type)
  const [error, setError] = useState<string>()
  return (
    <Dialog title={baseName(object.key)} onClose={onClose} wide>
      <div className="preview">
        {kind === 'image' && <ImagePreview bucket={bucket} object={object} />}
        {(kind === 'video' || kind === 'audio' || kind === 'pdf') && <SignedMedia bucket={bucket} object={object} kind={kind} />}
        {kind === 'text' && <TextPreview bucket={bucket} object={object} />}
        {kind === 'none' && <p>No preview for this type of file ({object.content_type}). Download it to open it.</p>}
      </div>
      <dl className="facts">
        <dt>Key</dt>
        <dd>{object.key}</dd>
        <dt>Size</dt>
        <dd>{formatBytes(object.size)}</dd>
        <dt>Type</dt>
        <dd>{object.content_type}</dd>
        <dt>Modified</dt>
        <dd>{formatDate(object.last_modified)}</dd>
      </dl>
      <ErrorNote>{error}</ErrorNote>
      <div className="actions">
        <button
          type="button"
          className="primary"
          onClick={() => void downloadObject(bucket, object.key).catch((e: unknown) => setError(errorText(e)))}
        >
          Download
        </button>
      </div>
    </Dialog>
  )
}
