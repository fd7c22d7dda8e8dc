import * as api from './api/client'
import type { Signed } from './api/types'

/** Saves an object by letting the browser fetch it from a short-lived signed
 *  URL: the bytes stream to disk with the browser's own progress, never held
 *  in this page's memory. The server answers `Content-Disposition:
 *  attachment` with its sandboxing CSP, so nothing the file contains can run. */
export async function downloadObject(bucket: string, key: string): Promise<void> {
  const signed = await api.sendJson<Signed>('POST', '/api/v1/presign', {
    bucket,
    key,
    method: 'GET',
    expires_in_seconds: 300,
  })
  // A gateway URL's signature covers the path, not `download` (appended as is,
  // leaving the signed fields byte for byte); a direct (S3) URL signs its whole query.
  const url = signed.transfer_mode === 'direct' ? signed.url : `${signed.url}${signed.url.includes('?') ? '&' : '?'}download=1`
  const link = document.createElement('a')
  link.href = new URL(url, window.location.origin).href
  link.rel = 'noopener'
  // A direct (S3) URL may answer inline: a tab of its own, so this page (and its uploads) stays.
  if (signed.transfer_mode === 'direct') link.target = '_blank'
  // A gateway URL is this origin's: saved as a download, not navigated to, so
  // the next file of a selection cannot cancel this one, and an error answer
  // never replaces the page.
  else link.download = ''
  document.body.appendChild(link)
  link.click()
  link.remove()
}
