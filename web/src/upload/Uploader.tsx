import { useEffect, useRef } from 'react'
import Dashboard from '@uppy/dashboard'
import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import { createUppy, target } from './uppy'

/** Drag-and-drop files and folders into the current folder, with per-file and
 *  total progress, pause/resume/cancel and per-file errors (Uppy Dashboard). */
export function Uploader(props: { bucket: string; prefix: string; onUploaded: () => void }) {
  const host = useRef<HTMLDivElement>(null)
  const latest = useRef(props)
  latest.current = props

  useEffect(() => {
    if (!host.current) return
    const uppy = createUppy()
    uppy.use(Dashboard, {
      inline: true,
      target: host.current,
      width: '100%',
      height: 380,
      theme: 'auto',
      proudlyDisplayPoweredByUppy: false,
      fileManagerSelectionType: 'both',
      note: 'Large files upload in parts and resume if you add the same file again after a reload.',
    })
    uppy.on('file-added', (file) => {
      void target(uppy, file, latest.current.bucket, latest.current.prefix)
    })
    uppy.on('complete', () => latest.current.onUploaded())
    return () => {
      uppy.destroy()
    }
  }, [])

  return <div className="uploader" ref={host} data-testid="uploader" />
}
