/**
 * Moving the store between protections (plain files, OS keyring, passphrase) without signing in
 * again: `mailkey store migrate --to ...`. Also changing the passphrase (`mailkey store passphrase`).
 *
 * Steps, each safe to interrupt (kill -9 included) and resumed by running the command again:
 * 1. every key the store lists is unlocked (the records must be read);
 * 2. the new key is made (a fresh data key: migrating also rotates it) and added to store.json
 *    beside the old ones, and becomes the current key;
 * 3. each record is rewritten under its account lock (read with its old key, sealed with the new
 *    one, or written plain);
 * 4. store.json keeps only the new key; old keyring entries are deleted.
 * Between 2 and 4 every record opens with a key store.json lists (M1), so nothing is unreadable
 * at any instant, and a refresh running meanwhile writes with a key it holds (protection.ts).
 *
 * Owns: the migration steps. Must not: prompt (the CLI passes the passphrase).
 */
import { unlink } from 'node:fs/promises'
import { ERR, MailkeyError, StoreError, UsageError } from '../errors.js'
import type { Paths } from '../config/paths.js'
import type { FileStore } from './file-store.js'
import { acquire, DEFAULT_LOCK_MAX_AGE_MS } from './lock.js'
import { accountId } from '../domain/account.js'
import {
  KEYRING_SERVICE,
  checkValue,
  keyringEntry,
  metaPath,
  readMeta,
  writeMeta,
  type KeyInfo,
  type Protection,
  type StoreKeys,
  type StoreMeta,
} from './protection.js'
import { defaultScrypt, deriveKey, newDataKey, wrapKey, type ScryptCost } from './seal.js'

export interface MigrateOptions {
  /** for --to passphrase: the new passphrase */
  passphrase?: string
  /** progress lines for people */
  onProgress?: (line: string) => void
  /** scrypt cost of a new passphrase key (default PASSPHRASE_SCRYPT; tests lower it, the CLI never does) */
  kdf?: ScryptCost
}

export interface MigrateResult {
  from: Protection
  to: Protection
  /** accounts rewritten */
  migrated: string[]
  /** record files that could not be read: they keep their old key, which stays listed */
  broken: { file: string; message: string }[]
  /** true when the migration finished one that had been interrupted */
  resumed: boolean
}

async function makeKey(to: Exclude<Protection, 'file'>, o: MigrateOptions): Promise<{ info: KeyInfo; key: Buffer }> {
  const { kid, key } = newDataKey()
  if (to === 'keyring') {
    const entry = `store-key-${kid}`
    try {
      const e = await keyringEntry(KEYRING_SERVICE, entry)
      e.set(key.toString('base64'))
      if (e.get() !== key.toString('base64')) throw new Error('the keyring gave back something else')
    } catch (err) {
      // keyringEntry's own errors speak of reading a key: say what failed here (storing one)
      const why = err instanceof MailkeyError ? err.cause : err
      if (!(why instanceof Error)) throw err // the keyring module itself is missing: its own message and hint
      throw new StoreError(ERR.STORE_KEY_UNAVAILABLE, `the OS keyring cannot store mailkey's key (${why.message})`, {
        hint: 'Start or unlock the keyring (log in to the desktop session, or start gnome-keyring-daemon) and run "mailkey store migrate --to keyring" again, or protect the store with a passphrase instead: "mailkey store migrate --to passphrase".',
      })
    }
    return { info: { kid, kind: 'keyring', service: KEYRING_SERVICE, entry, check: checkValue(key, kid) }, key }
  }
  if (!o.passphrase) throw new UsageError('a passphrase is needed for --to passphrase')
  const kdf = defaultScrypt(o.kdf)
  const kek = await deriveKey(o.passphrase, kdf)
  return { info: { kid, kind: 'passphrase', kdf, wrapped: wrapKey(kek, kid, key), check: checkValue(key, kid) }, key }
}

