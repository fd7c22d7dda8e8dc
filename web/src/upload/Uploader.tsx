import { useEffect, useRef } from 'react'
import Dashboard from '@uppy/dashboard'
import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import { closeKeepingUploads, createUppy, target, type CofferUppy } from './uppy'

/** Drag-and-drop files and folders into the current folder, with per-file and
 *  total progress, pause/resume/cancel and per-file errors (Uppy Dashboard). */
export function Uploader(props: { bucket: string; prefix: string; visible: boolean; onUploaded: () => void }) {
  const host = useRef<HTMLDivElement>(null)
  const instance = useRef<CofferUppy>(undefined)
  const latest = useRef(props)
  latest.current = props

  // Hidden while uploads run, it keeps them going; hidden once they are all
  // done, it starts empty the next time it is shown.
  useEffect(() => {
    const uppy = instance.current
    if (props.visible || !uppy) return
    const running = uppy.getFiles().some((file) => file.progress.uploadStarted && !file.progress.uploadComplete)
    if (running) return
    try {
      uppy.clear()
    } catch {
      // an upload Uppy still tracks: the files stay listed
    }
  }, [props.visible])

  useEffect(() => {
    if (!host.current) return
    const uppy = createUppy()
    instance.current = uppy
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
    // Checking whether a file resumes an earlier upload hashes its stored
    // parts; an upload must not start before the check has decided.
    const targeting = new Map<string, Promise<void>>()
    uppy.on('file-added', (file) => {
      targeting.set(file.id, target(uppy, file, latest.current.bucket, latest.current.prefix).catch(() => undefined))
    })
    uppy.addPreProcessor(async (fileIds) => {
      await Promise.all(fileIds.map((id) => targeting.get(id)))
    })
    uppy.on('complete', () => latest.current.onUploaded())
    // Leaving the bucket keeps what was uploaded so far: adding the file again resumes.
    return () => closeKeepingUploads(uppy)
  }, [])

  return <div className="uploader" ref={host} data-testid="uploader" />
}
