/**
 * Cross-process lock per account: an O_EXCL lock file holding {pid, nonce, at}.
 *
 * Why: with refresh-token rotation and reuse detection (RFC 9700 §4.14.2), two processes that
 * refresh at once can get the whole grant revoked. Every refresher on this machine (CLI helpers,
 * the library, the proxy) takes this lock, then re-reads the record before deciding to refresh.
 *
 * Invariants:
 * - L1 only the holder whose nonce is in the file removes it (release checks the nonce).
 * - L2 a lock whose process is gone (or a zombie), or that is older than maxAgeMs, is stale and
 *   may be taken over; a crashed refresher never blocks an account for long.
 * - L3 a holder can hand the lock to a child process (handOver): the file is replaced atomically,
 *   so there is no instant where the lock is free.
 * - L4 before starting that child the holder marks the lock as in hand-off: if the holder is then
 *   killed before the child's pid is in the file, the lock is not stale for HANDOFF_GRACE_MS, so
 *   nobody takes it over while the child adopts it and refreshes (two refreshes with one rotating
 *   refresh token would get the grant revoked).
 * - L5 a holder never leaves its own lock behind for lack of file descriptors: release() that
 *   cannot open the file to read its nonce checks, with lstat (which needs no descriptor), that
 *   the file at the path is still the very one this holder last wrote (same device, inode and
 *   change time, which any rename or rewrite by someone else changes), and only then removes it;
 *   a release that still fails for a shortage is retried in the background (L1 still holds).
 *
 * Owns: the lock file. Must not: read or write account records.
 */
import { constants as fsc, readFileSync } from 'node:fs'
import { link, lstat, open, rename, unlink } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { ERR, InterruptedError, StoreError, shortageCode } from '../errors.js'
import { isCode, storeIoError } from './atomic-file.js'
import { sleep } from '../core/wait.js'

export interface LockInfo {
  pid: number
  nonce: string
  /** epoch ms when taken */
  at: number
  host: string
  /** the holder is handing the lock to a process it is starting (L4) */
  handoff?: boolean
}

/** L4: how long a lock in hand-off stays valid although its holder is gone (the new process adopts it in milliseconds). */
export const HANDOFF_GRACE_MS = 5000

export interface LockOptions {
  /** give up after this long (default 60 s) */
  timeoutMs?: number
  /** a lock older than this is stale even if its process lives (default 120 s) */
  maxAgeMs?: number
  signal?: AbortSignal
  /** poll interval while waiting (default 25 ms, jittered) */
  pollMs?: number
  /** the clock and the wait between polls (tests inject them; default Date.now and a timer) */
  now?: () => number
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
}

export const DEFAULT_LOCK_MAX_AGE_MS = 120_000

export function newNonce(): string {
  return randomBytes(12).toString('hex')
}

export async function readLock(path: string): Promise<LockInfo | undefined> {
  const got = await readLockFile(path)
  return got === undefined ? undefined : parseLock(got.text)
}

/**
 * A lock file's text and age, or undefined when there is none. Opened O_NOFOLLOW | O_NONBLOCK and
 * checked with fstat: a FIFO planted at the path would block a plain open() or read() forever (a
 * refresh that never ends), a symlink would point the lock anywhere, and a file of another user
 * is not a lock we wrote. Each is refused with the path and the command that clears it.
 */
async function readLockFile(path: string): Promise<{ text: string; ageMs: number } | undefined> {
  let fh
  try {
    fh = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK)
  } catch (e) {
    if (isCode(e, 'ENOENT')) return undefined
    if (isCode(e, 'ELOOP')) throw notALock(path, 'is a symbolic link')
    throw e
  }
  try {
    const st = await fh.stat()
    if (!st.isFile())
      throw notALock(
        path,
        `is not a regular file (${st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a directory' : st.isSocket() ? 'a socket' : 'a device'})`,
      )
    if (typeof process.getuid === 'function' && st.uid !== process.getuid())
      throw notALock(path, `belongs to another user (uid ${st.uid})`)
    // a lock is a few dozen bytes: never read more than a small bound
    const buf = Buffer.alloc(4096)
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
    return { text: buf.subarray(0, bytesRead).toString('utf8'), ageMs: Date.now() - st.mtimeMs }
  } finally {
    await fh.close()
  }
}

