/**
 * Sealing the secrets of a record: the access token, the refresh token and a client secret are
 * encrypted with the store's data key (AES-256-GCM); everything else (addresses, servers, expiry
 * times, state) stays readable, so `status`, `list` and the freshness check work without the key.
 *
 * Invariants:
 * - S1 every seal uses a fresh random 96-bit IV (NIST SP 800-38D §8.2.2; far fewer than 2^32 writes
 *   per key), and the account id and the key id are the additional data: a sealed blob copied into
 *   another account's record, or read with another key, fails authentication instead of decrypting.
 * - S2 a wrong key, a changed byte or a truncated blob is an error, never garbage.
 * - S3 the data key is wrapped with a key derived from the passphrase by scrypt (memory-hard,
 *   RFC 7914), with its parameters stored beside it so they can be raised later.
 *
 * Owns: the sealed formats. Must not: do I/O or know where keys come from.
 * On the fast `mailkey token` path: node built-ins only.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto'
import type { AccountRecord, GrantRecord, ResourceName, ResourceToken, SealedBox } from '../domain/account.js'

export const KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16

/** The secrets a record holds; all optional. */
export interface RecordSecrets {
  accessToken?: string
  refreshToken?: string
  clientSecret?: string
  /** access tokens of the grant's other resources (Microsoft Graph) */
  resourceTokens?: Partial<Record<ResourceName, string>>
}

const b64 = (b: Buffer): string => b.toString('base64')
const unb64 = (s: unknown, what: string, bytes?: number): Buffer => {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s))
    throw new SealError(`the sealed ${what} is not base64`)
  const b = Buffer.from(s, 'base64')
  if (bytes !== undefined && b.length !== bytes)
    throw new SealError(`the sealed ${what} has ${b.length} bytes, not ${bytes}`)
  return b
}

/** A sealed value could not be opened (wrong key, damaged or tampered data). */
export class SealError extends Error {
  override name = 'SealError'
}

function aad(kind: string, id: string, kid: string): Buffer {
  return Buffer.from(`mailkey:${kind}:v1\0${id}\0${kid}`, 'utf8')
}

export function sealBytes(key: Buffer, kid: string, kind: string, id: string, plain: Buffer): SealedBox {
  if (key.length !== KEY_BYTES) throw new RangeError('a data key has 32 bytes')
  const iv = randomBytes(IV_BYTES)
  const c = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  c.setAAD(aad(kind, id, kid))
  const ct = Buffer.concat([c.update(plain), c.final()])
  return { kid, alg: 'A256GCM', iv: b64(iv), ct: b64(ct), tag: b64(c.getAuthTag()) }
}

export function openBytes(key: Buffer, kind: string, id: string, box: SealedBox): Buffer {
  if (box.alg !== 'A256GCM') throw new SealError(`unknown sealing algorithm ${JSON.stringify(box.alg)}`)
  const iv = unb64(box.iv, 'IV', IV_BYTES)
  const tag = unb64(box.tag, 'tag', TAG_BYTES)
  const ct = unb64(box.ct, 'data')
  const d = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  d.setAAD(aad(kind, id, box.kid))
  d.setAuthTag(tag)
  try {
    return Buffer.concat([d.update(ct), d.final()])
  } catch {
    throw new SealError('the sealed data does not open with this key (a wrong key, or the data was changed)')
  }
}

/** Does the grant hold this token, in the clear or sealed? (status and horizons work on sealed records) */
export function grantHas(g: GrantRecord | undefined, field: 'accessToken' | 'refreshToken'): boolean {
  return g !== undefined && (g[field] !== undefined || (g.sealed?.includes(field) ?? false))
}

/** A record with its secrets taken out and sealed; the input is not changed. */
export function sealRecord(rec: AccountRecord, id: string, key: Buffer, kid: string): AccountRecord {
  const secrets: RecordSecrets = {}
  if (rec.grant?.accessToken !== undefined) secrets.accessToken = rec.grant.accessToken
  if (rec.grant?.refreshToken !== undefined) secrets.refreshToken = rec.grant.refreshToken
  if (rec.settings.clientSecret !== undefined) secrets.clientSecret = rec.settings.clientSecret
  const resourceTokens = sealedResourceTokens(rec.grant)
  if (resourceTokens) secrets.resourceTokens = resourceTokens.tokens
  const { clientSecret: _s, ...settings } = rec.settings
  const { sealed: _old, ...rest } = rec
  const out: AccountRecord = {
    ...rest,
    settings,
    sealed: sealBytes(key, kid, 'record', id, Buffer.from(JSON.stringify(secrets), 'utf8')),
  }
  if (rec.grant) {
    const { accessToken: _a, refreshToken: _r, sealed: _f, ...grant } = rec.grant
    const fields = (['accessToken', 'refreshToken'] as const).filter((f) => secrets[f] !== undefined)
    out.grant = fields.length ? { ...grant, sealed: fields } : grant
    if (resourceTokens) out.grant.resources = resourceTokens.rest
  }
  return out
}

