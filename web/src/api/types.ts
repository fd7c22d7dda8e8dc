export type Role = 'admin' | 'user' | 'auditor'
export type Permission = 'read' | 'write' | 'manage'

export interface Me {
  username: string
  role: Role
  mfa_enabled: boolean
  quota_bytes: number | null
  used_bytes: number
}

export interface Bucket {
  name: string
  created_at: string
  permission: Permission
  retention_enforcement?: string
}

export interface ObjectEntry {
  key: string
  size: number
  etag: string
  content_type: string
  last_modified: string
}

export interface Listing {
  objects: ObjectEntry[]
  prefixes: string[]
  next_cursor: string | null
}

export interface Share {
  id: string
  bucket: string
  key: string
  expires_at: string | null
  max_downloads: number | null
  downloads?: number
  has_password?: boolean
  created_at?: string
  revoked?: boolean
}

export interface ApiKey {
  id: string
  name: string
  prefix: string
  scopes: string[]
  expires_at: string | null
  created_at?: string
  last_used_at?: string | null
  revoked_at?: string | null
}

export interface User {
  username: string
  role: Role
  disabled: boolean
  quota_bytes: number | null
  used_bytes?: number
  mfa_enabled?: boolean
  created_at?: string
}

export interface Grant {
  username: string
  permission: Permission
}

export interface AuditEvent {
  id: number
  at: string
  actor: string
  action: string
  bucket: string | null
  key: string | null
  outcome: string
  ip: string | null
  user_agent: string | null
  request_id: string | null
  details: unknown
  hash: string
}

export interface LifecycleRule {
  id: string
  prefix?: string
  enabled: boolean
  expire_after_days?: number | null
  abort_incomplete_uploads_after_days?: number | null
}

export interface Signed {
  url: string
  method: string
  headers: Record<string, string>
  expires_at: string
  transfer_mode?: 'gateway' | 'direct'
}