export async function migrateStore(store: FileStore, to: Protection, o: MigrateOptions = {}): Promise<MigrateResult> {
  const keys = store.keys as StoreKeys
  const paths = store.paths
  await store.ensureDir()
  const before: StoreMeta = readMeta(paths) ?? { v: 1, protection: 'file', keys: [] }
  const from = before.protection
  // An interrupted migration has more than one key, or a plain target with keys left.
  const interrupted = before.keys.length > 1 || (before.protection === 'file' && before.keys.length > 0)
  if (interrupted && before.protection !== to) {
    throw new UsageError(`an earlier migration to "${before.protection}" did not finish`, {
      hint: `Finish it first: "mailkey store migrate --to ${before.protection}".`,
    })
  }
  if (!interrupted && from === to && to === 'file') return { from, to, migrated: [], broken: [], resumed: false }

  // 1. every listed key, so every record can be read
  for (const k of before.keys) await keys.key(k.kid, before)

  // 2. the new key, current from now on (M1: the old keys stay listed)
  let meta = before
  if (!interrupted) {
    const made = to === 'file' ? undefined : await makeKey(to, o)
    meta = {
      v: 1,
      protection: to,
      ...(made ? { current: made.info.kid } : {}),
      keys: [...before.keys, ...(made ? [made.info] : [])],
    }
    await writeMeta(paths, meta)
    if (made) keys.remember(made.info, made.key)
    o.onProgress?.(
      made
        ? `new ${to === 'keyring' ? 'key in the OS keyring' : 'passphrase-protected key'} ${made.info.kid}`
        : 'writing plain files',
    )
  }

  // 3. every record under its lock
  const { migrated, broken } = await rewriteAll(store, to, o)
  // 4. only the new key stays, unless a record could not be rewritten (it may need an old key)
  if (broken.length === 0) await keepOnlyCurrentKey(paths, meta)
  return {
    from,
    to,
    migrated,
    broken: broken.map((b) => ({ file: b.file, message: b.error.message })),
    resumed: interrupted,
  }
}

/** Rewrite every record under its lock, so it is sealed with the current key (or written plain). */
async function rewriteAll(
  store: FileStore,
  to: Protection,
  o: MigrateOptions,
): Promise<{ migrated: string[]; broken: Awaited<ReturnType<FileStore['list']>>['broken'] }> {
  const { records, broken } = await store.list()
  const migrated: string[] = []
  for (const r of records) {
    const id = accountId(r.settings.email)
    const lock = await acquire(store.lockPath(id), { timeoutMs: DEFAULT_LOCK_MAX_AGE_MS })
    try {
      const rec = await store.read(id)
      if (rec) {
        await store.write(rec)
        migrated.push(r.settings.email)
        o.onProgress?.(`${r.settings.email}: ${to === 'file' ? 'written plain' : 'sealed with the new key'}`)
      }
    } finally {
      await lock.release()
    }
  }

  return { migrated, broken }
}

/** Drop every key but the current one (and the keyring entries of dropped keys). */
async function keepOnlyCurrentKey(paths: Paths, meta: StoreMeta): Promise<void> {
  const keep = meta.current ? meta.keys.filter((k) => k.kid === meta.current) : []
  const dropped = meta.keys.filter((k) => !keep.includes(k))
  if (keep.length === 0) {
    await unlink(metaPath(paths)).catch(() => undefined)
  } else {
    await writeMeta(paths, { ...meta, keys: keep })
  }
  for (const k of dropped) {
    if (k.kind !== 'keyring') continue
    try {
      ;(await keyringEntry(k.service, k.entry)).remove()
    } catch {
      /* an entry left behind holds a key that opens nothing any more */
    }
  }
}

/** A new passphrase for the same data key (nothing else is rewritten). `o.kdf` as in MigrateOptions. */
export async function changePassphrase(
  store: FileStore,
  passphrase: string,
  o: { kdf?: ScryptCost } = {},
): Promise<void> {
  const meta = readMeta(store.paths)
  if (!meta || meta.protection !== 'passphrase' || meta.keys.length !== 1) {
    throw new UsageError('the store is not protected by a passphrase', {
      hint: 'Use "mailkey store migrate --to passphrase".',
    })
  }
  const info = meta.keys[0] as KeyInfo
  if (info.kind !== 'passphrase') throw new UsageError('the store is not protected by a passphrase')
  const key = await (store.keys as StoreKeys).key(info.kid, meta)
  const kdf = defaultScrypt(o.kdf)
  const wrapped = wrapKey(await deriveKey(passphrase, kdf), info.kid, key)
  await writeMeta(store.paths, { ...meta, keys: [{ ...info, kdf, wrapped }] })
}
