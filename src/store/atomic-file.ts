/**
 * The store's file primitives, shared by every state file (account records, store.json, the
 * proxy's passwords, key and certificate) and the lock files.
 *
 * Invariants (named as in file-store.ts):
 * - I1 writes are atomic: temp file (0600, O_EXCL) in the same dir, fsync, rename over the old
 *   file, fsync the dir. A crash at any instant leaves the old or the new file, never a torn one.
 * - I2 a path with group/world access, another owner, or a symbolic link is refused, never
 *   repaired: someone else may have read it already, and the user should know.
 *
 * Owns: atomic writes, no-follow reads, the privacy check, I/O error mapping. Must not: know what
 * the files hold. This module is on the fast `mailkey token` path: node built-ins only.
 */
import { closeSync, constants as fsc, fstatSync, openSync, readFileSync } from 'node:fs'
import { lstat, open, rename, unlink } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { dirname } from 'node:path'
import { ERR, StoreError, shortageCode, shortageText } from '../errors.js'

export const DIR_MODE = 0o700
const FILE_MODE = 0o600

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

/** fsync a directory so a rename or unlink in it is durable (best effort). */
export async function syncDir(dir: string): Promise<void> {
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
