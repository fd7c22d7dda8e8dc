import { useSession } from '../session'
import { formatBytes } from '../format'
import { PasswordForm } from './PasswordForm'
import { TotpSection } from './TotpSection'
import { ApiKeys } from './ApiKeys'

export function Account() {
  const { me } = useSession()
  return (
    <section className="account">
      <h1>Account</h1>
      <p>
        Signed in as <strong>{me.username}</strong> ({me.role}). Storage used: {formatBytes(me.used_bytes)}
        {me.quota_bytes != null ? ` of ${formatBytes(me.quota_bytes)}` : ''}.
      </p>
      <PasswordForm />
      <TotpSection />
      <ApiKeys />
    </section>
  )
}
