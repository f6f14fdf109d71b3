/**
 * `mailkey store migrate --to postgres://…`: the accounts of this host's file store move into a
 * shared store, grants and all, without a new sign-in. Each account is copied under both locks
 * (the local lock file, so no local refresh rotates its token meanwhile, and the shared lease),
 * and its local record is removed once the shared store has it: two live copies of one refresh
 * token would race each other, and with rotation the loser burns the grant. An account the shared
 * store already has is left alone there and here (the shared one may be newer): the report says so.
 *
 * Owns: the copy. Must not: refresh.
 */
import { acquire } from '../lock.js'
import type { FileStore } from '../file-store.js'
import type { SharedStore } from './shared-store.js'
import { accountId } from '../../domain/account.js'
import { WRITE_LOCK_TIMEOUT_MS } from '../../config/settings.js'

export interface MigrateInResult {
  moved: string[]
  /** already in the shared store: left in both places */
  skipped: string[]
  broken: { file: string; message: string }[]
}

export async function migrateIntoShared(
  file: FileStore,
  shared: SharedStore,
  onProgress: (line: string) => void = () => undefined,
): Promise<MigrateInResult> {
  await shared.ensureDir()
  const out: MigrateInResult = { moved: [], skipped: [], broken: [] }
  const { records, broken } = await file.list()
  for (const b of broken) out.broken.push({ file: b.file, message: b.error.message })
  for (const listed of records) {
    const id = accountId(listed.settings.email)
    const lock = await acquire(file.lockPath(id), { timeoutMs: WRITE_LOCK_TIMEOUT_MS })
    try {
      const rec = await file.read(id) // opened: an encrypted file store's key is asked for here
      if (!rec) continue // removed meanwhile
      const lease = await shared.claimWaiting(id, 'migrate', WRITE_LOCK_TIMEOUT_MS)
      try {
        if (lease.version > 0) {
          out.skipped.push(id)
          onProgress(`${id}: already in ${shared.label}; left as it is (the local copy too)`)
          continue
        }
        await shared.runHolding(lease, () => shared.write(rec))
      } finally {
        await shared.release(lease).catch(() => undefined)
      }
      await file.remove(id)
      out.moved.push(id)
      onProgress(`${id}: moved to ${shared.label}`)
    } finally {
      await lock.release()
    }
  }
  return out
}
