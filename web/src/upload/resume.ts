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

/** Whether the parts already on the server came from this very file: the
 *  first part's SHA-256 (its ETag) must match the file's first bytes. Without
 *  WebCrypto (plain-http origins), the file's modification time must match. */
export async function sameFile(
  data: Blob,
  lastModified: number | undefined,
  remembered: Remembered,
  parts: { part_number: number; size: number; etag: string }[],
): Promise<boolean> {
  const first = parts.find((p) => p.part_number === 1)
  if (typeof crypto !== 'undefined' && crypto.subtle) {
    if (!first) return true
    return (await sha256Hex(data.slice(0, first.size))) === first.etag.replace(/"/g, '').toLowerCase()
  }
  return lastModified !== undefined && lastModified === remembered.lastModified
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
