import type { ReactNode } from 'react'
import { Dialog } from './Dialog'

export function ConfirmDialog(props: {
  title: string
  confirm: string
  children: ReactNode
  onConfirm: () => void
  onCancel: () => void
}) {
  return (
    <Dialog title={props.title} onClose={props.onCancel}>
      <p>{props.children}</p>
      <div className="actions">
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="button" className="danger" onClick={props.onConfirm}>
          {props.confirm}
        </button>
      </div>
    </Dialog>
  )
}
