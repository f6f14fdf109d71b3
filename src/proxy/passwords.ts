/**
 * Local proxy passwords: what a LOGIN-only client types instead of its mail password. Stored only
 * as scrypt hashes (memory-hard, RFC 7914; parameters stored per entry so they can be raised) in
 * $XDG_STATE_HOME/mailkey/proxy-passwords.json (0600). The token store is not keyed to them.
 *
 * Owns: hashing, verification, the password file. Must not: log or return a password.
 */
import { createHmac, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { ERR, StoreError } from '../errors.js'
import type { Secret } from '../core/secret.js'
import type { Paths } from '../config/paths.js'
import type { TokenSource } from './token-source.js'
import { accountId } from '../domain/account.js'
import { checkPrivate, readStateFile, storeIoError, writeFileAtomic } from '../store/atomic-file.js'

export interface PasswordEntry {
  alg: 'scrypt'
  /** cost parameters (N = 2^logN) */
  logN: number
  r: number
  p: number
  salt: string
  hash: string
  setAt: number
}

interface PasswordFile {
  v: 1
  users: Record<string, PasswordEntry>
}

/** scrypt's cost parameters (N = 2^logN), stored in each entry: verification uses what was stored. */
export interface PasswordScrypt {
  logN: number
  r: number
  p: number
}

/** ~64 MiB and ~0.3 s per check on the project machine: slow for guessing. Repeat logins hit the cache below. */
export const DEFAULT_SCRYPT: Readonly<PasswordScrypt> = { logN: 16, r: 8, p: 1 }

function scrypt(password: string, salt: Buffer, keylen: number, o: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, keylen, o, (e, k) => (e ? reject(e) : resolve(k))))
}

const opts = (e: PasswordScrypt): ScryptOptions => ({
  N: 2 ** e.logN,
  r: e.r,
  p: e.p,
  maxmem: 256 * 1024 * 1024,
})

export async function hashPassword(password: Secret, params: PasswordScrypt = DEFAULT_SCRYPT): Promise<PasswordEntry> {
  const salt = randomBytes(16)
  const key = await scrypt(password.reveal(), salt, 32, opts(params))
  return {
    alg: 'scrypt',
    logN: params.logN,
    r: params.r,
    p: params.p,
    salt: salt.toString('base64'),
    hash: key.toString('base64'),
    setAt: Date.now(),
  }
}

export async function verifyPassword(password: Secret, entry: PasswordEntry): Promise<boolean> {
  if (entry.alg !== 'scrypt') return false
  const want = Buffer.from(entry.hash, 'base64')
  const got = await scrypt(password.reveal(), Buffer.from(entry.salt, 'base64'), want.length, opts(entry))
  return got.length === want.length && timingSafeEqual(got, want)
}

/** how long a verified password is remembered after its last use (in memory only) */
export const VERIFIED_TTL_MS = 10 * 60_000

/** Where the password file lives: the state directory and how to create it (a FileStore is one). */
export interface StateDir {
  readonly paths: Paths
  ensureDir(): Promise<void>
}

/** The password store of a token source's (a Mailkey's) state directory. */
export function passwordStoreFor(mk: Pick<TokenSource, 'paths' | 'ensureStateDir'>): PasswordStore {
  return new PasswordStore({ paths: mk.paths, ensureDir: () => mk.ensureStateDir() })
}

export class PasswordStore {
  readonly path: string
  readonly #store: StateDir
  /**
   * Verified (account, password) pairs, as HMACs under a key that lives only in this process (never
   * the password itself), so a mail client that reconnects every minute does not pay the KDF each
   * time, and a known-good password skips the guess throttle and the KDF queue (login-check.ts).
   * Cleared whenever the password file changes.
   */
  readonly #verified = new Map<string, number>()
  readonly #key = randomBytes(32)
  #fileStamp = ''
  readonly #now: () => number
  readonly #scrypt: PasswordScrypt

