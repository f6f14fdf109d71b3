/**
 * SingleFlight (broker/single-flight.ts) across hosts, on a shared store (store/shared/): the
 * protocol of docs/adr/0011.
 *
 * 1. Claim the account's lease (engine clock; the fence goes up by one). Someone holds it: wait
 *    (short jittered polls of the row) until its version moves (their refresh or failure is the
 *    answer) or their lease runs out (claim again).
 * 2. With the lease: if the record already answers, done. Else mark the intent (a refresh may now
 *    be in flight at the provider), refresh with a deadline shorter than the lease, and write the
 *    result under the fence (B2: nobody sees the token before the write). A write refused because
 *    the fence moved on (this host was paused or cut off past its lease) is discarded, and the
 *    answer is whatever the new holder leaves.
 * 3. An intent left by an earlier holder that never wrote means its refresh was cut off, and the
 *    provider may have answered it. The rule: refresh once more with the stored refresh token
 *    (Microsoft, Google and servers with a reuse grace period accept it); an invalid_grant then
 *    means the grant is gone, recorded as needing a sign-in and never retried (lostAnswer).
 *
 * Waiters compare versions, not timestamps, so hosts with skewed clocks agree.
 *
 * Owns: the lease protocol's steps. Must not: talk to the token endpoint itself (refreshHere).
 */
import { ERR, InterruptedError, StoreError, isStoreUnavailable } from '../errors.js'
import type { AccountRecord } from '../domain/account.js'
import type { SharedRow } from '../store/shared/backend.js'
import { isFenced, type Lease, type SharedStore } from '../store/shared/shared-store.js'
import { unavailable } from '../store/shared/pg-connect.js'
import { sleep } from '../core/wait.js'
import { goodEnough, isFresh, refreshedAt, tokenOf } from './freshness.js'
import { errorFromLast, unknownAccount } from './failures.js'
import { refreshRequestOf, type RefreshRequest } from './refresh.js'
import type { FlightRequest, SingleFlight } from './single-flight.js'

export interface FencedFlightOptions {
  store: SharedStore
  now: () => number
  /** the refresh, run in this process while it holds the lease */
  refreshHere: (id: string, req: RefreshRequest) => Promise<AccountRecord>
  /** B3: hand the lease to a detached worker (broker/shared-worker.ts); 'not-started': refresh here */
  worker?: (lease: Lease, req: RefreshRequest, budgetMs: number) => Promise<WorkerOutcome>
}

/** how far apart two hosts' clocks may be when a forced request judges another host's refresh */
const CLOCK_SKEW_MS = 5_000

/** 'unavailable': the worker could not reach the store (its answer, if any, was not stored) */
export type WorkerOutcome = 'done' | 'not-started' | 'unavailable'

/** The refresh must end this long before the lease does, so its write lands inside it. */
export function refreshBudgetMs(leaseMs: number): number {
  return Math.max(1_000, leaseMs - Math.min(10_000, Math.floor(leaseMs / 3)))
}

export class FencedFlight implements SingleFlight {
  readonly #o: FencedFlightOptions

  constructor(o: FencedFlightOptions) {
    this.#o = o
  }

