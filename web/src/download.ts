import * as api from './api/client'
import { baseName } from './format'

/** Saves an object through a Blob URL typed as octet-stream, so nothing the
 *  file contains can run in this origin. */
export async function downloadObject(bucket: string, key: string): Promise<void> {
  const blob = await api.getBlob(`${api.objectPath(bucket, key)}?download=1`)
  const url = URL.createObjectURL(new Blob([blob], { type: 'application/octet-stream' }))
  const link = document.createElement('a')
  link.href = url
  link.download = baseName(key)
  link.rel = 'noopener'
  document.body.appendChild(link)
  link.click()
  link.remove()
  window.setTimeout(() => URL.revokeObjectURL(url), 60_000)
}
