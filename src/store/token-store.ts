/**
 * The port the broker reads and writes account records through. FileStore (store/file-store.ts)
 * is today's one implementation; a shared store (issue 9/13) is another. Locking is not the
 * store's business: the broker's single flight (broker/single-flight.ts) does it.
 *
 * Owns: the TokenStore interface. Must not: hold code.
 */
import type { AccountRecord } from '../domain/account.js'
import type { StoreError } from '../errors.js'

export interface TokenReadOptions {
  /** false: leave sealed secrets sealed (no key needed); default true */
  secrets?: boolean
}

export interface TokenStore {
  /** the record, or undefined when the account has none */
  read(id: string, opts?: TokenReadOptions): Promise<AccountRecord | undefined>
  /** replace the record atomically and durably (B2 relies on it: persisted before it resolves) */
  write(record: AccountRecord): Promise<void>
  /** every record, secrets left sealed; unreadable ones in `broken` */
  list(): Promise<{ records: AccountRecord[]; broken: { file: string; error: StoreError }[] }>
  /** forget the account; false when there was nothing to forget */
  remove(id: string): Promise<boolean>
  /** make the store ready to write (directories, permissions) */
  ensureDir(): Promise<void>
}
