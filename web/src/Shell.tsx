import { useState, type MouseEvent, type ReactNode } from 'react'
import { navigate, usePath } from './router'
import { useSession } from './session'
import { Files } from './screens/Files'
import { Shares } from './screens/Shares'
import { Account } from './screens/Account'
import { Users } from './admin/Users'
import { Buckets } from './admin/Buckets'
import { Retention } from './admin/Retention'
import { Audit } from './admin/Audit'

export function Link(props: { to: string; children: ReactNode; className?: string; current?: boolean }) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return
    e.preventDefault()
    navigate(props.to)
  }
  return (
    <a href={props.to} onClick={onClick} className={props.className} aria-current={props.current ? 'page' : undefined}>
      {props.children}
    </a>
  )
}

function route(path: string, role: string): ReactNode {
  const pathname = path.split('?')[0]!
  if (pathname === '/' || pathname.startsWith('/files')) return role === 'auditor' ? <Audit /> : <Files />
  if (pathname === '/shares') return <Shares />
  if (pathname === '/account') return <Account />
  if (pathname === '/admin/users' && role === 'admin') return <Users />
  if (pathname === '/admin/buckets' && role === 'admin') return <Buckets />
  if (pathname === '/admin/retention' && role === 'admin') return <Retention />
  if (pathname === '/admin/audit' && role !== 'user') return <Audit />
  return (
    <section>
      <h1>Not found</h1>
      <p>
        <Link to="/files">Go to your files</Link>
      </p>
    </section>
  )
}

export function Shell() {
  const { me, signOut } = useSession()
  const path = usePath()
  const [signOutError, setSignOutError] = useState<string>()
  const trySignOut = () => {
    setSignOutError(undefined)
    signOut().catch((e: unknown) => setSignOutError(`Not signed out: ${e instanceof Error ? e.message : String(e)}`))
  }
  const links: [string, string][] = []
  if (me.role !== 'auditor') links.push(['/files', 'Files'], ['/shares', 'Shares'])
  links.push(['/account', 'Account'])
  if (me.role === 'admin') {
    links.push(['/admin/users', 'Users'], ['/admin/buckets', 'Buckets'], ['/admin/retention', 'Retention'])
  }
  if (me.role !== 'user') links.push(['/admin/audit', 'Audit'])
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Coffer</span>
        <nav aria-label="Main">
          {links.map(([to, label]) => (
            <Link key={to} to={to} current={path.startsWith(to)}>
              {label}
            </Link>
          ))}
        </nav>
        <span className="who" title="Signed in as">
          {me.username} ({me.role})
        </span>
        <button type="button" onClick={trySignOut}>
          Sign out
        </button>
        {signOutError && (
          <span className="error" role="alert">
            {signOutError}
          </span>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {route(path, me.role)}
      </main>
    </>
  )
}
