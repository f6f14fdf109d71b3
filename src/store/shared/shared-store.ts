/**
 * TokenStore on a shared engine (PostgreSQL, Redis): records sealed with the store key
 * (record-seal.ts), every write fenced (backend.ts). A write happens under a lease: the one the
 * caller holds (runHolding: the single flight's refresh, or `exclusive` for a sign-in or a
 * removal), else one taken for just that write. So a host whose lease was taken over by another
 * (it was paused, or cut off, past the lease) can never overwrite what the other wrote: its write
 * fails with STORE_FENCED and nothing changes.
 *
 * Owns: sealing rows, leases as objects, the lease of the current async context. Must not:
 * refresh, or decide what is fresh (broker/fenced-flight.ts does).
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { ERR, StoreError } from '../../errors.js'
import { RECORD_VERSION, accountId, type AccountRecord } from '../../domain/account.js'
import type { TokenReadOptions, TokenStore } from '../token-store.js'
import { SealError } from '../seal.js'
import type { IntentMark, LogEntry, RowWrite, SharedBackend, SharedRow } from './backend.js'
import { openShared, sealShared } from './record-seal.js'
import { KeyedItems } from './keyed-items.js'
import type { StoreKeyRing } from './store-key.js'

/** A lease this process holds on one account. `version` follows this holder's own writes. */
export interface Lease {
  id: string
  fence: number
  version: number
  owner: string
  /** what the row held when the lease was taken */
  row: SharedRow
  /** a refresh that an earlier holder started and never finished (its answer may be lost) */
  intent?: IntentMark
  /** what the writes under this lease are, for the log */
  purpose: 'refresh' | 'write' | 'migrate' | 'rekey'
}

export interface SharedStoreOptions {
  backend: SharedBackend
  keys: () => Promise<StoreKeyRing>
  /** how long a lease lasts (engine clock) */
  leaseMs: number
}

export const DEFAULT_LEASE_MS = 60_000
const WRITE_WAIT_MS = 30_000

export class SharedStore implements TokenStore {
  readonly kind = 'shared'
  readonly label: string
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
  readonly leaseMs: number
  readonly #backend: SharedBackend
  readonly #keys: () => Promise<StoreKeyRing>
  readonly #held = new AsyncLocalStorage<Lease>()
  #items: KeyedItems | undefined

  constructor(o: SharedStoreOptions) {
    this.#backend = o.backend
    this.#keys = o.keys
    this.label = o.backend.label
    this.leaseMs = o.leaseMs
  }

  get backend(): SharedBackend {
    return this.#backend
  }

  /** The store's items, bound to the store key (keyed-items.ts): what the services use. */
  get items(): KeyedItems {
    this.#items ??= new KeyedItems(this.#backend.items, this.#keys)
    return this.#items
  }

  async read(id: string, _opts?: TokenReadOptions): Promise<AccountRecord | undefined> {
    const row = await this.#backend.get(id)
    return row ? await this.recordOf(row) : undefined
  }

  /** The record a row holds (undefined for a reservation); opened with the key it was sealed with. */
  async recordOf(row: SharedRow): Promise<AccountRecord | undefined> {
    if (!row.box || row.version === 0) return undefined
    const ring = await this.#keys()
    const key = ring.all.find((k) => k.kid === row.box?.kid)
    if (!key) {
      throw new StoreError(
        ERR.STORE_CORRUPT,
        `the account "${row.id}" on ${this.label} is sealed with key ${row.box.kid}, which the key file "${ring.source}" does not hold`,
        {
          account: row.id,
          hint: 'Copy the current key file from the host that rotated the key (mailkey store rotate-key).',
        },
      )
    }
    let body
    try {
      body = openShared(row.box, row.id, row.version, key.key)
    } catch (e) {
      if (!(e instanceof SealError)) throw e
      throw new StoreError(ERR.STORE_CORRUPT, `the account "${row.id}" on ${this.label} does not open: ${e.message}`, {
        account: row.id,
        hint: `mailkey leaves it untouched. Sign in again with "mailkey add ${row.id}" to replace it.`,
      })
    }
    const rec: AccountRecord = {
      v: RECORD_VERSION,
      settings: body.settings,
      state: row.state,
      updatedAt: row.updatedAt,
    }
    if (body.grant) rec.grant = body.grant
    if (row.lastError) rec.lastError = row.lastError
    return rec
  }

  async write(record: AccountRecord): Promise<void> {
    const id = accountId(record.settings.email)
    await this.#underLease(id, (lease) => this.#writeUnder(lease, record))
  }

