/**
 * The file token store: one 0600 JSON file per account in a 0700 directory.
 *
 * Invariants:
 * - I1 writes are atomic: temp file in the same dir, fsync, rename over the old file, fsync the
 *   dir. A crash at any instant leaves the old or the new record, never a torn one.
 * - I2 a store with group/world access is refused, not silently fixed: someone else may have read
 *   it already, and the user should know.
 * - I3 a record that cannot be parsed is never overwritten: the error names the file.
 *
 * Owns: reading/writing records, the directory's permissions; the file primitives behind I1 and
 * I2 are store/atomic-file.ts. Must not: talk to the network, decide when to refresh.
 * This module is on the fast `mailkey token` path: node built-ins only.
 */
import { mkdir, readdir, stat, unlink } from 'node:fs/promises'
import { setImmediate as setImmediateP } from 'node:timers/promises'
import { join } from 'node:path'
import { ERR, StoreError } from '../errors.js'
import type { Paths } from '../config/paths.js'
import { RECORD_VERSION, accountId, type AccountRecord } from '../domain/account.js'
import { SealError, openRecord, sealRecord } from './seal.js'
import type { StoreKeys } from './protection.js'
import { DIR_MODE, checkPrivate, isCode, readStateFile, storeIoError, syncDir, writeFileAtomic } from './atomic-file.js'
import type { TokenStore } from './token-store.js'

