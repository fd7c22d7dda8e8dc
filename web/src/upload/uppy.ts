// Uppy wired to Coffer's resumable multipart API (docs: API.md "Resumable
// multipart uploads"). Uppy does chunking, concurrency, retries, pause/resume;
// these functions only translate its calls into Coffer's endpoints.
import Uppy, { type Body, type Meta, type UppyFile } from '@uppy/core'
import AwsS3, { type AwsS3Part, type AwsS3UploadParameters } from '@uppy/aws-s3'
import * as api from '../api/client'
import { fingerprint, forget, recall, remember, sameFile } from './resume'

export interface CofferMeta {
  cofferBucket: string
  cofferKey: string
  resumeId: string
}

type File = UppyFile<Meta, Body>
export type CofferUppy = Uppy<Meta, Body>

/** Where a file goes (set by `target` when it is added). */
function dest(file: File): CofferMeta {
  const meta = file.meta as Meta & Partial<CofferMeta>
  return { cofferBucket: meta.cofferBucket ?? '', cofferKey: meta.cofferKey ?? '', resumeId: meta.resumeId ?? '' }
}

const MIB = 1024 * 1024
/** Files above this go through the multipart API (resumable); smaller ones are one PUT. */
export const MULTIPART_THRESHOLD = 5 * MIB
/** Every part but the last has this size; resuming checks the parts on the server against it. */
const CHUNK_SIZE = 8 * MIB

function uploadsPath(file: File, rest = ''): string {
  return api.bucketPath(dest(file).cofferBucket, `/uploads${rest}`)
}

/** Uppy parses the URLs it is given: make them absolute. */
function absolute(path: string): string {
  return new URL(path, window.location.origin).href
}

function auth(): Record<string, string> {
  const token = api.currentToken()
  return token ? { Authorization: `Bearer ${token}` } : {}
}

/** A message a person can act on, from a problem document. */
export function explain(status: number, type: string, detail: string): string {
  if (type.endsWith('quota-exceeded')) return `Over your storage quota: ${detail}`
  if (type.endsWith('object-locked')) return `Locked: ${detail}`
  if (status === 413) return `Too large: ${detail}`
  if (status === 403) return `Not allowed: ${detail}`
  if (status === 401) return 'Your session expired; sign in again and re-add the file to resume.'
  return detail
}

async function checked<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise
  } catch (e) {
    if (e instanceof api.ApiError) {
      throw Object.assign(new Error(explain(e.status, e.type, e.message)), { source: { status: e.status } })
    }
    throw e
  }
}

type SendOptions = {
  signature: AwsS3UploadParameters
  body: FormData | Blob
  onProgress: (event: { loaded: number; lengthComputable: boolean }) => void
  onComplete: (etag: string) => void
  signal?: AbortSignal
}

/** Sends one part (or a whole small file) with XHR for progress events. An
 *  access token that expired meanwhile (a long upload, a laptop asleep) is
 *  renewed once from the session, as `api.request` does, and the part sent again. */
async function sendBytes(options: SendOptions): Promise<{ ETag: string }> {
  try {
    return await sendOnce(options)
  } catch (error) {
    const status = (error as { source?: { status?: number } }).source?.status
    if (status !== 401 || !(await api.refreshSession())) throw error
    return sendOnce(options)
  }
}

function sendOnce(options: SendOptions): Promise<{ ETag: string }> {
  const { signature, body, onProgress, onComplete, signal } = options
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open(signature.method ?? 'PUT', signature.url, true)
    for (const [name, value] of Object.entries({ ...signature.headers, ...auth() })) xhr.setRequestHeader(name, value)
    const abort = () => xhr.abort()
    signal?.addEventListener('abort', abort)
    xhr.upload.addEventListener('progress', (event) => onProgress(event))
    xhr.addEventListener('abort', () => {
      signal?.removeEventListener('abort', abort)
      reject(new DOMException('Aborted', 'AbortError'))
    })
    xhr.addEventListener('error', () => {
      signal?.removeEventListener('abort', abort)
      reject(Object.assign(new Error('Network error while uploading'), { source: { status: 0 } }))
    })
    xhr.addEventListener('load', () => {
      signal?.removeEventListener('abort', abort)
      if (xhr.status < 200 || xhr.status >= 300) {
        let type = ''
        let detail = `${xhr.status} ${xhr.statusText}`
        try {
          const problem = JSON.parse(xhr.responseText) as { type?: string; detail?: string }
          type = problem.type ?? ''
          detail = problem.detail ?? detail
        } catch {
          // not a problem document
        }
        reject(Object.assign(new Error(explain(xhr.status, type, detail)), { source: { status: xhr.status } }))
        return
      }
      let etag = xhr.getResponseHeader('ETag') ?? ''
      if (!etag) {
        try {
          etag = (JSON.parse(xhr.responseText) as { etag?: string }).etag ?? ''
        } catch {
          etag = ''
        }
      }
      onProgress({ loaded: body instanceof Blob ? body.size : 0, lengthComputable: true })
      onComplete(etag)
      resolve({ ETag: etag })
    })
    xhr.send(body)
  })
}

/** Uppy instances being closed by leaving the page, not by a person's cancel. */
const closing = new WeakSet<CofferUppy>()

/** Closes `uppy` (leaving the bucket) without deleting its multipart uploads
 *  on the server: adding the same file again resumes them, and the server
 *  expires what is never resumed. */
