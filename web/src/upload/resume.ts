// Remembers multipart uploads by file identity so that re-adding the same file
// after a page reload continues where it stopped (only ids, never tokens).

export interface Remembered {
  uploadId: string
  key: string
}

const PREFIX = 'coffer.upload.'

export function fingerprint(bucket: string, key: string, file: { size: number | null; lastModified?: number }): string {
  return `${PREFIX}${bucket}\u0000${key}\u0000${file.size ?? 0}\u0000${file.lastModified ?? 0}`
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
