/**
 * The port a shared store engine implements (PostgreSQL: store/shared/postgres.ts; Redis:
 * store/shared/redis.ts). One row per account: the sealed record, its `version` (+1 on every
 * write), a `fence` (a new one, from one counter for the whole store,
 * on every lease taken), the lease (owner, until: in the engine's own clock),
 * an intent marker (a refresh may be in flight at the provider), state and last error in the clear
 * for operators, and an append-only log of refreshes. Every write is conditional on the writer's
 * fence and the version it read, so a host whose lease was taken over cannot overwrite anything
 * (docs/adr/0011).
 *
 * Owns: the SharedBackend interface and the row shapes. Must not: hold code.
 */
import type { LastError, SealedBox } from '../../domain/account.js'
import type { ItemStore } from '../items.js'

export interface IntentMark {
  /** the lease under which the refresh was started */
  fence: number
  owner: string
  /** engine ms */
  at: number
}

export interface SharedRow {
  id: string
  /** +1 on every write; 0: a reservation (an account being created, no record yet) */
  version: number
  /** a new one on every lease taken, from one counter for the store (never repeated) */
  fence: number
  leaseOwner?: string
  /** engine ms */
  leaseUntil?: number
  intent?: IntentMark
  state: 'active' | 'reauth'
  lastError?: LastError
  /** the sealed record (store/shared/record-seal.ts); absent in a reservation */
  box?: SealedBox
  /** engine ms */
  updatedAt: number
  /** the engine's clock when the row was read, ms */
  serverNow: number
}

/** What a write puts in a row besides the fence and version bookkeeping. */
export interface RowWrite {
  box: SealedBox
  state: 'active' | 'reauth'
  lastError?: LastError
  /** for operators and the sweeper, in the clear: epoch ms */
  expiresAt?: number
  refreshTokenAt?: number
  grantedAt?: number
}

/** One line of the refresh log. */
export interface LogEntry {
  event: 'write' | 'refresh' | 'failure' | 'intent' | 'intent-retry' | 'fenced' | 'remove' | 'migrate' | 'rekey'
  owner: string
  fence?: number
  version?: number
  detail?: Record<string, unknown>
}

export type Claim =
  | { kind: 'mine'; row: SharedRow }
  | { kind: 'held'; row: SharedRow }
  /** no row (and no reservation was asked for) */
  | { kind: 'missing' }

export interface SharedBackend {
  /** the engine and its address without any password, e.g. `postgres://mailkey@db:5432/mailkey` */
  readonly label: string
  /** create or upgrade the schema; idempotent */
  init(): Promise<{ from: number; to: number }>
  /** throws StoreError(STORE_SCHEMA) when the schema is missing or too old, naming `mailkey store init` */
  checkSchema(): Promise<void>
  get(id: string): Promise<SharedRow | undefined>
  list(): Promise<SharedRow[]>
  /**
   * Take the lease on `id` for `leaseMs` (engine clock) when nobody holds it: a new fence. `reserve`:
   * when there is no row, create a reservation (version 0) held by `owner`.
   */
  claim(id: string, owner: string, leaseMs: number, reserve: boolean): Promise<Claim>
  /** mark a refresh in flight under this fence; false when the fence is no longer the row's */
  markIntent(id: string, fence: number, owner: string): Promise<boolean>
  /**
   * Replace the row's record when the fence and version are still `fence` and `version`: version + 1,
   * intent cleared, `log` appended in the same transaction. false: fenced off (nothing written).
   */
  write(id: string, fence: number, version: number, w: RowWrite, log: LogEntry): Promise<boolean>
  /** give the lease up if it is still ours; a reservation nobody wrote is deleted */
  release(id: string, fence: number): Promise<void>
  /** delete the row if the fence is still ours */
  remove(id: string, fence: number, log: LogEntry): Promise<boolean>
  /** append to the refresh log */
  log(id: string, entry: LogEntry): Promise<void>
  /** the services' small named things (API keys, proxy passwords: store/items.ts) */
  readonly items: ItemStore
  close(): Promise<void>
}
