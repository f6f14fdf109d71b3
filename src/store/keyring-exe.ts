/**
 * '@napi-rs/keyring' inside the single-file executable (ADR 0013). scripts/build-exe.mjs binds the
 * package name to this module; nothing imports it by name. A single executable's require() loads
 * only Node's built-ins, so the addon travels as an SEA asset and is loaded with process.dlopen
 * from a private copy: $XDG_CACHE_HOME/mailkey/exe/keyring-<sha256>.node, in a directory of the
 * user's own (0700), written 0600 under a temporary name then renamed, and loaded only after its
 * bytes hash to the embedded addon's: hashed and loaded through one open descriptor, so nothing
 * can be swapped in between. Loaded by store/protection.ts only when a keyring is used;
 * any failure rejects that import, which protection.ts reports as "the OS keyring module cannot be
 * loaded here" with the way to a passphrase store.
 *
 * Owns: extracting, checking and loading the addon. Must not: write anything but the addon's own
 * bytes (no key or token ever reaches that file), or load a file it has not checked.
 */
import { createHash } from 'node:crypto'
import {
  closeSync,
  constants as fsc,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { getAsset, isSea } from 'node:sea' // Node >= 20.12; this module runs only in the executable
import type * as Keyring from '@napi-rs/keyring'

/** the asset's name in sea-config.json (scripts/build-exe.mjs) */
export const KEYRING_ASSET = 'keyring.node'

function extractDir(env: NodeJS.ProcessEnv): string {
  const cache = env.XDG_CACHE_HOME?.startsWith('/') ? env.XDG_CACHE_HOME : join(homedir(), '.cache')
  return join(cache, 'mailkey', 'exe')
}

/** the directory must be ours, a real directory, and closed to others: else someone could swap the file */
function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const st = lstatSync(dir)
  const uid = process.getuid?.()
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0)
    throw new Error(`"${dir}" must be a directory of this user's with mode 0700 to hold the keyring addon`)
}

/**
 * The file, opened without following a link, when it is a regular file of this user's, closed to
 * others, whose bytes hash to `hash`; else undefined. What is checked is the open file itself,
 * which dlopen then loads through /proc/self/fd: a directory or file swapped after the check (a
 * parent another user may write, XDG_CACHE_HOME=/tmp/...) cannot put other bytes in its place.
 */
function openChecked(file: string, hash: string): number | undefined {
  let fd: number
  try {
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW)
  } catch {
    return undefined
  }
  const st = fstatSync(fd)
  const uid = process.getuid?.()
  const ours = st.isFile() && (uid === undefined || st.uid === uid) && (st.mode & 0o077) === 0
  if (ours && createHash('sha256').update(readFileSync(fd)).digest('hex') === hash) return fd
  closeSync(fd)
  return undefined
}

function write(file: string, bytes: Buffer): void {
  const tmp = `${file}.${process.pid}.tmp`
  const fd = openSync(tmp, 'wx', 0o600)
  try {
    writeSync(fd, bytes)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, file) // atomic: another mailkey never sees half a file
}

/** The embedded addon as a checked file, then loaded. */
export function loadKeyringAddon(env: NodeJS.ProcessEnv = process.env): typeof Keyring {
  if (!isSea()) throw new Error('not the single-file executable')
  const bytes = Buffer.from(getAsset(KEYRING_ASSET))
  const hash = createHash('sha256').update(bytes).digest('hex')
  const dir = extractDir(env)
  privateDir(dir)
  const file = join(dir, `keyring-${hash.slice(0, 32)}.node`)
  let fd = openChecked(file, hash)
  if (fd === undefined) {
    write(file, bytes)
    fd = openChecked(file, hash)
  }
  if (fd === undefined) throw new Error(`"${file}" does not hold the embedded keyring addon`)
  const mod = { exports: {} as typeof Keyring }
  try {
    process.dlopen(mod, `/proc/self/fd/${fd}`)
  } finally {
    closeSync(fd)
  }
  return mod.exports
}

export const { Entry } = loadKeyringAddon()
