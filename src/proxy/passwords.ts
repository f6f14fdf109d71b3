/**
 * Local proxy passwords: what a LOGIN-only client types instead of its mail password. Stored only
 * as scrypt hashes (memory-hard, RFC 7914; parameters stored per entry so they can be raised): on
 * the file store in $XDG_STATE_HOME/mailkey/proxy-passwords.json (0600); on a shared store as its
 * items of kind 'proxy-password' named by account (store/items.ts), so a password set on one host
 * holds for every proxy replica on that store. The token store is not keyed to them.
 *
 * Owns: hashing, verification, the password file, the entries' shape in the items. Must not: log
 * or return a password.
 */
import { createHmac, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { ERR, StoreError, isStoreUnavailable } from '../errors.js'
import type { Secret } from '../core/secret.js'
import type { Paths } from '../config/paths.js'
import type { TokenSource } from './token-source.js'
import type { Item, ItemStore } from '../store/items.js'
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
  // an empty (or cut) hash would match every password: scrypt of length 0 equals it
  if (want.length < MIN_HASH_BYTES) return false
  const got = await scrypt(password.reveal(), Buffer.from(entry.salt, 'base64'), want.length, opts(entry))
  return got.length === want.length && timingSafeEqual(got, want)
}

const MIN_HASH_BYTES = 16

/** how long a verified password is remembered after its last use (in memory only) */
export const VERIFIED_TTL_MS = 10 * 60_000

/** Where the password file lives: the state directory and how to create it (a FileStore is one). */
export interface StateDir {
  readonly paths: Paths
  ensureDir(): Promise<void>
}

/** The shared store's items, or undefined when the host keeps its accounts in files (the file above). */
export type SharedItems = () => Promise<ItemStore | undefined>

const KIND = 'proxy-password'

/** The password store of a token source (a Mailkey): its shared store's items, else its state directory's file. */
export function passwordStoreFor(mk: Pick<TokenSource, 'paths' | 'ensureStateDir' | 'items'>): PasswordStore {
  const { items } = mk
  const shared: SharedItems | undefined = items
    ? async () => {
        const i = await items()
        return i.shared ? i : undefined
      }
    : undefined
  return new PasswordStore({ paths: mk.paths, ensureDir: () => mk.ensureStateDir() }, shared ? { shared } : {})
}

/** A verified pair: until when it is remembered, and which stored entry it was verified against. */
interface Remembered {
  until: number
  stamp: string
}

/** What names one stored entry: a new password (a new salt) or a new write gives a new stamp. */
const stampOf = (item: Item): string => `${item.updatedAt}:${String(item.value.salt)}:${String(item.value.hash)}`

/** An item's value as a PasswordEntry, or STORE_CORRUPT naming the account (never the value). */
function entryOf(item: Item, id: string, where: string): PasswordEntry {
  const v = item.value
  const nums = [v.logN, v.r, v.p].every((n) => typeof n === 'number' && Number.isInteger(n) && n > 0)
  if (v.alg === 'scrypt' && nums && typeof v.salt === 'string' && typeof v.hash === 'string')
    return v as unknown as PasswordEntry
  throw new StoreError(ERR.STORE_CORRUPT, `the proxy password of ${id} in ${where} cannot be used`, {
    hint: `Set it again with "mailkey proxy password ${id}".`,
  })
}

export class PasswordStore {
  readonly path: string
  readonly #store: StateDir
  /**
   * Verified (account, password) pairs, as HMACs under a key that lives only in this process (never
   * the password itself), so a mail client that reconnects every minute does not pay the KDF each
   * time, and a known-good password skips the guess throttle and the KDF queue (login-check.ts).
   * File store: cleared whenever the password file changes. Shared store: a pair counts only while
   * the account's entry last read from the store (reload()) is the one it was verified against.
   */
  readonly #verified = new Map<string, Remembered>()
  readonly #key = randomBytes(32)
  #fileStamp = ''
  readonly #now: () => number
  readonly #scrypt: PasswordScrypt
  readonly #shared: SharedItems | undefined
  /** null: the file store; undefined: not known yet (the shared store is asked on first use) */
  #items: ItemStore | null | undefined
  /** shared store: the stamp of each account's entry as last read, with the read's sequence number */
  readonly #current = new Map<string, { seq: number; stamp: string | undefined }>()
  #seq = 0

  /**
   * `o.scrypt`: the cost of new hashes (default DEFAULT_SCRYPT). Only code can lower it (tests do);
   * deliberately no environment variable or config key, so nothing outside the program weakens it.
   * `o.shared`: the shared store's items when the host uses one (passwordStoreFor); without it, the file.
   */
  constructor(store: StateDir, o: { now?: () => number; scrypt?: PasswordScrypt; shared?: SharedItems } = {}) {
    this.#store = store
    this.path = join(store.paths.stateDir, 'proxy-passwords.json')
    this.#now = o.now ?? Date.now
    this.#scrypt = o.scrypt ?? DEFAULT_SCRYPT
    this.#shared = o.shared
    this.#items = o.shared ? undefined : null
  }

