/**
 * SingleFlight (broker/single-flight.ts) on one machine: an O_EXCL lock file per account
 * (store/lock.ts, L1-L5) admits one refresher; it refreshes in a detached worker (broker/worker.ts,
 * B3) or, when there is none, in this process; everyone else polls the lock (20-40 ms, jittered)
 * and re-reads the record when it is free (docs/adr/0003). 50 processes on an expired token cost
 * one token request.
 *
 * Owns: taking, handing over and waiting for account locks. Must not: talk to the token endpoint
 * (the refresh is passed in) or decide what is fresh (broker/freshness.ts).
 */
import { ERR, InterruptedError, StoreError } from '../errors.js'
import { acquire, isStale, readLock, tryAcquire, DEFAULT_LOCK_MAX_AGE_MS, type LockHandle } from '../store/lock.js'
import { sleep } from '../core/wait.js'
import type { AccountRecord } from '../domain/account.js'
import type { TokenStore } from '../store/token-store.js'
import { failedSince, goodEnough, refreshedAt } from './freshness.js'
import { errorFromLast, unknownAccount } from './failures.js'
import { refreshRequestOf, type RefreshRequest } from './refresh.js'
import type { FlightRequest, SingleFlight } from './single-flight.js'

export interface LockFlightOptions {
  store: TokenStore
  /** where account `id`'s lock file lives */
  lockPath: (id: string) => string
  now: () => number
  /** the refresh, run in this process while it holds the lock */
  refreshHere: (id: string, req: RefreshRequest) => Promise<AccountRecord>
  /** B3: start the detached worker under the lock; absent or 'not-started': refresh here */
  worker?: (id: string, lock: LockHandle, req: RefreshRequest) => Promise<'done' | 'not-started'>
}

export class LockFlight implements SingleFlight {
  readonly #o: LockFlightOptions

  constructor(o: LockFlightOptions) {
    this.#o = o
  }

  async refresh(id: string, req: FlightRequest): Promise<AccountRecord> {
    const lockPath = this.#o.lockPath(id)
    await this.#o.store.ensureDir()
    for (;;) {
      if (req.signal?.aborted) throw new InterruptedError('interrupted while refreshing', { account: id })
      const lock = await tryAcquire(lockPath, DEFAULT_LOCK_MAX_AGE_MS)
      if (lock) {
        const rec = await this.#underLock(id, lock, req)
        if (rec) return rec
      }
      // Someone else refreshes (or our worker did): wait for the lock to go, then look at what they left.
      const r = await this.#waitForOutcome(id, lockPath, req)
      if (r === 'retry') {
        if (this.#o.now() >= req.deadline) {
          throw new StoreError(ERR.STORE_LOCK_TIMEOUT, `timed out waiting for another mailkey to refresh "${id}"`, {
            account: id,
          })
        }
        continue
      }
      // A refresh that finished after we asked is the answer, even if the server issued a token
      // that is short of our margin: asking again would only hammer it.
      if (goodEnough(r, req, this.#o.now()) || refreshedAt(r, req) >= req.since) return r
      if (failedSince(r, req)) throw errorFromLast(r)
      // The lock holder decided nothing was needed but we still want a refresh (force): go again.
    }
  }

  /** With the lock: the record if it already answers or this process refreshed; undefined when the worker did. */
  async #underLock(id: string, lock: LockHandle, req: FlightRequest): Promise<AccountRecord | undefined> {
    let handedOver = false
    try {
      const rec = await this.#o.store.read(id)
      if (!rec) throw unknownAccount(id)
      if (goodEnough(rec, req, this.#o.now())) return rec
      req.onMine?.()
      const outcome = this.#o.worker ? await this.#o.worker(id, lock, req) : 'not-started'
      handedOver = outcome !== 'not-started'
      if (outcome === 'done') return undefined
      // The caller's signal ends its waiting, never a refresh this process started: an abandoned
      // request may already have rotated the refresh token at the server, and its answer must be
      // stored (B2, B3). So the refresh here runs without it, as the worker's does.
      return await this.#o.refreshHere(id, refreshRequestOf(req))
    } finally {
      if (!handedOver) await lock.release()
    }
  }

  async #waitForOutcome(id: string, lockPath: string, req: FlightRequest): Promise<AccountRecord | 'retry'> {
    for (;;) {
      await sleep(20 + Math.floor(Math.random() * 20), req.signal)
      if (req.signal?.aborted) throw new InterruptedError('interrupted while waiting for a refresh', { account: id })
      const info = await readLock(lockPath).catch(() => undefined)
      if (info && !isStale(info) && this.#o.now() < req.deadline) continue
      const rec = await this.#o.store.read(id)
      if (!rec) throw unknownAccount(id)
      if (info && !isStale(info)) {
        throw new StoreError(
          ERR.STORE_LOCK_TIMEOUT,
          `timed out after ${Math.round((req.deadline - req.since) / 1000)} s waiting for process ${info.pid} to refresh "${id}"`,
          {
            account: id,
            hint: 'Try again; if it keeps happening, look for a stuck mailkey process.',
          },
        )
      }
      if (refreshedAt(rec, req) >= req.since || failedSince(rec, req)) return rec
      return 'retry'
    }
  }

  async exclusive<T>(id: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
    await this.#o.store.ensureDir()
    const lock = await acquire(this.#o.lockPath(id), { timeoutMs })
    try {
      return await fn()
    } finally {
      await lock.release()
    }
  }
}
