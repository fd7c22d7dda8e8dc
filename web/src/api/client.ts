// The one place that talks HTTP: bearer token in memory only, the refresh
// token in an HttpOnly cookie (X-Coffer-Session: cookie), problem+json errors.

export class ApiError extends Error {
  status: number
  type: string
  constructor(status: number, type: string, message: string) {
    super(message)
    this.status = status
    this.type = type
  }
  /** True for `409 …/object-locked`. */
  get locked(): boolean {
    return this.type.endsWith('object-locked')
  }
}

interface TokenBody {
  access_token: string
  expires_in: number
}

let accessToken: string | null = null
let refreshTimer: number | undefined
let refreshing: Promise<boolean> | null = null
let onExpired: (() => void) | null = null

const SESSION = { 'X-Coffer-Session': 'cookie' }

export function setExpiryHandler(handler: () => void): void {
  onExpired = handler
}

export function currentToken(): string | null {
  return accessToken
}

function adopt(body: TokenBody): void {
  accessToken = body.access_token
  window.clearTimeout(refreshTimer)
  // Refresh a minute before expiry (at least after 10 s).
  const inMs = Math.max(10, body.expires_in - 60) * 1000
  refreshTimer = window.setTimeout(() => void refreshSession(), inMs)
}

export function dropSession(): void {
  accessToken = null
  window.clearTimeout(refreshTimer)
}

export async function problemOf(response: Response): Promise<ApiError> {
  let type = ''
  let message = `${response.status} ${response.statusText}`
  try {
    const body = (await response.json()) as { type?: string; detail?: string; title?: string }
    type = body.type ?? ''
    message = body.detail ?? body.title ?? message
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, type, message)
}

/** Runs `refresh` while holding a lock shared by every tab of this origin.
 *  Refresh tokens rotate and a reused one revokes the whole session, so two
 *  tabs refreshing at once (a restored session) must take turns: the second
 *  then sends the cookie the first one's refresh set. */
async function oneTabAtATime<T>(refresh: () => Promise<T>): Promise<T> {
  if (typeof navigator !== 'undefined' && navigator.locks) {
    return (await navigator.locks.request('coffer-session-refresh', refresh)) as T
  }
  return refresh()
}

/** Uses the refresh cookie to get a new access token; false if there is no session. */
export function refreshSession(): Promise<boolean> {
  if (refreshing) return refreshing
  refreshing = (async () => {
    try {
      const response = await oneTabAtATime(() =>
        fetch('/api/v1/auth/refresh', {
          method: 'POST',
          headers: SESSION,
          credentials: 'same-origin',
        }),
      )
      if (!response.ok) {
        // Only a refused session ends it; a busy or failing server (429, 5xx) leaves it for the next try.
        if (response.status === 401 || response.status === 403) dropSession()
        return false
      }
      adopt((await response.json()) as TokenBody)
      return true
    } catch {
      return false
    } finally {
      refreshing = null
    }
  })()
  return refreshing
}

export type LoginResult = { kind: 'ok' } | { kind: 'mfa'; mfaToken: string }

export async function login(username: string, password: string): Promise<LoginResult> {
  const response = await fetch('/api/v1/auth/login', {
    method: 'POST',
    headers: { ...SESSION, 'Content-Type': 'application/json' },
    credentials: 'same-origin',
    body: JSON.stringify({ username, password }),
  })
  if (!response.ok) throw await problemOf(response)
  const body = (await response.json()) as TokenBody & { mfa_required?: boolean; mfa_token?: string }
  if (body.mfa_required && body.mfa_token) return { kind: 'mfa', mfaToken: body.mfa_token }
  adopt(body)
  return { kind: 'ok' }
}

export async function completeMfa(mfaToken: string, code: string): Promise<void> {
  const response = await fetch('/api/v1/auth/mfa', {
    method: 'POST',
    headers: { ...SESSION, 'Content-Type': 'application/json' },
    credentials: 'same-origin',
    body: JSON.stringify({ mfa_token: mfaToken, code }),
  })
  if (!response.ok) throw await problemOf(response)
  adopt((await response.json()) as TokenBody)
}

/** Ends the session on the server. Throws, keeping it, when the server did
 *  not end it (a 429, a 5xx, no network): the refresh cookie would still sign
 *  the next person at this browser in. */
export async function logout(): Promise<void> {
  const response = await fetch('/api/v1/auth/logout', { method: 'POST', headers: SESSION, credentials: 'same-origin' })
  // 401: no session is left to end.
  if (!response.ok && response.status !== 401) throw await problemOf(response)
  dropSession()
}

/** A request with the bearer token; one refresh-and-retry on 401. */
export async function request(path: string, init: RequestInit = {}, retried = false): Promise<Response> {
  const headers = new Headers(init.headers)
  if (accessToken) headers.set('Authorization', `Bearer ${accessToken}`)
  const response = await fetch(path, { ...init, headers, credentials: 'same-origin' })
  if (response.status === 401 && !retried) {
    if (await refreshSession()) return request(path, init, true)
    dropSession()
    onExpired?.()
  }
  return response
}

async function checked(path: string, init: RequestInit = {}): Promise<Response> {
  const response = await request(path, init)
  if (!response.ok) throw await problemOf(response)
  return response
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await checked(path)).json()) as T
}

export async function sendJson<T>(method: string, path: string, body?: unknown, headers: HeadersInit = {}): Promise<T> {
  const init: RequestInit = { method, headers: { ...headers } }
  if (body !== undefined) {
    init.headers = { ...headers, 'Content-Type': 'application/json' }
    init.body = JSON.stringify(body)
  }
  const response = await checked(path, init)
  if (response.status === 204) return undefined as T
  const text = await response.text()
  return (text ? JSON.parse(text) : undefined) as T
}

export async function getBlob(path: string): Promise<Blob> {
  return (await checked(path)).blob()
}

export async function getText(path: string, headers: HeadersInit = {}): Promise<string> {
  return (await checked(path, { headers })).text()
}

/** Path segments of an object key, each percent-encoded (the key's `/` kept). */
export function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/')
}

export function objectPath(bucket: string, key: string): string {
  return `/api/v1/buckets/${encodeURIComponent(bucket)}/objects/${encodeKey(key)}`
}

export function bucketPath(bucket: string, rest = ''): string {
  return `/api/v1/buckets/${encodeURIComponent(bucket)}${rest}`
}