  /**
   * `o.scrypt`: the cost of new hashes (default DEFAULT_SCRYPT). Only code can lower it (tests do);
   * deliberately no environment variable or config key, so nothing outside the program weakens it.
   */
  constructor(store: StateDir, o: { now?: () => number; scrypt?: PasswordScrypt } = {}) {
    this.#store = store
    this.path = join(store.paths.stateDir, 'proxy-passwords.json')
    this.#now = o.now ?? Date.now
    this.#scrypt = o.scrypt ?? DEFAULT_SCRYPT
  }

  async #read(): Promise<PasswordFile> {
    let text: string
    try {
      // no symlink, no FIFO, and never a file others could read (the scrypt hashes can be guessed offline)
      const got = readStateFile(this.path)
      if (!got) return { v: 1, users: {} }
      if (got.needsModeCheck) await checkPrivate(this.path, 'file')
      text = got.text
    } catch (e) {
      if (e instanceof StoreError) throw e
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') await checkPrivate(this.path, 'file')
      throw storeIoError(`cannot read "${this.path}"`, e)
    }
    try {
      const f = JSON.parse(text) as PasswordFile
      if (f.v !== 1 || typeof f.users !== 'object' || f.users === null) throw new Error('shape')
      return f
    } catch {
      throw new StoreError(ERR.STORE_CORRUPT, `the proxy password file "${this.path}" cannot be used`, {
        hint: `Move it aside and set the passwords again with "mailkey proxy password <email>".`,
      })
    }
  }

  async set(account: string, password: Secret): Promise<void> {
    await this.#store.ensureDir()
    const f = await this.#read()
    f.users[accountId(account)] = await hashPassword(password, this.#scrypt)
    await writeFileAtomic(this.path, JSON.stringify(f, null, 2) + '\n')
  }

  async has(account: string): Promise<boolean> {
    return (await this.#read()).users[accountId(account)] !== undefined
  }

  /** The keyed hash that names an (account, password) pair in memory: equal pairs, equal keys. */
  pairKey(account: string, password: Secret): string {
    return createHmac('sha256', this.#key)
      .update(accountId(account))
      .update('\0')
      .update(password.reveal())
      .digest('base64')
  }

  /**
   * true when this pair verified before in this process, was last used within VERIFIED_TTL_MS, and
   * the password file has not changed since. Cheap: no KDF.
   */
  remembered(account: string, password: Secret): boolean {
    // A changed file (a new password set meanwhile) forgets every remembered login. statSync: a
    // thread-pool round trip costs ~0.3 ms per login, the call itself a few µs (bench/README.md).
    let st
    try {
      st = statSync(this.path)
    } catch {
      st = undefined
    }
    const stamp = st ? `${st.mtimeMs}:${st.size}:${st.ino}` : 'none'
    if (stamp !== this.#fileStamp) {
      this.#verified.clear()
      this.#fileStamp = stamp
    }
    const key = this.pairKey(account, password)
    const until = this.#verified.get(key)
    if (until === undefined || until <= this.#now()) return false
    // Sliding: a mail client that keeps logging in keeps its password known-good, so it never
    // waits behind the guess throttle (login-check.ts) while it is in use.
    this.#verified.set(key, this.#now() + VERIFIED_TTL_MS)
    return true
  }

  /**
   * The slow check (the KDF): true only for a known account with the right password, which is then
   * remembered. An unknown account costs the same KDF run, so timing does not tell which exist.
   * Unbounded: callers go through the KDF gate (login-check.ts).
   */
  async verify(account: string, password: Secret): Promise<boolean> {
    const entry = (await this.#read()).users[accountId(account)]
    if (!entry) {
      await hashPassword(password, this.#scrypt)
      return false
    }
    const ok = await verifyPassword(password, entry)
    if (ok) {
      if (this.#verified.size > 10_000) this.#verified.clear()
      this.#verified.set(this.pairKey(account, password), this.#now() + VERIFIED_TTL_MS)
    }
    return ok
  }

  /** remembered() or, failing that, verify(): for callers without a throttle (tests, tools). */
  async check(account: string, password: Secret): Promise<boolean> {
    return this.remembered(account, password) || this.verify(account, password)
  }
}
