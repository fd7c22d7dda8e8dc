import { usePath, parseFilesPath } from '../router'
import { BucketList } from './BucketList'
import { Browser } from './Browser'

export function Files() {
  const path = usePath()
  const { bucket, prefix } = parseFilesPath(path)
  if (!bucket) return <BucketList />
  const folder = prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix
  return <Browser key={bucket} bucket={bucket} prefix={folder} />
}
