// Remembers multipart uploads by file identity so that re-adding the same file
// after a page reload continues where it stopped (only ids, never tokens).

export interface Remembered {
  uploadId: string
  key: string
  lastModified?: number
}

const PREFIX = 'coffer.upload.'

export function fingerprint(bucket: string, key: string, size: number | null): string {
  return `${PREFIX}${bucket}\u0000${key}\u0000${size ?? 0}`
}

async function sha256Hex(blob: Blob): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('')
}

/** Whether the parts already on the server came from this very file, so
 *  that reusing them cannot assemble a mix of two versions: every part on the
 *  server must have the size and the SHA-256 (its ETag) of the same bytes of
 *  the file at `chunkSize` steps (bytes not uploaded yet may differ: they are
 *  sent now). Without WebCrypto (plain-http origins) the sizes and the
 *  remembered modification time have to do. */
export async function sameFile(
  data: Blob,
  lastModified: number | undefined,
  remembered: Remembered,
  parts: { part_number: number; size: number; etag: string }[],
  chunkSize: number,
): Promise<boolean> {
  const hashing = typeof crypto !== 'undefined' && !!crypto.subtle
  if (!hashing && (lastModified === undefined || lastModified !== remembered.lastModified)) return false
  for (const part of parts) {
    const start = (part.part_number - 1) * chunkSize
    const expected = Math.min(chunkSize, data.size - start)
    if (expected <= 0 || part.size !== expected) return false
    if (!hashing) continue
    const etag = part.etag.replace(/"/g, '').toLowerCase()
    if ((await sha256Hex(data.slice(start, start + part.size))) !== etag) return false
  }
  return true
}

export function recall(id: string): Remembered | undefined {
  try {
    const raw = localStorage.getItem(id)
    return raw ? (JSON.parse(raw) as Remembered) : undefined
  } catch {
    return undefined
  }
}

export function remember(id: string, value: Remembered): void {
  localStorage.setItem(id, JSON.stringify(value))
}

export function forget(id: string | undefined): void {
  if (id) localStorage.removeItem(id)
}

/** Signing out forgets every remembered upload: their bucket and key names
 *  must not stay behind for the next person at this browser. */
export function forgetAll(): void {
  const remembered: string[] = []
  for (let index = 0; index < localStorage.length; index++) {
    const id = localStorage.key(index)
    if (id?.startsWith(PREFIX)) remembered.push(id)
  }
  remembered.forEach((id) => localStorage.removeItem(id))
}