  async refresh(id: string, req: FlightRequest): Promise<AccountRecord> {
    const store = this.#o.store
    let seen: number | undefined
    for (;;) {
      if (req.signal?.aborted) throw new InterruptedError('interrupted while refreshing', { account: id })
      if (this.#o.now() >= req.deadline) throw this.#timedOut(id, undefined, req)
      const c = await store.claim(id, 'refresh')
      if (c === 'missing') throw unknownAccount(id)
      if ('purpose' in c) {
        seen ??= c.version
        const rec = await this.#underLease(id, c, req)
        if (rec) return rec
        // fenced off (or a worker did it): discard, re-read; what the row holds now is the answer
        const now = await store.row(id)
        if (!now) throw unknownAccount(id)
        const r = await this.#waitForOutcome(id, now, seen, req)
        if (typeof r !== 'number') return r
        seen = r
        continue
      }
      seen ??= c.version
      const r = await this.#waitForOutcome(id, c, seen, req)
      if (typeof r === 'number') {
        seen = r
        continue
      }
      return r
    }
  }

  /** With the lease: the record, or undefined when this host was fenced off. */
  async #underLease(id: string, lease: Lease, req: FlightRequest): Promise<AccountRecord | undefined> {
    const store = this.#o.store
    const claimedAt = this.#o.now()
    let down = false
    try {
      const rec = await store.recordOf(lease.row)
      if (!rec) throw unknownAccount(id)
      if (goodEnough(rec, req, this.#o.now())) return rec
      // a grant another host found dead stays dead until a sign-in (or a forced try): no loop
      if (rec.state === 'reauth' && !req.force) throw errorFromLast(rec)
      req.onMine?.()
      if (lease.intent) await store.log(lease, 'intent-retry', { cutOff: lease.intent.owner })
      if (!(await store.markIntent(lease))) return undefined
      // The caller's signal ends its waiting, never this refresh (an abandoned request may already
      // have rotated the token, and the answer must be written); the lease's deadline does end it.
      // counted from when the lease was taken: the steps before the refresh spent part of it
      const budget = refreshBudgetMs(store.leaseMs) - (this.#o.now() - claimedAt)
      if (budget <= 0) return undefined // too late to start: the next turn claims again
      const refreshReq: RefreshRequest = refreshRequestOf({
        ...req,
        ...(lease.intent ? { cutOffRefreshBy: lease.intent.owner } : {}),
      })
      // the worker's outcome is in the row: re-read it like a fenced-off host's
      const outcome = await this.#o.worker?.(lease, refreshReq, budget)
      if (outcome === 'done') return await this.#afterWorker(lease)
      if (outcome === 'unavailable') {
        down = true // no release: it would wait out another timeout, and the lease expires by itself
        throw unavailable(store.label, 'refresh', 'the refresh could not be stored')
      }
      const here = { ...refreshReq, signal: AbortSignal.timeout(budget) }
      return await store.runHolding(lease, () => this.#o.refreshHere(id, here))
    } catch (e) {
      // fenced off, or failed after another host took over (a pause outlived the lease): the
      // failure is moot, the new holder's outcome is the answer
      if (isFenced(e) || (!isStoreUnavailable(e) && (await store.fenceMoved(lease)))) {
        await store.log(lease, 'fenced').catch(() => undefined)
        return undefined
      }
      throw e
    } finally {
      if (!down) await store.release(lease).catch(() => undefined)
    }
  }

  /**
   * Poll the row until its version moves past `seen` or the lease is free. A write after the caller
   * asked is the answer: a token with life left (even short of the margin: asking again would only
   * hammer the server), or the failure it records. Else the version to wait past next (claim again).
   */
  async #waitForOutcome(
    id: string,
    held: SharedRow,
    seen: number,
    req: FlightRequest,
  ): Promise<AccountRecord | number> {
    let row: SharedRow | undefined = held
    for (;;) {
      if (row.version > seen) {
        const r = await this.#outcome(id, row, req)
        if (r) return r
        return row.version
      }
      if (row.leaseUntil === undefined || row.leaseUntil <= row.serverNow) return seen
      if (this.#o.now() >= req.deadline) throw this.#timedOut(id, row, req)
      await sleep(20 + Math.floor(Math.random() * 30), req.signal)
      if (req.signal?.aborted) throw new InterruptedError('interrupted while waiting for a refresh', { account: id })
      row = await this.#o.store.row(id)
      if (!row) throw unknownAccount(id)
    }
  }

  /**
   * A record written after the caller asked: the failure it records (a dead grant or a failed
   * refresh is never answered with the old token), else a token with life left (short of the
   * margin too: asking again would only hammer the server; a forced request wants one refreshed
   * after it asked, allowing some clock skew between hosts), else undefined (claim again).
   */
  async #outcome(id: string, row: SharedRow, req: FlightRequest): Promise<AccountRecord | undefined> {
    const rec = await this.#o.store.recordOf(row)
    if (!rec) throw unknownAccount(id)
    if (rec.state === 'reauth' || (rec.lastError && rec.lastError.resource === req.resource)) throw errorFromLast(rec)
    const now = this.#o.now()
    if (goodEnough(rec, req, now)) return rec
    const refreshedSince = refreshedAt(rec, req) >= req.since - CLOCK_SKEW_MS
    if (isFresh(tokenOf(rec.grant, req.resource), now, 0) && (!req.force || refreshedSince)) return rec
    return undefined
  }

  /**
   * The worker ended: its outcome is in the row (undefined: re-read it). A worker that ended
   * without writing anything under this lease (it died, or failed before the refresh) is an error,
   * not a reason to start another one: the intent it left is the next claimer's to retry.
   */
  async #afterWorker(lease: Lease): Promise<undefined> {
    const row = await this.#o.store.row(lease.id)
    if (row && row.fence === lease.fence && row.version === lease.version) {
      throw new StoreError(ERR.STORE_IO, `the refresh worker for "${lease.id}" ended without storing an outcome`, {
        account: lease.id,
        hint: 'Try again; if it keeps happening, run "mailkey token --debug" to see why the worker stops.',
      })
    }
    return undefined
  }

  #timedOut(id: string, row: SharedRow | undefined, req: FlightRequest): StoreError {
    return new StoreError(
      ERR.STORE_LOCK_TIMEOUT,
      `timed out after ${Math.round((req.deadline - req.since) / 1000)} s waiting for ${row?.leaseOwner ?? 'another host'} to refresh "${id}"`,
      { account: id, hint: 'Try again; if it keeps happening, look for a stuck mailkey on that host.' },
    )
  }

  async exclusive<T>(id: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
    const store = this.#o.store
    const lease = await store.claimWaiting(id, 'write', timeoutMs)
    try {
      return await store.runHolding(lease, fn)
    } finally {
      await store.release(lease).catch(() => undefined)
    }
  }
}