/** The access tokens of a grant's other resources, and those resources without them (marked sealed). */
function sealedResourceTokens(
  g: GrantRecord | undefined,
): { tokens: Partial<Record<ResourceName, string>>; rest: NonNullable<GrantRecord['resources']> } | undefined {
  if (!g?.resources) return undefined
  const tokens: Partial<Record<ResourceName, string>> = {}
  const rest: NonNullable<GrantRecord['resources']> = {}
  for (const [name, t] of Object.entries(g.resources) as [ResourceName, ResourceToken][]) {
    const { accessToken, sealed: _f, ...fields } = t
    rest[name] = accessToken !== undefined ? { ...fields, sealed: true } : fields
    if (accessToken !== undefined) tokens[name] = accessToken
  }
  return { tokens, rest }
}

/** The record with its secrets back in place (S2: throws SealError when they do not open). */
export function openRecord(rec: AccountRecord, id: string, key: Buffer): AccountRecord {
  const box = rec.sealed
  if (!box) return rec
  let secrets: RecordSecrets
  try {
    secrets = JSON.parse(openBytes(key, 'record', id, box).toString('utf8')) as RecordSecrets
  } catch (e) {
    if (e instanceof SealError) throw e
    throw new SealError('the sealed secrets are not valid JSON')
  }
  const { sealed: _b, ...rest } = rec
  const out: AccountRecord = { ...rest, settings: { ...rec.settings } }
  if (typeof secrets.clientSecret === 'string') out.settings.clientSecret = secrets.clientSecret
  if (rec.grant) {
    const { sealed: _f, ...grant } = rec.grant
    out.grant = grant
    if (typeof secrets.accessToken === 'string') out.grant.accessToken = secrets.accessToken
    if (typeof secrets.refreshToken === 'string') out.grant.refreshToken = secrets.refreshToken
    if (grant.resources) out.grant.resources = openedResourceTokens(grant.resources, secrets.resourceTokens)
  }
  return out
}

function openedResourceTokens(
  resources: NonNullable<GrantRecord['resources']>,
  tokens: RecordSecrets['resourceTokens'],
): NonNullable<GrantRecord['resources']> {
  const out: NonNullable<GrantRecord['resources']> = {}
  for (const [name, t] of Object.entries(resources) as [ResourceName, ResourceToken][]) {
    const { sealed: _f, ...fields } = t
    const token = tokens?.[name]
    out[name] = typeof token === 'string' ? { ...fields, accessToken: token } : fields
  }
  return out
}

/** scrypt parameters (RFC 7914 §2); stored with the wrapped key so they can be raised. */
export interface ScryptParams {
  name: 'scrypt'
  N: number
  r: number
  p: number
  salt: string
}

/** scrypt's cost parameters without the salt: what a caller may choose for a new key. */
export type ScryptCost = Pick<ScryptParams, 'N' | 'r' | 'p'>

/** 2^17 x 8 x 128 B = 128 MiB and about 0.3-0.5 s here: the OWASP-recommended floor is 2^17 for r=8. */
export const PASSPHRASE_SCRYPT: Readonly<ScryptCost> = { N: 2 ** 17, r: 8, p: 1 }

/**
 * Parameters for a new passphrase key: the production cost unless a caller passes another (tests
 * do, through function options; deliberately no environment variable, so nothing outside the
 * program can weaken it). The cost is stored with the key, and deriveKey uses what was stored.
 */
export function defaultScrypt(cost: ScryptCost = PASSPHRASE_SCRYPT): ScryptParams {
  return { name: 'scrypt', N: cost.N, r: cost.r, p: cost.p, salt: b64(randomBytes(16)) }
}

export function deriveKey(passphrase: string, p: ScryptParams): Promise<Buffer> {
  if (
    p.name !== 'scrypt' ||
    !Number.isInteger(p.N) ||
    p.N < 2 ** 14 ||
    p.N > 2 ** 22 ||
    (p.N & (p.N - 1)) !== 0 ||
    !Number.isInteger(p.r) ||
    p.r < 1 ||
    p.r > 32 ||
    !Number.isInteger(p.p) ||
    p.p < 1 ||
    p.p > 16
  ) {
    return Promise.reject(new SealError('the passphrase key parameters in store.json are out of range'))
  }
  const salt = unb64(p.salt, 'salt')
  return new Promise((resolve, reject) => {
    scryptCb(
      passphrase.normalize('NFC'),
      salt,
      KEY_BYTES,
      { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 1024 * 1024 },
      (err, k) => (err ? reject(err) : resolve(k)),
    )
  })
}

/** The data key wrapped under a key-encryption key (the passphrase's). */
export function wrapKey(kek: Buffer, kid: string, dataKey: Buffer): SealedBox {
  return sealBytes(kek, kid, 'data-key', 'store', dataKey)
}

export function unwrapKey(kek: Buffer, box: SealedBox): Buffer {
  const k = openBytes(kek, 'data-key', 'store', box)
  if (k.length !== KEY_BYTES) throw new SealError('the unwrapped data key has the wrong length')
  return k
}

export function newDataKey(): { kid: string; key: Buffer } {
  return { kid: randomBytes(6).toString('hex'), key: randomBytes(KEY_BYTES) }
}

/** Constant-time equality of two keys (tests and key checks). */
export function sameKey(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}
