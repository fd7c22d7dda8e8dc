import { deflateSync } from 'node:zlib'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { Page } from '@playwright/test'
import * as OTPAuth from 'otpauth'

export const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts')
export const FILES = join(ARTIFACTS, 'files')
mkdirSync(FILES, { recursive: true })

export const admin = {
  username: process.env.COFFER_E2E_ADMIN ?? 'root',
  password: process.env.COFFER_E2E_PASSWORD ?? '',
}

let shot = 0
/** Saves a numbered full-page screenshot into artifacts/screens/. */
export async function screenshot(page: Page, name: string): Promise<void> {
  shot += 1
  await page.screenshot({ path: join(ARTIFACTS, 'screens', `${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true })
}

export function totpCode(secret: string, offsetSeconds = 0): string {
  const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 })
  return totp.generate({ timestamp: Date.now() + offsetSeconds * 1000 })
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

function crc32(bytes: Buffer): number {
  let c = 0xffffffff
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([length, body, crc])
}

/** A real RGB PNG (a colour gradient) of the given size. */
export function png(width: number, height: number): Buffer {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header[8] = 8 // bit depth
  header[9] = 2 // RGB
  const rows: Buffer[] = []
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3)
    for (let x = 0; x < width; x++) {
      row[1 + x * 3] = (x * 255) / width
      row[2 + x * 3] = (y * 255) / height
      row[3 + x * 3] = 160
    }
    rows.push(row)
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

export function writeFile(name: string, bytes: Buffer | string): string {
  const path = join(FILES, name.replace(/[^A-Za-z0-9._-]/g, '_'))
  writeFileSync(path, bytes)
  return path
}

export function randomFile(name: string, bytes: number): { path: string; data: Buffer } {
  const data = randomBytes(bytes)
  return { path: writeFile(name, data), data }
}
