import { filesPath } from '../router'
import { Link } from '../Shell'

export function Breadcrumbs({ bucket, prefix }: { bucket: string; prefix: string }) {
  const parts = prefix.split('/').filter(Boolean)
  return (
    <nav aria-label="Breadcrumb" className="crumbs">
      <ol>
        <li>
          <Link to="/files">Buckets</Link>
        </li>
        <li>
          <Link to={filesPath(bucket)} current={parts.length === 0}>
            {bucket}
          </Link>
        </li>
        {parts.map((part, i) => (
          <li key={i}>
            <Link to={filesPath(bucket, parts.slice(0, i + 1).join('/') + '/')} current={i === parts.length - 1}>
              {part}
            </Link>
          </li>
        ))}
      </ol>
    </nav>
  )
}
