// The whole journey of the issue, in order: the admin secures the account,
// sets up a user and a bucket; the user uploads, previews, downloads and
// shares; a legal hold stops a delete; the audit log shows all of it.
import { expect, test, type Browser, type BrowserContext, type CDPSession, type Page } from '@playwright/test'
import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { admin, png, screenshot, totpCode } from './fixtures'

const HOSTILE_NAME = '<img src=x onerror=alert(1)>.png'
const BUCKET = 'team-files'
const USER = 'wendy'
const USER_PASSWORD = 'Wendy-e2e-' + randomBytes(6).toString('hex')
const SHARE_PASSWORD = 'share-pass-' + randomBytes(4).toString('hex')
const NOTES = 'Meeting notes: ship the UI.\n'.repeat(20)
const BIG = randomBytes(30 * 1024 * 1024)

let adminContext: BrowserContext
let adminPage: Page
let userContext: BrowserContext
let userPage: Page
let totpSecret = ''
let shareUrl = ''
const dialogs: string[] = []
const cspViolations: string[] = []

async function newPage(browser: Browser): Promise<[BrowserContext, Page]> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message())
    void dialog.dismiss()
  })
  page.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) cspViolations.push(message.text())
  })
  return [context, page]
}

async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.goto('/')
  await page.getByLabel('Username').fill(username)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
}

async function openBucket(page: Page): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Files' }).click()
  await page.getByRole('link', { name: new RegExp(BUCKET) }).click()
  await expect(page.getByRole('navigation', { name: 'Breadcrumb' })).toContainText(BUCKET)
}

/** Slows the page's uploads to `bytesPerSecond`; the session lifts it later. */
async function throttleUploads(page: Page, bytesPerSecond: number): Promise<CDPSession> {
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Network.enable')
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 5,
    downloadThroughput: -1,
    uploadThroughput: bytesPerSecond,
  })
  return cdp
}

type FilePayload = { name: string; mimeType: string; buffer: Buffer }

/** Uploads `file` on a slowed network until its first part is stored on the
 *  server, then reloads the page (which stops the upload) at full speed. */
async function interruptUpload(page: Page, file: FilePayload, beforeReload?: () => Promise<void>): Promise<void> {
  const cdp = await throttleUploads(page, 6 * 1024 * 1024)
  await page.getByRole('button', { name: 'Upload', exact: true }).click()
  const uploader = page.getByTestId('uploader')
  await uploader.locator('input[type=file]').first().setInputFiles([file])
  const firstPart = page.waitForResponse(
    (r) => r.request().method() === 'PUT' && /\/parts\/\d+$/.test(r.url()) && r.status() === 200,
    { timeout: 60_000 },
  )
  await uploader.getByRole('button', { name: /Upload 1 file/ }).click()
  await expect(uploader.locator('.uppy-StatusBar')).toHaveClass(/is-uploading/)
  await firstPart
  await beforeReload?.()
  await page.reload()
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 })
}