  /** The shared store's items, or undefined for the file; asked once, again after a failure. */
  async #where(): Promise<ItemStore | undefined> {
    if (this.#items === undefined) this.#items = (await this.#shared?.()) ?? null
    return this.#items ?? undefined
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

  /** The account's entry and its stamp ('' on the file store, which has its own). */
  async #entry(id: string): Promise<{ entry: PasswordEntry | undefined; stamp: string }> {
    const items = await this.#where()
    if (!items) return { entry: (await this.#read()).users[id], stamp: '' }
    const seq = ++this.#seq
    let item: Item | undefined
    try {
      item = await items.get(KIND, id)
    } catch (e) {
      // a store that cannot be reached leaves what this replica verified before in force (the
      // proxy logs clients in from its host cache meanwhile); anything else: nothing remembered counts
      if (!isStoreUnavailable(e)) this.#observe(id, seq, undefined)
      throw e
    }
    const entry = item ? entryOf(item, id, items.where) : undefined
    const stamp = item && entry ? stampOf(item) : undefined
    this.#observe(id, seq, stamp)
    return { entry, stamp: stamp ?? '' }
  }

  /** Keep the newest read of an account's entry (reads may finish out of order). */
  #observe(id: string, seq: number, stamp: string | undefined): void {
    const cur = this.#current.get(id)
    if (cur && cur.seq > seq) return
    // only accounts that have an entry are kept: guesses at unknown accounts leave nothing behind
    if (!cur && stamp === undefined) return
    this.#current.set(id, { seq, stamp })
  }

  async set(account: string, password: Secret): Promise<void> {
    const items = await this.#where()
    if (items) {
      const entry = await hashPassword(password, this.#scrypt)
      await items.put(KIND, accountId(account), { ...entry }, 'replace')
      return
    }
    await this.#store.ensureDir()
    const f = await this.#read()
    f.users[accountId(account)] = await hashPassword(password, this.#scrypt)
    await writeFileAtomic(this.path, JSON.stringify(f, null, 2) + '\n')
  }

  async has(account: string): Promise<boolean> {
    return (await this.#entry(accountId(account))).entry !== undefined
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
   * Before remembered(), on a shared store: read the account's entry, so that a password changed
   * on another host is seen at once (one store read per login). Nothing to do on the file store
   * (remembered() looks at the file itself): undefined then, so its logins stay synchronous. Never
   * throws: after a failed read nothing is remembered for the account (except while the store is
   * unreachable: then what was verified before still counts), and verify() reports it.
   */
  reload(account: string): Promise<void> | undefined {
    if (this.#items === null) return undefined
    return this.#entry(accountId(account)).then(
      () => undefined,
      () => undefined,
    )
  }

  /**
   * true when this pair verified before in this process, was last used within VERIFIED_TTL_MS, and
   * the password has not changed since (file store: the file; shared store: as of the last
   * reload()). Cheap: no KDF.
   */
  remembered(account: string, password: Secret): boolean {
    if (this.#items === undefined) return false // nothing verified yet
    if (this.#items === null) this.#fileChanged()
    const key = this.pairKey(account, password)
    const r = this.#verified.get(key)
    if (r === undefined || r.until <= this.#now()) return false
    if (this.#items !== null && this.#current.get(accountId(account))?.stamp !== r.stamp) return false
    // Sliding: a mail client that keeps logging in keeps its password known-good, so it never
    // waits behind the guess throttle (login-check.ts) while it is in use.
    r.until = this.#now() + VERIFIED_TTL_MS
    return true
  }

  /** File store: a changed file (a new password set meanwhile) forgets every remembered login. */
  #fileChanged(): void {
    // statSync: a thread-pool round trip costs ~0.3 ms per login, the call itself a few µs (bench/README.md).
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
  }

  /**
   * The slow check (the KDF): true only for a known account with the right password, which is then
   * remembered. An unknown account costs the same KDF run, so timing does not tell which exist.
   * Unbounded: callers go through the KDF gate (login-check.ts).
   */
  async verify(account: string, password: Secret): Promise<boolean> {
    const { entry, stamp } = await this.#entry(accountId(account))
    if (!entry) {
      await hashPassword(password, this.#scrypt)
      return false
    }
    const ok = await verifyPassword(password, entry)
    if (ok) {
      if (this.#verified.size > 10_000) this.#verified.clear()
      this.#verified.set(this.pairKey(account, password), { until: this.#now() + VERIFIED_TTL_MS, stamp })
    }
    return ok
  }

  /** reload(), then remembered() or, failing that, verify(): for callers without a throttle (tests, tools). */
  async check(account: string, password: Secret): Promise<boolean> {
    await this.reload(account)
    return this.remembered(account, password) || this.verify(account, password)
  }
}