export function closeKeepingUploads(uppy: CofferUppy): void {
  closing.add(uppy)
  uppy.destroy()
}

export function createUppy(): CofferUppy {
  const uppy = new Uppy<Meta, Body>({ autoProceed: false, allowMultipleUploadBatches: true })
  uppy.use(AwsS3, {
    id: 'CofferMultipart',
    limit: 3,
    shouldUseMultipart: (file) => (file.size ?? 0) > MULTIPART_THRESHOLD,
    getChunkSize: () => CHUNK_SIZE,
    uploadPartBytes: sendBytes,
    getUploadParameters: (file) => ({
      method: 'PUT',
      url: absolute(api.objectPath(dest(file).cofferBucket, dest(file).cofferKey)),
      // No type known: none sent, so that the server infers it as for a multipart upload.
      headers: (file.type ? { 'Content-Type': file.type } : {}) as Record<string, string>,
    }),
    createMultipartUpload: async (file) => {
      // A fresh start (Uppy's Retry after a failure) leaves the earlier upload of
      // this file nothing to resume into: it goes, with the quota its parts hold.
      const earlier = recall(dest(file).resumeId)
      if (earlier) {
        await api
          .request(uploadsPath(file, `/${encodeURIComponent(earlier.uploadId)}`), { method: 'DELETE' })
          .catch(() => undefined)
        forget(dest(file).resumeId)
      }
      const body = { key: dest(file).cofferKey, content_type: file.type || undefined, size: file.size ?? undefined }
      const created = await checked(api.sendJson<{ upload_id: string; key: string }>('POST', uploadsPath(file), body))
      const data = file.data as Blob | undefined
      const lastModified = data && 'lastModified' in data ? (data as globalThis.File).lastModified : undefined
      remember(dest(file).resumeId, { uploadId: created.upload_id, key: created.key, lastModified })
      return { uploadId: created.upload_id, key: created.key }
    },
    listParts: async (file, { uploadId }) => {
      const listed = await checked(
        api.getJson<{ parts: { part_number: number; size: number; etag: string }[] }>(
          uploadsPath(file, `/${encodeURIComponent(uploadId ?? '')}/parts`),
        ),
      )
      return listed.parts.map((p): AwsS3Part => ({ PartNumber: p.part_number, Size: p.size, ETag: p.etag }))
    },
    signPart: (file, { uploadId, partNumber }) => ({
      method: 'PUT',
      url: absolute(uploadsPath(file, `/${encodeURIComponent(uploadId)}/parts/${partNumber}`)),
      headers: {},
    }),
    completeMultipartUpload: async (file, { uploadId, parts }) => {
      const body = { parts: parts.map((p) => ({ part_number: p.PartNumber, etag: p.ETag })) }
      await checked(api.sendJson('POST', uploadsPath(file, `/${encodeURIComponent(uploadId ?? '')}/complete`), body))
      forget(dest(file).resumeId)
      return {}
    },
    abortMultipartUpload: async (file, { uploadId }) => {
      if (closing.has(uppy)) return
      // Uppy also aborts an upload that failed (retries used up, a refused
      // part): its file is still listed then. Its parts stay on the server,
      // so that adding the file again resumes it (Uppy's own Retry starts
      // afresh, and `createMultipartUpload` then deletes them; unresumed, the
      // server expires them after `upload_ttl`).
      if (uppy.getFile(file.id)) return
      forget(dest(file).resumeId)
      if (uploadId) await api.request(uploadsPath(file, `/${encodeURIComponent(uploadId)}`), { method: 'DELETE' })
    },
  })
  return uppy
}

/** Names a newly added file's target and, if an earlier upload of the same
 *  file is still open on the server, lets Uppy resume it. */
export async function target(
  uppy: CofferUppy,
  file: File,
  bucket: string,
  prefix: string,
): Promise<void> {
  const relative = (file.meta.relativePath as string | undefined) ?? file.name ?? 'file'
  const key = prefix + relative.replace(/^\/+/, '')
  const data = file.data as globalThis.File | Blob | undefined
  const lastModified = data && 'lastModified' in data ? data.lastModified : undefined
  const resumeId = fingerprint(bucket, key, file.size)
  uppy.setFileMeta(file.id, { cofferBucket: bucket, cofferKey: key, resumeId })
  const earlier = recall(resumeId)
  if (!earlier || !data || (file.size ?? 0) <= MULTIPART_THRESHOLD) return
  const response = await api.request(api.bucketPath(bucket, `/uploads/${encodeURIComponent(earlier.uploadId)}/parts`))
  const listed = response.ok
    ? ((await response.json()) as { parts: { part_number: number; size: number; etag: string }[] })
    : undefined
  if (listed && (await sameFile(data, lastModified, earlier, listed.parts, CHUNK_SIZE))) {
    uppy.setFileState(file.id, { s3Multipart: { uploadId: earlier.uploadId, key: earlier.key } } as never)
    uppy.info(`Resuming the earlier upload of ${file.name ?? key}`, 'info', 5000)
    return
  }
  forget(resumeId)
  // Another file under the same name: the old parts are of no use.
  if (listed) void api.request(api.bucketPath(bucket, `/uploads/${encodeURIComponent(earlier.uploadId)}`), { method: 'DELETE' })
}