test.describe.serial('Coffer in the browser', () => {
  test.beforeAll(async ({ browser }) => {
    ;[adminContext, adminPage] = await newPage(browser)
    ;[userContext, userPage] = await newPage(browser)
  })

  test.afterAll(async () => {
    await adminContext?.close()
    await userContext?.close()
  })

  test('the first admin signs in and enrols TOTP', async () => {
    const page = adminPage
    await page.goto('/')
    await expect(page.getByRole('heading', { name: 'Coffer' })).toBeVisible()
    await screenshot(page, 'login')
    await signIn(page, admin.username, admin.password)
    await expect(page.getByRole('heading', { name: 'Buckets' })).toBeVisible()
    // The refresh token is an HttpOnly cookie, never visible to scripts or storage.
    const cookies = await adminContext.cookies()
    const refresh = cookies.find((c) => c.name === 'coffer_refresh')
    expect(refresh?.httpOnly).toBe(true)
    expect(refresh?.sameSite).toBe('Strict')
    expect(await page.evaluate(() => document.cookie)).not.toContain('coffer_refresh')
    expect(await page.evaluate(() => JSON.stringify(localStorage))).not.toMatch(/eyJ|cfr_/)

    await page.getByRole('link', { name: 'Account' }).click()
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click()
    await expect(page.getByRole('img', { name: /QR code/ })).toBeVisible()
    totpSecret = await page.getByLabel('Secret').inputValue()
    expect(totpSecret).toMatch(/^[A-Z2-7]+=*$/)
    await screenshot(page, 'totp-enrol')
    await page.getByLabel('Code from the app').fill(totpCode(totpSecret))
    await page.getByRole('button', { name: 'Confirm and turn on' }).click()
    await expect(page.getByTestId('recovery-codes').locator('li')).toHaveCount(10)
    await expect(page.getByTestId('mfa-status')).toHaveText('on')
    await screenshot(page, 'totp-recovery-codes')
  })

  test('the admin signs out and back in with a TOTP code; a reload keeps the session', async () => {
    const page = adminPage
    await page.getByRole('button', { name: 'Sign out' }).click()
    await expect(page.getByText('You are signed out.')).toBeVisible()
    await page.reload()
    await expect(page.getByLabel('Username')).toBeVisible()
    await signIn(page, admin.username, admin.password)
    await expect(page.getByLabel('Authentication code')).toBeVisible()
    await screenshot(page, 'login-totp-step')
    // The confirmation used this time step; the next one is accepted too (skew 1).
    await page.getByLabel('Authentication code').fill(totpCode(totpSecret, 30))
    await page.getByRole('button', { name: 'Verify' }).click()
    await expect(page.getByRole('heading', { name: 'Buckets' })).toBeVisible()
    await page.reload()
    await expect(page.getByRole('heading', { name: 'Buckets' })).toBeVisible()
  })

  test('the admin creates a user and a bucket with a grant', async () => {
    const page = adminPage
    await page.getByRole('link', { name: 'Users' }).click()
    await page.getByLabel('Username').fill(USER)
    await page.getByLabel('Initial password').fill(USER_PASSWORD)
    await page.getByLabel('Role', { exact: true }).selectOption('user')
    await page.getByLabel('Quota in MiB').fill('200')
    await page.getByRole('button', { name: 'Create user' }).click()
    await expect(page.getByText(`Created ${USER}.`)).toBeVisible()
    await expect(page.locator(`tr[data-user="${USER}"]`)).toBeVisible()
    await screenshot(page, 'admin-users')

    await page.getByRole('link', { name: 'Buckets' }).click()
    await page.getByLabel('New bucket name').fill(BUCKET)
    await page.getByRole('button', { name: 'Create bucket' }).click()
    await expect(page.getByRole('link', { name: new RegExp(BUCKET) })).toBeVisible()
    await page.getByLabel('Bucket', { exact: true }).selectOption(BUCKET)
    await page.getByLabel('Username').fill(USER)
    await page.getByLabel('Permission').selectOption('write')
    await page.getByRole('button', { name: 'Grant', exact: true }).click()
    await expect(page.getByText(`${USER}: write`)).toBeVisible()
    await screenshot(page, 'admin-buckets')
  })

  test('the user uploads three files, one of 30 MiB, with progress', async () => {
    const page = userPage
    await signIn(page, USER, USER_PASSWORD)
    await openBucket(page)
    await expect(page.getByText('This folder is empty.')).toBeVisible()
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    const uploader = page.getByTestId('uploader')
    await expect(uploader).toBeVisible()
    // Slow the network so progress is observable.
    const cdp = await throttleUploads(page, 12 * 1024 * 1024)
    await uploader.locator('input[type=file]').first().setInputFiles([
      { name: HOSTILE_NAME, mimeType: 'image/png', buffer: png(640, 400) },
      { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from(NOTES) },
      { name: 'big.bin', mimeType: 'application/octet-stream', buffer: BIG },
    ])
    await expect(uploader.getByText('notes.txt')).toBeVisible()
    await screenshot(page, 'upload-queued')
    await uploader.getByRole('button', { name: /Upload 3 files/ }).click()
    // Per-file and total progress while the 30 MiB file goes up in parts.
    const statusBar = uploader.locator('.uppy-StatusBar')
    await expect(statusBar).toHaveClass(/is-uploading/)
    await expect(uploader.getByRole('progressbar').first()).toBeAttached()
    await screenshot(page, 'upload-progress')
    await expect(statusBar).toHaveClass(/is-complete/, { timeout: 60_000 })
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 })
    await screenshot(page, 'upload-complete')
    await expect(page.locator('tr[data-key="big.bin"]')).toBeVisible()
    await expect(page.locator('tr[data-key="notes.txt"]')).toBeVisible()
    // The hostile name is shown as text, not markup.
    await expect(page.getByText(HOSTILE_NAME, { exact: true }).first()).toBeVisible()
    await screenshot(page, 'file-list')
  })

  test('the user sees thumbnails and previews an image', async () => {
    const page = userPage
    await page.getByRole('button', { name: 'Upload', exact: true }).click() // hide the uploader
    await page.getByRole('button', { name: 'Grid' }).click()
    await expect(page.getByTestId('thumbnail')).toHaveCount(1)
    await expect
      .poll(() => page.getByTestId('thumbnail').evaluate((img: HTMLImageElement) => img.naturalWidth))
      .toBeGreaterThan(0)
    await screenshot(page, 'file-grid')
    await page.getByRole('button', { name: `Preview ${HOSTILE_NAME}` }).click()
    const dialog = page.getByRole('dialog')
    await expect(dialog.locator('img.preview-media[data-full="true"]')).toBeVisible()
    await expect(dialog.getByRole('heading', { name: HOSTILE_NAME })).toBeVisible()
    await screenshot(page, 'preview-image')
    await dialog.getByRole('button', { name: 'Close' }).click()
    await page.getByRole('button', { name: 'List' }).click()
  })

  test('the user downloads files with identical bytes', async () => {
    const page = userPage
    for (const [name, expected] of [
      ['notes.txt', Buffer.from(NOTES)],
      ['big.bin', BIG],
    ] as const) {
      const downloading = page.waitForEvent('download')
      await page.getByRole('button', { name: `Download ${name}` }).click()
      const download = await downloading
      expect(download.suggestedFilename()).toBe(name)
      const path = await download.path()
      expect(readFileSync(path).equals(expected)).toBe(true)
    }
    // A selection downloads every file: none cancels another, the page stays.
    await page.getByLabel('Select notes.txt').check()
    await page.getByLabel('Select big.bin').check()
    const names: string[] = []
    page.on('download', (download) => names.push(download.suggestedFilename()))
    await page.getByRole('button', { name: 'Download selected' }).click()
    await expect.poll(() => [...names].sort(), { timeout: 30_000 }).toEqual(['big.bin', 'notes.txt'])
    await page.getByLabel('Select notes.txt').uncheck()
    await page.getByLabel('Select big.bin').uncheck()
  })

  test('a large upload resumes after a page reload', async () => {
    const page = userPage
    const file = { name: 'resume.bin', mimeType: 'application/octet-stream', buffer: BIG }
    await interruptUpload(page, file, () => screenshot(page, 'upload-before-reload'))
    await expect(page.getByRole('navigation', { name: 'Breadcrumb' })).toContainText(BUCKET)
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    const uploader = page.getByTestId('uploader')
    await uploader.locator('input[type=file]').first().setInputFiles([file])
    await expect(uploader.getByText('Resuming the earlier upload of resume.bin').first()).toBeVisible({ timeout: 30_000 })
    await uploader.getByRole('button', { name: /Upload 1 file/ }).click()
    await expect(uploader.locator('.uppy-StatusBar')).toHaveClass(/is-complete/, { timeout: 60_000 })
    await screenshot(page, 'upload-resumed')
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    const downloading = page.waitForEvent('download')
    await page.getByRole('button', { name: 'Download resume.bin' }).click()
    expect(readFileSync(await (await downloading).path()).equals(BIG)).toBe(true)
  })

  test('a part refused as expired renews the session; a failed upload keeps its parts to resume', async () => {
    const page = userPage
    const uploader = page.getByTestId('uploader')
    const deletes: string[] = []
    page.on('request', (r) => {
      if (r.method() === 'DELETE' && /\/uploads\//.test(r.url())) deletes.push(r.url())
    })
    const parts = /\/uploads\/[^/]+\/parts\/(\d+)$/
    const problem = (status: number) => ({
      status,
      contentType: 'application/problem+json',
      body: JSON.stringify({ type: '/problems/x', title: 'refused', status, detail: 'refused by the test' }),
    })
    // Part 1 is refused once as if the access token had expired: the upload renews it and goes on.
    let refused = false
    await page.route(parts, async (route) => {
      if (route.request().method() === 'PUT' && !refused) {
        refused = true
        return route.fulfill(problem(401))
      }
      return route.continue()
    })
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    const renewed = { name: 'renewed.bin', mimeType: 'application/octet-stream', buffer: BIG }
    await uploader.locator('input[type=file]').first().setInputFiles([renewed])
    await uploader.getByRole('button', { name: /Upload 1 file/ }).click()
    await expect(uploader.locator('.uppy-StatusBar')).toHaveClass(/is-complete/, { timeout: 60_000 })
    expect(refused).toBe(true)
    await page.unroute(parts)

    // Every part after the first fails until Uppy gives up: the stored part stays for a resume.
    await page.route(parts, (route) =>
      Number(parts.exec(new URL(route.request().url()).pathname)?.[1]) > 1 ? route.fulfill(problem(500)) : route.continue(),
    )
    await page.reload()
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    const flaky = { name: 'flaky.bin', mimeType: 'application/octet-stream', buffer: BIG }
    await uploader.locator('input[type=file]').first().setInputFiles([flaky])
    await uploader.getByRole('button', { name: /Upload 1 file/ }).click()
    await expect(uploader.locator('.uppy-StatusBar')).toHaveClass(/is-error/, { timeout: 60_000 })
    await page.unroute(parts)
    expect(deletes).toEqual([])
    await page.reload()
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    await uploader.locator('input[type=file]').first().setInputFiles([flaky])
    await expect(uploader.getByText('Resuming the earlier upload of flaky.bin').first()).toBeVisible({ timeout: 30_000 })
    await uploader.getByRole('button', { name: /Upload 1 file/ }).click()
    await expect(uploader.locator('.uppy-StatusBar')).toHaveClass(/is-complete/, { timeout: 60_000 })
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
  })

  test('the user shares a file with a password; a fresh browser opens it', async ({ browser }) => {
    const page = userPage
    await page.getByRole('button', { name: 'Share notes.txt' }).click()
    const dialog = page.getByRole('dialog')
    await dialog.getByLabel('Password (optional)').fill(SHARE_PASSWORD)
    await dialog.getByLabel('Maximum downloads (optional)').fill('5')
    await dialog.getByRole('button', { name: 'Create link' }).click()
    shareUrl = await dialog.getByLabel('Share link').inputValue()
    expect(shareUrl).toContain('/s/')
    await screenshot(page, 'share-dialog')
    await dialog.getByRole('button', { name: 'Close' }).click()

    const [fresh, guest] = await newPage(browser)
    await guest.goto(shareUrl)
    await screenshot(guest, 'share-password-page')
    await guest.getByLabel(/password/i).fill(SHARE_PASSWORD)
    const downloading = guest.waitForEvent('download', { timeout: 20_000 }).catch(() => null)
    const [response] = await Promise.all([
      guest.waitForResponse((r) => r.request().method() === 'POST' && r.url().includes('/s/')),
      guest.getByRole('button', { name: 'Download' }).click(),
    ])
    expect(response.status()).toBe(200)
    if ((response.headers()['content-disposition'] ?? '').startsWith('attachment')) {
      const download = await downloading
      expect(download).not.toBeNull()
      expect(readFileSync(await download!.path()).toString()).toBe(NOTES)
    } else {
      await expect(guest.locator('body')).toContainText('Meeting notes: ship the UI.')
    }
    await screenshot(guest, 'share-opened')
    await fresh.close()

    await page.getByRole('link', { name: 'Shares' }).click()
    await expect(page.getByRole('cell', { name: `${BUCKET}/notes.txt` })).toBeVisible()
    await screenshot(page, 'my-shares')
    await page.getByRole('button', { name: 'Revoke' }).click()
    await expect(page.getByRole('cell', { name: 'revoked' })).toBeVisible()
    const [again, guestAgain] = await newPage(browser)
    const gone = await guestAgain.goto(shareUrl)
    expect(gone?.status()).toBe(410)
    await again.close()
  })

  test('a legal hold set by the admin stops the user deleting, with a clear message', async () => {
    const page = adminPage
    await openBucket(page)
    await page.getByRole('button', { name: 'Retention and legal hold of notes.txt' }).click()
    const dialog = page.getByRole('dialog')
    await expect(dialog.getByTestId('legal-hold-status')).toHaveText('OFF')
    await dialog.getByRole('button', { name: 'Place legal hold' }).click()
    await expect(dialog.getByTestId('legal-hold-status')).toHaveText('ON')
    await screenshot(page, 'legal-hold')
    await dialog.getByRole('button', { name: 'Close' }).click()

    const user = userPage
    await openBucket(user)
    await user.getByRole('button', { name: 'Delete notes.txt' }).click()
    await user.getByRole('dialog').getByRole('button', { name: 'Delete' }).click()
    await expect(user.getByRole('alert')).toContainText('locked')
    await expect(user.locator('tr[data-key="notes.txt"]')).toBeVisible()
    await screenshot(user, 'delete-refused-locked')
  })

  test('the admin reads the audit log and sees these events', async () => {
    const page = adminPage
    await page.getByRole('link', { name: 'Audit' }).click()
    await expect(page.getByRole('heading', { name: 'Audit log' })).toBeVisible()
    await screenshot(page, 'audit-log')
    const expected = [
      ['auth.login', admin.username],
      ['auth.mfa_enabled', admin.username],
      ['user.create', admin.username],
      ['bucket.create', admin.username],
      ['auth.login', USER],
      ['share.create', USER],
      ['share.access', ''],
      ['object.legal_hold_set', admin.username],
      ['object.delete', USER],
      ['object.get', USER],
    ]
    for (const [action, actor] of expected) {
      await page.getByLabel('Action').fill(action!)
      await page.getByLabel('Actor').fill(actor!)
      await page.getByRole('button', { name: 'Filter' }).click()
      await expect(page.locator(`tr[data-action="${action}"]`).first()).toBeVisible()
    }
    // Uploads: single PUTs and the completed multipart upload.
    await page.getByLabel('Action').fill('')
    await page.getByLabel('Actor').fill(USER)
    await page.getByRole('button', { name: 'Filter' }).click()
    await expect(page.locator('tr[data-action^="object.put"], tr[data-action^="upload.complete"]').first()).toBeVisible()
    await page.getByRole('button', { name: 'Verify chain' }).click()
    await expect(page.getByText(/Chain intact/)).toBeVisible()
    await screenshot(page, 'audit-filtered-verified')
  })

  test('hostile HTML and SVG uploads never run script in the app origin', async () => {
    const page = userPage
    await openBucket(page)
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    const uploader = page.getByTestId('uploader')
    await uploader.locator('input[type=file]').first().setInputFiles([
      { name: 'evil.html', mimeType: 'text/html', buffer: Buffer.from('<script>alert("html")</script><h1>hi</h1>') },
      {
        name: 'evil.svg',
        mimeType: 'image/svg+xml',
        buffer: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(\'svg\')"><script>alert("svg2")</script></svg>'),
      },
    ])
    await uploader.getByRole('button', { name: /Upload 2 files/ }).click()
    await expect(uploader.locator('.uppy-StatusBar')).toHaveClass(/is-complete/)
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    for (const name of ['evil.html', 'evil.svg']) {
      await expect(page.locator(`tr[data-key="${name}"]`)).toBeVisible()
      await page.locator(`tr[data-key="${name}"]`).getByRole('button', { name, exact: true }).click()
      await expect(page.getByRole('dialog')).toContainText('No preview')
      await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click()
      const downloading = page.waitForEvent('download')
      await page.getByRole('button', { name: `Download ${name}` }).click()
      await downloading
    }
    await page.getByRole('button', { name: 'Grid' }).click()
    await expect(page.locator('li[data-key="evil.svg"]')).toBeVisible()
    await page.getByRole('button', { name: 'List' }).click()
    // Opened straight from the app's origin (presigned URLs and share links).
    for (const name of ['evil.html', 'evil.svg']) {
      await page.getByRole('button', { name: `Presigned URL for ${name}` }).click()
      const dialog = page.getByRole('dialog')
      await dialog.getByRole('button', { name: 'Create URL' }).click()
      const url = await dialog.getByLabel('GET URL').inputValue()
      if (name === 'evil.svg') await screenshot(page, 'presign-dialog')
      await dialog.getByRole('button', { name: 'Close' }).click()
      const tab = await userContext.newPage()
      tab.on('dialog', (dialog) => {
        dialogs.push(dialog.message())
        void dialog.dismiss()
      })
      await tab.goto(url).catch(() => undefined) // attachment: a download, not a page
      await tab.goto('/').catch(() => undefined)
      await tab.evaluate((src) => {
        const frame = document.createElement('iframe')
        frame.src = src
        document.body.append(frame)
      }, url)
      await tab.waitForTimeout(500)
      await tab.close()
    }
    await screenshot(page, 'hostile-files')
    expect(dialogs).toEqual([])
  })

  test('the remaining screens render (account keys, retention, shares)', async () => {
    const page = adminPage
    await page.getByRole('link', { name: 'Account' }).click()
    await page.getByLabel('Name', { exact: true }).fill('backup-script')
    await page.getByRole('button', { name: 'Create key' }).click()
    await expect(page.getByLabel('New API key (shown only now)')).toHaveValue(/^cfk_/)
    await screenshot(page, 'account-api-keys')
    await page.getByRole('link', { name: 'Retention' }).click()
    await page.getByLabel('Bucket').selectOption(BUCKET)
    await page.getByRole('button', { name: 'Add rule' }).click()
    await page.getByRole('button', { name: 'Save rules' }).click()
    await expect(page.getByText('Lifecycle rules saved.')).toBeVisible()
    await page.getByRole('button', { name: 'Preview (dry run)' }).click()
    await expect(page.getByTestId('lifecycle-report')).toContainText('Would expire')
    await screenshot(page, 'admin-retention')
    await page.setViewportSize({ width: 390, height: 844 })
    await openBucket(page)
    await screenshot(page, 'phone-file-list')
    await page.setViewportSize({ width: 1280, height: 900 })
    expect(dialogs).toEqual([])
    // The app itself lives within its strict CSP.
    expect(cspViolations).toEqual([])
  })

  test('signing out forgets the uploads this browser remembered for resuming', async () => {
    const page = userPage
    await openBucket(page)
    await interruptUpload(page, { name: 'unfinished.bin', mimeType: 'application/octet-stream', buffer: BIG })
    const remembered = () =>
      page.evaluate(() => Object.keys(localStorage).filter((id) => id.startsWith('coffer.upload.')))
    expect(await remembered()).toHaveLength(1)
    // A server that did not end the session (here a 429) is not reported as signed out.
    await page.route('**/api/v1/auth/logout', (route) =>
      route.fulfill({ status: 429, contentType: 'application/problem+json', body: JSON.stringify({ type: '/problems/rate-limited', title: 'Too Many Requests', status: 429, detail: 'slow down' }) }),
    )
    await page.getByRole('button', { name: 'Sign out' }).click()
    await expect(page.getByRole('alert').filter({ hasText: 'Not signed out' })).toBeVisible()
    await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible()
    expect(await remembered()).toHaveLength(1)
    await page.unroute('**/api/v1/auth/logout')
    await page.getByRole('button', { name: 'Sign out' }).click()
    await expect(page.getByText('You are signed out.')).toBeVisible()
    expect(await remembered()).toEqual([])
  })
})