function notALock(path: string, what: string): StoreError {
  return new StoreError(ERR.STORE_PERMISSIONS, `the lock file "${path}" ${what}; mailkey refuses to use it`, {
    hint: `Someone else may have put it there. Check, then remove it (rm '${path}') and run the command again.`,
  })
}

function parseLock(text: string): LockInfo | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockInfo>
    if (typeof v.pid === 'number' && typeof v.nonce === 'string' && typeof v.at === 'number') {
      return {
        pid: v.pid,
        nonce: v.nonce,
        at: v.at,
        host: typeof v.host === 'string' ? v.host : '',
        ...(v.handoff === true ? { handoff: true } : {}),
      }
    }
  } catch {
    /* a half-written lock file (the writer died between create and write) */
  }
  return undefined
}

/** Is the process alive and not a zombie? (Zombies answer kill(0) but will never release.) */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return isCode(e, 'EPERM')
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return true // no /proc (macOS): trust kill(0)
  }
}

export function isStale(info: LockInfo | undefined, maxAgeMs = DEFAULT_LOCK_MAX_AGE_MS, now = Date.now()): boolean {
  if (info === undefined) return true // unreadable: its writer died mid-write (checked by age below too)
  if (now - info.at > maxAgeMs) return true
  if (info.host !== '' && info.host !== hostname()) return false // cannot see that machine's pids
  if (info.handoff && now - info.at < HANDOFF_GRACE_MS) return false // L4
  return !pidAlive(info.pid)
}

/** L5: which file this holder last wrote at the lock path (from lstat: no descriptor needed). */
interface FileIdentity {
  dev: bigint
  ino: bigint
  ctimeNs: bigint
}

async function identityOf(path: string): Promise<FileIdentity | undefined> {
  const st = await lstat(path, { bigint: true }).catch(() => undefined)
  return st === undefined ? undefined : { dev: st.dev, ino: st.ino, ctimeNs: st.ctimeNs }
}

function sameFile(a: FileIdentity | undefined, b: FileIdentity | undefined): boolean {
  return a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino && a.ctimeNs === b.ctimeNs
}

/** L5: background retries of a release that ran short (unref'd: they never keep a process alive). */
const RELEASE_RETRY_FIRST_MS = 50
const RELEASE_RETRY_MAX_MS = 2000

export class LockHandle {
  readonly path: string
  readonly nonce: string
  #written: FileIdentity | undefined
  constructor(path: string, nonce: string, written?: FileIdentity) {
    this.path = path
    this.nonce = nonce
    this.#written = written
  }

  /**
   * L1: remove the lock only if it is still ours. L5: never leave our own lock behind because this
   * process is out of descriptors; a release that still fails for a shortage goes on in the
   * background, bounded by DEFAULT_LOCK_MAX_AGE_MS (after that the lock is stale anyway).
   */
  async release(): Promise<void> {
    if (await this.#releaseOnce()) return
    const until = Date.now() + DEFAULT_LOCK_MAX_AGE_MS
    const retry = (delay: number): void => {
      const t = setTimeout(() => {
        void this.#releaseOnce().then((done) => {
          if (!done && Date.now() < until) retry(Math.min(delay * 2, RELEASE_RETRY_MAX_MS))
        })
      }, delay)
      t.unref()
    }
    retry(RELEASE_RETRY_FIRST_MS)
  }

  /** true when done (removed, or not ours); false when a shortage stopped it */
  async #releaseOnce(): Promise<boolean> {
    try {
      let ours: boolean
      try {
        ours = (await readLock(this.path))?.nonce === this.nonce
      } catch (e) {
        if (shortageCode(e) === undefined) return true // not a lock we wrote (L1): leave it
        // no descriptor to read the nonce: is the file at the path still the one we wrote?
        ours = sameFile(this.#written, await identityOf(this.path))
      }
      if (ours)
        await unlink(this.path).catch((e: unknown) => {
          if (!isCode(e, 'ENOENT')) throw e
        })
      return true
    } catch (e) {
      return shortageCode(e) === undefined
    }
  }

  /** L3: hand the lock to another process (pid) without a gap. */
  async handOver(pid: number): Promise<void> {
    await writeLockAtomically(this.path, { pid, nonce: this.nonce, at: Date.now(), host: hostname() })
    this.#written = await identityOf(this.path)
  }

  /** L4: about to start the process that will adopt this lock. */
  async beginHandoff(): Promise<void> {
    await writeLockAtomically(this.path, {
      pid: process.pid,
      nonce: this.nonce,
      at: Date.now(),
      host: hostname(),
      handoff: true,
    })
    this.#written = await identityOf(this.path)
  }
}

