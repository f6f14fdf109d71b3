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
 * Owns: reading/writing records, permissions. Must not: talk to the network, decide when to refresh.
 * This module is on the fast `mailkey token` path: node built-ins only.
 */
import { closeSync, constants as fsc, fstatSync, openSync, readFileSync } from 'node:fs'
import { mkdir, open, readdir, rename, stat, unlink, lstat } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { setImmediate as setImmediateP } from 'node:timers/promises'
import { dirname, join } from 'node:path'
import { ERR, StoreError, UsageError, shortageCode, shortageText } from '../errors.js'
import type { Paths } from '../config/paths.js'
import { addressProblem, quoted } from '../core/address.js'
import { RECORD_VERSION, type AccountRecord } from './types.js'
import { SealError, openRecord, sealRecord } from './seal.js'
import type { StoreKeys } from './protection.js'
import type { TokenStore } from './token-store.js'

const DIR_MODE = 0o700
const FILE_MODE = 0o600

/** Normalised account id: the address, trimmed and lower-cased. */
export function accountId(email: string): string {
  return email.trim().toLowerCase()
}

/**
 * The account id of an address typed by the user, or a UsageError that names it safely (quoted,
 * controls escaped) and says why: only RFC 5322 addr-specs are taken (core/address.ts).
 */
export function assertEmail(email: string): string {
  const id = accountId(email)
  const why = addressProblem(id)
  if (why !== undefined) {
    throw new UsageError(`${quoted(email.trim())} is not an e-mail address: ${why}`, {
      hint: 'Give the mailbox address, for example "mailkey add you@outlook.com".',
    })
  }
  return id
}

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

/**
 * I2 for one path of the state: refused (never repaired) when it is a symbolic link, belongs to
 * another user, or gives group or others any access; the error names the path and the chmod that
 * fixes it. `missingOk`: a path that does not exist passes.
 */
export async function checkPrivate(path: string, kind: 'dir' | 'file', o: { missingOk?: boolean } = {}): Promise<void> {
  let st
  try {
    st = await lstat(path)
  } catch (e) {
    if (o.missingOk && isCode(e, 'ENOENT')) return
    throw storeIoError(`cannot read "${path}"`, e)
  }
  if (st.isSymbolicLink()) {
    throw new StoreError(ERR.STORE_PERMISSIONS, `"${path}" is a symbolic link; mailkey refuses to follow it`, {
      hint: `Replace it with a real ${kind === 'dir' ? 'directory' : 'file'}.`,
    })
  }
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new StoreError(ERR.STORE_PERMISSIONS, `"${path}" belongs to another user (uid ${st.uid})`, {
      hint: 'Use your own state directory (XDG_STATE_HOME) or fix the owner.',
    })
  }
  if ((st.mode & 0o077) !== 0) {
    const want = kind === 'dir' ? '700' : '600'
    throw new StoreError(
      ERR.STORE_PERMISSIONS,
      `"${path}" is readable by other users (mode ${(st.mode & 0o777).toString(8)}); what it holds may have leaked`,
      {
        hint: `Run "chmod ${want} '${path}'"; if others could read it, sign in again to replace the grant (and set new local proxy passwords).`,
      },
    )
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

/**
 * A failed file operation of the store. Running out of file descriptors or memory is not a broken
 * store: it is ERR.RESOURCES_EXHAUSTED (transient, exit 75), and the message says what ran out.
 * Only ENOENT on a record means "no such account", and callers handle that before coming here.
 */
export function storeIoError(message: string, cause: unknown): StoreError {
  const shortage = shortageCode(cause)
  if (shortage) {
    return new StoreError(ERR.RESOURCES_EXHAUSTED, `${message}: ${shortageText(shortage)}`, {
      cause,
      hint: 'Nothing was lost; try again in a moment. If it keeps happening, something holds too many open files (raise "ulimit -n" or find it in /proc/<pid>/fd).',
    })
  }
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  return new StoreError(ERR.STORE_IO, code ? `${message} (${code})` : message, { cause })
}

/**
 * A state file's text (an account record, the proxy's key and certificate), or undefined when
 * there is none; `needsModeCheck` when others may read it or it is not ours. O_NOFOLLOW: a symlink
 * fails with ELOOP. O_NONBLOCK: a FIFO planted at the path must not block open(); it is refused as
 * not a regular file (no effect on regular files). Synchronous on purpose: see FileStore.read.
 */
export function readStateFile(path: string): { text: string; needsModeCheck: boolean } | undefined {
  let fd: number
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK)
  } catch (e) {
    if (isCode(e, 'ENOENT')) return undefined
    throw e
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) {
      throw new StoreError(ERR.STORE_PERMISSIONS, `"${path}" is not a regular file; mailkey refuses to read it`, {
        hint: 'Move it aside and sign in again with "mailkey add".',
      })
    }
    const needsModeCheck =
      (st.mode & 0o077) !== 0 || (typeof process.getuid === 'function' && st.uid !== process.getuid())
    return { text: readFileSync(fd, 'utf8'), needsModeCheck }
  } finally {
    closeSync(fd)
  }
}

export function isCode(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code
}

/**
 * I1 for any file of the store: temp file (0600, O_EXCL) in the same directory, fsync, rename
 * over, fsync the directory.
 */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, FILE_MODE)
    try {
      await fh.writeFile(data, 'utf8')
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
    await syncDir(dirname(path))
  } catch (e) {
    await unlink(tmp).catch(() => {})
    throw storeIoError(`cannot write "${path}"`, e)
  }
}

async function syncDir(dir: string): Promise<void> {
  // fsync of the directory makes the rename durable (POSIX); some filesystems refuse: ignore.
  try {
    const fh = await open(dir, fsc.O_RDONLY)
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch {
    /* best effort */
  }
}