  async #writeUnder(lease: Lease, record: AccountRecord): Promise<void> {
    const ring = await this.#keys()
    const next = lease.version + 1
    const w: RowWrite = { box: sealShared(record, lease.id, next, ring.current), state: record.state }
    if (record.lastError) w.lastError = record.lastError
    if (record.grant?.expiresAt !== undefined) w.expiresAt = record.grant.expiresAt
    if (record.grant?.refreshTokenAt !== undefined) w.refreshTokenAt = record.grant.refreshTokenAt
    if (record.grant?.grantedAt !== undefined) w.grantedAt = record.grant.grantedAt
    const ok = await this.#backend.write(lease.id, lease.fence, lease.version, w, this.#logOf(lease, record))
    if (!ok) throw fencedOff(lease, this.label)
    lease.version = next
  }

  #logOf(lease: Lease, record: AccountRecord): LogEntry {
    // a refresh that succeeded clears lastError (broker/refresh.ts); one that failed records it
    const failed = record.lastError !== undefined
    const event = lease.purpose === 'refresh' ? (failed ? 'failure' : 'refresh') : lease.purpose
    const detail: Record<string, unknown> = { state: record.state }
    if (failed) detail.error = record.lastError?.code
    if (lease.intent) detail.afterIntent = lease.intent.owner
    return { event, owner: this.owner, fence: lease.fence, version: lease.version + 1, detail }
  }

  async remove(id: string): Promise<boolean> {
    return await this.#underLease(id, async (lease) =>
      this.#backend.remove(id, lease.fence, { event: 'remove', owner: this.owner }),
    )
  }

  async list(): Promise<{ records: AccountRecord[]; broken: { file: string; error: StoreError }[] }> {
    const records: AccountRecord[] = []
    const broken: { file: string; error: StoreError }[] = []
    for (const row of await this.#backend.list()) {
      try {
        const rec = await this.recordOf(row)
        if (rec) records.push(rec)
      } catch (e) {
        if (!(e instanceof StoreError) || e.transient) throw e
        broken.push({ file: `${this.label} account ${row.id}`, error: e })
      }
    }
    return { records, broken }
  }

  /** The id of the key new records are sealed with. */
  async currentKid(): Promise<string> {
    return (await this.#keys()).current.kid
  }

  /** Throws unless this host has the store's key (a shared store without one is refused up front). */
  async requireKey(): Promise<void> {
    await this.#keys()
  }

  /** Why this host cannot open the store's records (no key, a bad key file), or undefined. */
  async keyProblem(): Promise<string | undefined> {
    try {
      await this.#keys()
      return undefined
    } catch (e) {
      return e instanceof Error ? e.message : String(e)
    }
  }

  /** The schema is there (the shared store's "directory"). */
  async ensureDir(): Promise<void> {
    await this.#backend.checkSchema()
  }

  /** The row as it is, without opening it (waiters watch its version and lease). */
  async row(id: string): Promise<SharedRow | undefined> {
    return await this.#backend.get(id)
  }

  /**
   * Try to take the lease on `id`: the lease, or the row of whoever holds it, or 'missing'.
   * `reserve`: an account that does not exist yet is reserved (a sign-in creating it).
   */
  async claim(id: string, purpose: Lease['purpose'], reserve = false): Promise<Lease | SharedRow | 'missing'> {
    const c = await this.#backend.claim(id, this.owner, this.leaseMs, reserve)
    if (c.kind === 'missing') return 'missing'
    if (c.kind === 'held') return c.row
    const lease: Lease = { id, fence: c.row.fence, version: c.row.version, owner: this.owner, row: c.row, purpose }
    if (c.row.intent) lease.intent = c.row.intent
    return lease
  }

  /** Take the lease, waiting for another holder up to `timeoutMs`; creates a reservation if needed. */
  async claimWaiting(id: string, purpose: Lease['purpose'], timeoutMs: number): Promise<Lease> {
    const until = Date.now() + timeoutMs
    for (;;) {
      const c = await this.claim(id, purpose, true)
      if (c !== 'missing' && 'purpose' in c) return c
      if (Date.now() >= until) {
        throw new StoreError(ERR.STORE_LOCK_TIMEOUT, `timed out waiting for another host to finish with "${id}"`, {
          account: id,
          hint: `Try again; ${this.label} says ${c === 'missing' ? 'nobody' : (c.leaseOwner ?? 'another host')} holds it.`,
        })
      }
      await sleep(25 + Math.floor(Math.random() * 50))
    }
  }

  /** Has another host taken the account since `lease` was taken (the fence moved on)? */
  async fenceMoved(lease: Lease): Promise<boolean> {
    const row = await this.#backend.get(lease.id).catch(() => undefined)
    return row !== undefined && row.fence !== lease.fence
  }

  async markIntent(lease: Lease): Promise<boolean> {
    return await this.#backend.markIntent(lease.id, lease.fence, this.owner)
  }

  async release(lease: Lease): Promise<void> {
    await this.#backend.release(lease.id, lease.fence)
  }

  async log(lease: Lease, event: LogEntry['event'], detail?: Record<string, unknown>): Promise<void> {
    await this.#backend.log(lease.id, {
      event,
      owner: this.owner,
      fence: lease.fence,
      version: lease.version,
      ...(detail ? { detail } : {}),
    })
  }

  /** Run `fn` with `lease` as the lease of its writes. */
  runHolding<T>(lease: Lease, fn: () => Promise<T>): Promise<T> {
    return this.#held.run(lease, fn)
  }

  /** The lease of the current context for `id`, else a lease taken (waiting) for `fn` alone. */
  async #underLease<T>(id: string, fn: (lease: Lease) => Promise<T>): Promise<T> {
    const held = this.#held.getStore()
    if (held && held.id === id) return await fn(held)
    const lease = await this.claimWaiting(id, 'write', WRITE_WAIT_MS)
    try {
      return await fn(lease)
    } finally {
      await this.release(lease).catch(() => undefined)
    }
  }

  async close(): Promise<void> {
    await this.#backend.close()
  }
}

export function fencedOff(lease: Lease, label: string): StoreError {
  return new StoreError(
    ERR.STORE_FENCED,
    `another host took over "${lease.id}" on ${label} while this one held it (fence ${lease.fence}); this host's write was refused`,
    { account: lease.id },
  )
}

export function isFenced(e: unknown): boolean {
  return e instanceof StoreError && e.code === ERR.STORE_FENCED
}