async function writeLockAtomically(path: string, info: LockInfo): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600)
  try {
    await fh.writeFile(JSON.stringify(info))
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
}

/** Take over a lock that a parent handed to us; false when it is no longer the parent's. */
export async function adoptLock(path: string, nonce: string): Promise<LockHandle | undefined> {
  const info = await readLock(path)
  if (info?.nonce !== nonce) return undefined
  const handle = new LockHandle(path, nonce)
  await handle.handOver(process.pid)
  return handle
}

/** One attempt: the lock, or undefined when someone live holds it. Steals stale locks (L2). */
export async function tryAcquire(path: string, maxAgeMs = DEFAULT_LOCK_MAX_AGE_MS): Promise<LockHandle | undefined> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const nonce = newNonce()
    try {
      const fh = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600)
      let written: FileIdentity
      try {
        await fh.writeFile(
          JSON.stringify({ pid: process.pid, nonce, at: Date.now(), host: hostname() } satisfies LockInfo),
        )
        const st = await fh.stat({ bigint: true })
        written = { dev: st.dev, ino: st.ino, ctimeNs: st.ctimeNs }
      } finally {
        await fh.close()
      }
      return new LockHandle(path, nonce, written)
    } catch (e) {
      if (!isCode(e, 'EEXIST')) {
        throw storeIoError(`cannot create the lock file "${path}"`, e)
      }
    }
    const info = await readLock(path)
    if (info === undefined) {
      // Empty/half-written: give its writer a moment before calling it stale.
      const age = await lockAgeMs(path)
      if (age === undefined || age < 2000) return undefined
    } else if (!isStale(info, maxAgeMs)) {
      return undefined
    }
    await stealStale(path, info)
  }
  return undefined
}

async function lockAgeMs(path: string): Promise<number | undefined> {
  return (await readLockFile(path))?.ageMs
}

/** Move the stale file away; if what we moved turns out to be a fresh lock, put it back. */
async function stealStale(path: string, seen: LockInfo | undefined): Promise<void> {
  const aside = `${path}.stale.${newNonce()}`
  try {
    await rename(path, aside)
  } catch (e) {
    if (isCode(e, 'ENOENT')) return
    throw e
  }
  const moved = parseLock((await readLockFile(aside).catch(() => undefined))?.text ?? '')
  if (moved !== undefined && moved.nonce !== seen?.nonce && !isStale(moved)) {
    await link(aside, path).catch(() => {}) // restore the live lock unless a newer one exists
  }
  await unlink(aside).catch(() => {})
}

export async function acquire(path: string, options: LockOptions = {}): Promise<LockHandle> {
  const timeoutMs = options.timeoutMs ?? 60_000
  const now = options.now ?? Date.now
  const wait = options.sleep ?? sleep
  const deadline = now() + timeoutMs
  const poll = options.pollMs ?? 25
  for (;;) {
    if (options.signal?.aborted) throw new InterruptedError('interrupted while waiting for the account lock')
    const handle = await tryAcquire(path, options.maxAgeMs)
    if (handle) return handle
    if (now() >= deadline) {
      const info = await readLock(path).catch(() => undefined)
      throw new StoreError(
        ERR.STORE_LOCK_TIMEOUT,
        `timed out after ${Math.round(timeoutMs / 1000)} s waiting for the lock "${path}"${info ? ` held by process ${info.pid}` : ''}`,
        {
          hint: 'Another mailkey is refreshing this account; try again. If no mailkey is running, delete the lock file.',
        },
      )
    }
    await wait(poll + Math.floor(Math.random() * poll), options.signal)
  }
}
