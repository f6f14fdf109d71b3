/**
 * B1 across processes, as a port: "run this refresh once for account X, or wait for whoever runs
 * it and return what they left". The broker depends on this interface only. Today's
 * implementation is a lock file per account plus a detached worker (broker/lock-flight.ts); a
 * shared store for fleets of hosts (issue 13) brings another.
 *
 * Every implementation keeps: one refresher per account at a time across processes (B1); waiters
 * re-read the record when the refresher is done, and a refresh or a failure recorded after they
 * asked is their answer; the refresh persists before anyone sees its token (B2).
 *
 * Owns: the SingleFlight interface. Must not: hold code.
 */
import type { AccountRecord } from '../domain/account.js'
import type { RefreshRequest } from './refresh.js'

export interface FlightRequest extends RefreshRequest {
  /** give up waiting for another refresher at this epoch ms */
  deadline: number
  /** called when this process becomes the one that refreshes (itself or through its worker) */
  onMine?: () => void
}

export interface SingleFlight {
  /** A record that answers `req` (refreshed here, by a worker, or by another process), or the error recorded. */
  refresh(id: string, req: FlightRequest): Promise<AccountRecord>
  /** Run `fn` while no one else refreshes or writes account `id` (sign-in, removal, env seeding). */
  exclusive<T>(id: string, timeoutMs: number, fn: () => Promise<T>): Promise<T>
}