/** File name for an account: safe characters kept, anything else %-escaped. */
export function fileNameFor(id: string): string {
  return id.replace(/[^a-z0-9._@+-]/g, (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0'))
}

export interface ReadOptions {
  /**
   * false: leave sealed secrets sealed (an encrypted store), so no key is needed; for showing
   * settings and times. Default true: the tokens are opened, which needs the store's key.
   */
  secrets?: boolean
}

export class FileStore implements TokenStore {
  readonly dir: string
  readonly paths: Paths
  /** where the data keys of an encrypted store come from (store/protection.ts) */
  readonly keys: StoreKeys | undefined
  #ready = false

  constructor(paths: Paths, keys?: StoreKeys) {
    this.paths = paths
    this.dir = paths.accountsDir
    this.keys = keys
  }

  recordPath(id: string): string {
    return join(this.dir, fileNameFor(id) + '.json')
  }

  lockPath(id: string): string {
    return join(this.dir, fileNameFor(id) + '.lock')
  }

  /** the state and accounts directories passed checkPrivate (once per process) */
  #dirChecked = false

  /** Create the state dirs 0700 if missing; refuse ones that others can read (I2). */
  async ensureDir(): Promise<void> {
    if (this.#ready) return
    for (const d of [this.paths.stateDir, this.dir]) {
      try {
        await mkdir(d, { recursive: true, mode: DIR_MODE })
      } catch (e) {
        throw storeIoError(`cannot create the state directory "${d}"`, e)
      }
      await checkPrivate(d, 'dir')
    }
    this.#ready = true
  }

  /**
   * I2 at every entry point that reads or changes the store (list, status, remove, config, the
   * proxy's start, the store commands): the state and accounts directories, where they exist, are
   * refused when they are symbolic links, not ours, or open to others. Creates nothing.
   */
  async assertPrivate(): Promise<void> {
    if (this.#ready || this.#dirChecked) return
    for (const d of [this.paths.stateDir, this.dir]) await checkPrivate(d, 'dir', { missingOk: true })
    this.#dirChecked = true
  }

  /**
   * The record, or undefined when the account has none.
   *
   * Read with synchronous calls on purpose: the record is a small local file (a few KiB), and four
   * thread-pool round trips (open, fstat, read, close) cost ~0.4 ms each time on a busy machine
   * where the synchronous calls take ~20 µs. Every `getAccessToken` and every proxy login reads it,
   * so this is on the hot path (bench/README.md, "Proxy"). Writes stay asynchronous (fsync).
   */
  async read(id: string, opts: ReadOptions = {}): Promise<AccountRecord | undefined> {
    const path = this.recordPath(id)
    // Still a real yield to the event loop, as an asynchronous read was: a caller looping on
    // read() (or getAccessToken) must not starve timers and I/O.
    await setImmediateP()
    let got: { text: string; needsModeCheck: boolean } | undefined
    try {
      got = readStateFile(path)
    } catch (e) {
      if (e instanceof StoreError) throw e
      if (isCode(e, 'ELOOP')) await checkPrivate(path, 'file')
      throw storeIoError(`cannot read "${path}"`, e)
    }
    if (!got) return undefined
    const { text, needsModeCheck } = got
    if (needsModeCheck) await checkPrivate(path, 'file')
    // The directories are checked once per process, lazily, only when a record exists.
    await this.assertPrivate()
    const rec = parseRecord(text, path)
    return opts.secrets === false ? rec : await this.#open(rec, id, path)
  }

  /** The secrets of a sealed record opened with the store's key (a plain record as it is). */
  async #open(rec: AccountRecord, id: string, path: string): Promise<AccountRecord> {
    if (!rec.sealed) return rec
    if (!this.keys) throw corrupt(path, 'it is encrypted, and this store was opened without its keys')
    const key = await this.keys.key(rec.sealed.kid)
    try {
      return openRecord(rec, id, key)
    } catch (e) {
      if (e instanceof SealError) throw corrupt(path, `its encrypted tokens do not open: ${e.message}`)
      throw e
    }
  }

  /**
   * Atomic replace (I1), sealed with the store's current key when the store is encrypted. A
   * record read with `secrets: false` and still sealed with the current key is written as it is.
   */
  async write(record: AccountRecord): Promise<void> {
    await this.ensureDir()
    const id = accountId(record.settings.email)
    const path = this.recordPath(id)
    const meta = this.keys?.meta()
    let out = record
    if (out.sealed && out.sealed.kid !== meta?.current) out = await this.#open(out, id, path)
    if (!out.sealed) {
      const cur = meta && meta.protection !== 'file' ? await this.keys?.current() : undefined
      if (cur) out = sealRecord(out, id, cur.key, cur.kid)
    }
    await writeFileAtomic(path, JSON.stringify({ ...out, updatedAt: Date.now() }, null, 2) + '\n')
  }

  async remove(id: string): Promise<boolean> {
    await this.assertPrivate()
    try {
      await unlink(this.recordPath(id))
      await unlink(this.lockPath(id)).catch(() => {})
      await syncDir(this.dir)
      return true
    } catch (e) {
      if (isCode(e, 'ENOENT')) return false
      throw storeIoError(`cannot remove the record of "${id}"`, e)
    }
  }

  /** Every stored record, secrets left sealed (for listing); a corrupt one is reported in `broken`, not thrown. */
  async list(): Promise<{ records: AccountRecord[]; broken: { file: string; error: StoreError }[] }> {
    await this.assertPrivate()
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (e) {
      if (isCode(e, 'ENOENT')) return { records: [], broken: [] }
      throw storeIoError(`cannot list "${this.dir}"`, e)
    }
    const records: AccountRecord[] = []
    const broken: { file: string; error: StoreError }[] = []
    for (const name of names.sort()) {
      if (!name.endsWith('.json')) continue
      const path = join(this.dir, name)
      try {
        const got = readStateFile(path)
        if (!got) continue // removed meanwhile
        if (got.needsModeCheck) await checkPrivate(path, 'file')
        records.push(parseRecord(got.text, path))
      } catch (e) {
        const error = e instanceof StoreError ? e : storeIoError(`cannot read "${path}"`, e)
        // Out of file descriptors is not a broken record: the whole listing is "try again later".
        if (error.transient) throw error
        broken.push({ file: path, error })
      }
    }
    return { records, broken }
  }

  async exists(id: string): Promise<boolean> {
    try {
      await stat(this.recordPath(id))
      return true
    } catch {
      return false
    }
  }
}

export function parseRecord(text: string, path: string): AccountRecord {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    throw corrupt(path, 'it is not valid JSON')
  }
  if (typeof data !== 'object' || data === null) throw corrupt(path, 'it is not a JSON object')
  const r = data as Partial<AccountRecord>
  if (r.v !== RECORD_VERSION) {
    throw corrupt(path, `its format version is ${JSON.stringify(r.v)}, this mailkey reads version ${RECORD_VERSION}`)
  }
  const s = r.settings
  if (
    typeof s !== 'object' ||
    s === null ||
    typeof s.email !== 'string' ||
    typeof s.clientId !== 'string' ||
    typeof s.endpoints !== 'object' ||
    s.endpoints === null ||
    typeof s.endpoints.token !== 'string' ||
    !Array.isArray(s.scopes)
  ) {
    throw corrupt(path, 'its account settings are incomplete')
  }
  if (r.grant !== undefined && (typeof r.grant !== 'object' || r.grant === null))
    throw corrupt(path, 'its grant is malformed')
  if (r.state !== 'active' && r.state !== 'reauth') throw corrupt(path, 'its state is unknown')
  if (r.sealed !== undefined) {
    const b = r.sealed as unknown as Record<string, unknown> | null
    if (
      typeof b !== 'object' ||
      b === null ||
      typeof b.kid !== 'string' ||
      typeof b.iv !== 'string' ||
      typeof b.ct !== 'string' ||
      typeof b.tag !== 'string'
    ) {
      throw corrupt(path, 'its sealed secrets are malformed')
    }
  }
  return r as AccountRecord
}

function corrupt(path: string, why: string): StoreError {
  return new StoreError(ERR.STORE_CORRUPT, `the token store file "${path}" cannot be used: ${why}`, {
    hint: `mailkey left it untouched. Move it aside (mv '${path}' '${path}.broken') and sign in again with "mailkey add".`,
  })
}
