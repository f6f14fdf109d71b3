/**
 * The key of a shared store: every record on PostgreSQL or Redis is sealed with it (AES-256-GCM,
 * store/shared/record-seal.ts). Always on: a shared store without a key is refused.
 *
 * Where it comes from, first found wins:
 * 1. the file named by MAILKEY_STORE_KEY_FILE,
 * 2. the file named by `[store] key_file` in config.toml,
 * 3. systemd's credential `$CREDENTIALS_DIRECTORY/mailkey-store-key` (LoadCredential=, no OS
 *    keyring needed in a container or a service).
 *
 * The file holds one key per line (32 bytes as base64 or hex; `#` comments allowed). The first
 * line is the current key, the one new records are sealed with; the lines after it are older (or
 * prepared) keys that still open records (`mailkey store rotate-key`). A key's id is derived from
 * it (kid = "k" + 12 hex digits of its SHA-256), so nothing else has to be kept in step. The file
 * must be readable by its owner only (a systemd credential's look excepted: private-file.ts): the
 * key opens every refresh token of the fleet.
 *
 * Owns: finding, reading and checking key files; making new keys. Must not: talk to a store.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { ConfigError, ERR, StoreError } from '../../errors.js'
import type { Env } from '../../config/paths.js'
import { isCode, storeIoError } from '../atomic-file.js'
import { privateMode } from './private-file.js'

export const STORE_KEY_BYTES = 32
export const CREDENTIAL_NAME = 'mailkey-store-key'

export interface StoreKey {
  kid: string
  key: Buffer
}

export interface StoreKeyRing {
  /** where the keys were read from (for messages) */
  source: string
  /** the key new records are sealed with */
  current: StoreKey
  /** every key, the current one first */
  all: StoreKey[]
}

export function keyId(key: Buffer): string {
  return 'k' + createHash('sha256').update(key).digest('hex').slice(0, 12)
}

/** The key file a shared store uses, or undefined when none is configured. */
export function keyFilePath(env: Env, configured: string | undefined): string | undefined {
  if (env.MAILKEY_STORE_KEY_FILE) return env.MAILKEY_STORE_KEY_FILE
  if (configured) return configured
  const creds = env.CREDENTIALS_DIRECTORY
  if (creds && isAbsolute(creds)) return join(creds, CREDENTIAL_NAME)
  return undefined
}

const NO_KEY_HINT =
  'Make one with "mailkey store init --new-key FILE" (or: head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE), ' +
  'copy it to every host, and name it in MAILKEY_STORE_KEY_FILE or [store] key_file.'

/** Read and check the key ring. `store` names the shared store in messages; `env` tells a systemd credential. */
export async function loadKeyRing(path: string | undefined, store: string, env: Env = {}): Promise<StoreKeyRing> {
  if (!path) {
    throw new ConfigError(ERR.STORE_KEY_UNAVAILABLE, `the shared store ${store} needs a key, and none is configured`, {
      hint: NO_KEY_HINT,
    })
  }
  const text = await readKeyFile(path, env)
  const all = parseKeyFile(text, path)
  return { source: path, current: all[0] as StoreKey, all }
}

async function readKeyFile(path: string, env: Env): Promise<string> {
  let st
  try {
    st = await stat(path) // followed on purpose: Kubernetes mounts secrets through symbolic links
  } catch (e) {
    if (isCode(e, 'ENOENT')) {
      throw new ConfigError(ERR.STORE_KEY_UNAVAILABLE, `the store key file "${path}" does not exist`, {
        hint: NO_KEY_HINT,
      })
    }
    throw storeIoError(`cannot read the store key file "${path}"`, e)
  }
  if (!st.isFile()) throw keyFileError(path, 'it is not a regular file')
  if (!privateMode(st.mode, path, env)) {
    throw new StoreError(
      ERR.STORE_PERMISSIONS,
      `the store key file "${path}" is readable by other users (mode ${(st.mode & 0o777).toString(8)})`,
      {
        hint: `Run "chmod 600 '${path}'" (in Kubernetes: defaultMode: 0400 on the secret); if others could read it, rotate the key with "mailkey store rotate-key".`,
      },
    )
  }
  if (st.size > 64 * 1024) throw keyFileError(path, 'it is too large to be a key file')
  try {
    return await readFile(path, 'utf8')
  } catch (e) {
    throw storeIoError(`cannot read the store key file "${path}"`, e)
  }
}

/** The keys of a key file's text, in order; at least one. */
export function parseKeyFile(text: string, path: string): StoreKey[] {
  const keys: StoreKey[] = []
  const lines = text.split(/\r?\n/)
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const key = decodeKey(line)
    if (!key) throw keyFileError(path, `line ${i + 1} is not a 32-byte key in base64 or hex`)
    const kid = keyId(key)
    if (!keys.some((k) => k.kid === kid)) keys.push({ kid, key })
  }
  if (keys.length === 0) throw keyFileError(path, 'it holds no key')
  return keys
}

function decodeKey(s: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(s)) return Buffer.from(s, 'hex')
  if (/^[A-Za-z0-9+/]{43}=$/.test(s)) {
    const b = Buffer.from(s, 'base64')
    return b.length === STORE_KEY_BYTES ? b : undefined
  }
  return undefined
}

function keyFileError(path: string, why: string): ConfigError {
  return new ConfigError(ERR.STORE_KEY_UNAVAILABLE, `the store key file "${path}" cannot be used: ${why}`, {
    hint: NO_KEY_HINT,
  })
}

/** A new random key as a key file line. */
export function newKeyLine(): string {
  return randomBytes(STORE_KEY_BYTES).toString('base64')
}

/** A key file's text for `keys` (the current one first). */
export function keyFileText(keys: readonly StoreKey[]): string {
  const lines = keys.map((k) => `${k.key.toString('base64')}`)
  return (
    '# mailkey shared store key: the first line seals new records, the others still open old ones.\n' +
    '# Anyone with this file and the database can read every token: keep it 0600, never in a repository.\n' +
    lines.join('\n') +
    '\n'
  )
}
