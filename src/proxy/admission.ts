/**
 * Who the proxy serves, and how much unauthenticated input it holds (issue 11, items 1 and 4):
 * - a cap on client connections in total and per source (an address; on loopback, another local
 *   user), so that idle connections cannot use up the file descriptors the proxy needs for upstream
 *   connections and the token store, nor shut the owner's clients out;
 * - a cap on the bytes one connection may send before it has logged in;
 * - a budget for the bytes all connections together may send before login, so that many
 *   connections each under their own cap still cannot grow the proxy without bound.
 * A connection over any of them is refused cleanly (protocols/shared/refusals.ts), never dropped
 * without a word and never allowed to crash the process.
 *
 * Bytes are counted as they arrive and stay charged until the connection logs in or closes: an
 * upper bound on what a session holds (its lines, literals and queued input are parts of it), and
 * on the garbage it leaves for the collector.
 *
 * Owns: the counts, the limits and their defaults. Must not: touch sockets, timers or protocol text.
 */
import { isLoopbackHost } from '../core/net.js'

export interface AdmissionLimits {
  /** client connections at once, logged in or not ([proxy] max_connections) */
  maxConnections: number
  /** client connections at once from one address ([proxy] max_connections_per_source) */
  maxConnectionsPerSource: number
  /**
   * whether the per-source cap applies to loopback addresses too: only when it was set by hand.
   * Every local program is 127.0.0.1, so by default local clients share the total cap alone (a
   * per-source cap there would only lower the total, and 200 local sessions at once must work).
   */
  perSourceOnLoopback: boolean
  /** bytes one connection may send before it has logged in */
  maxPreAuthBytes: number
  /** bytes all connections together may have sent before logging in, while they are open */
  preAuthBudgetBytes: number
  /** what any one connection may send before login even when the shared budget is spent */
  loginAllowanceBytes?: number
}

export const DEFAULT_MAX_CONNECTIONS = 1000
export const DEFAULT_MAX_CONNECTIONS_PER_SOURCE = 100
/**
 * 64 KiB: a login takes a few hundred bytes, an XOAUTH2 pass-through a few KiB; five failed
 * attempts with an 8 KiB password literal each stay below it.
 */
export const DEFAULT_MAX_PRE_AUTH_BYTES = 64 * 1024
/** 16 MiB: 256 connections at their own cap, or thousands of real clients logging in at once */
export const DEFAULT_PRE_AUTH_BUDGET_BYTES = 16 * 1024 * 1024

/**
 * What any connection may send before login even when the shared budget is spent: enough for a
 * greeting exchange and a login (a few hundred bytes, or a few KiB of XOAUTH2), charged as below.
 */
export const LOGIN_ALLOWANCE_BYTES = 4 * 1024

/**
 * What one chunk of input costs at least: a chunk queued while a login is being checked is a
 * Buffer object of its own (about a hundred bytes of bookkeeping), so a client trickling one byte
 * per packet would otherwise hold far more memory than its bytes say (seen: ~80x).
 */
export const MIN_CHUNK_COST = 256

/** what a chunk of `n` bytes is charged before login */
export function chunkCost(n: number): number {
  return Math.max(n, MIN_CHUNK_COST)
}

/**
 * File descriptors kept free whatever the caps: the listeners, the token store and its locks, the
 * password file, CA files, DNS lookups, OAuth requests, a refresh worker's pipes, Node's own.
 */
export const FD_RESERVE = 100

/** descriptors a proxy at `maxConnections` may need: two per logged-in client (it and its upstream) */
export function descriptorsNeeded(maxConnections: number): number {
  return 2 * maxConnections + FD_RESERVE
}

/**
 * The default total cap: DEFAULT_MAX_CONNECTIONS, lowered so that at the cap every client can
 * still have its upstream connection and the reserve stays free (at least 1).
 */
export function defaultMaxConnections(openFileLimit: number | undefined): number {
  if (openFileLimit === undefined) return DEFAULT_MAX_CONNECTIONS
  return Math.max(1, Math.min(DEFAULT_MAX_CONNECTIONS, Math.floor((openFileLimit - FD_RESERVE) / 2)))
}

/**
 * The limits in force: the defaults, overridden by positive whole numbers only; and a warning when
 * the total cap needs more descriptors than the process may open (a cap set by hand is kept: the
 * user may know better, e.g. clients that never log in all at once).
 */
export function resolveAdmission(
  given: Partial<AdmissionLimits> | undefined,
  openFileLimit: number | undefined,
): { limits: AdmissionLimits; warning?: string } {
  for (const [key, v] of Object.entries(given ?? {})) {
    if (typeof v === 'number' && (!Number.isSafeInteger(v) || v < 1))
      throw new RangeError(`proxy limit "${key}" must be a positive integer`)
  }
  const maxConnections = given?.maxConnections ?? defaultMaxConnections(openFileLimit)
  const limits: AdmissionLimits = {
    maxConnections,
    maxConnectionsPerSource:
      given?.maxConnectionsPerSource ?? Math.min(DEFAULT_MAX_CONNECTIONS_PER_SOURCE, maxConnections),
    perSourceOnLoopback: given?.perSourceOnLoopback ?? given?.maxConnectionsPerSource !== undefined,
    maxPreAuthBytes: given?.maxPreAuthBytes ?? DEFAULT_MAX_PRE_AUTH_BYTES,
    preAuthBudgetBytes: given?.preAuthBudgetBytes ?? DEFAULT_PRE_AUTH_BUDGET_BYTES,
  }
  const need = descriptorsNeeded(limits.maxConnections)
  if (openFileLimit !== undefined && need > openFileLimit) {
    return {
      limits,
      warning:
        `max_connections = ${limits.maxConnections} may need ${need} file descriptors, but this process may open ${openFileLimit}: ` +
        `near the cap, logins can fail for lack of descriptors (they are answered "try again later"). Lower max_connections to ${defaultMaxConnections(openFileLimit)} or raise the limit (ulimit -n, LimitNOFILE=).`,
    }
  }
  return { limits }
}

export type AdmissionRefusal = 'busy' | 'source-busy'
export type InputRefusal = 'too-much-input' | 'budget'

/** One admitted connection's share of the counts. */
export interface AdmissionTicket {
  /** charge `n` more bytes received before login: undefined while within the caps */
  take(n: number): InputRefusal | undefined
  /** the client logged in: its pre-auth bytes no longer count (the connection still does) */
  loggedIn(): void
  /** the connection closed: everything it held is released (again: no effect) */
  release(): void
}

export class Admission {
  readonly limits: AdmissionLimits
  #open = 0
  #preAuthBytes = 0
  readonly #perSource = new Map<string, number>()

  constructor(limits: AdmissionLimits) {
    this.limits = limits
  }

  /** connections open now */
  get open(): number {
    return this.#open
  }

  /** bytes charged to connections that have not logged in */
  get preAuthBytes(): number {
    return this.#preAuthBytes
  }

  /**
   * A loopback connection turned out to belong to another local user (`source` is `uid:<n>`,
   * proxy/peer-uid.ts): every local program is 127.0.0.1, so the address cannot tell the owner's
   * clients from another user's, but the user can. Another user gets the per-source cap, so that
   * they cannot take the whole total from the owner; the owner's own clients share the total alone.
   * The release function, or 'source-busy'.
   */
  admitLocalUser(source: string): (() => void) | 'source-busy' {
    if ((this.#perSource.get(source) ?? 0) >= this.limits.maxConnectionsPerSource) return 'source-busy'
    this.#countSource(source)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#uncountSource(source)
    }
  }

  #countSource(source: string): void {
    this.#perSource.set(source, (this.#perSource.get(source) ?? 0) + 1)
  }

  #uncountSource(source: string): void {
    const left = (this.#perSource.get(source) ?? 1) - 1
    if (left > 0) this.#perSource.set(source, left)
    else this.#perSource.delete(source)
  }

  /** A new connection from `address`: a ticket, or why it is refused. */
  admit(address: string): AdmissionTicket | AdmissionRefusal {
    if (this.#open >= this.limits.maxConnections) return 'busy'
    // an IPv4 client of a dual-stack listener is the same source as on an IPv4 listener
    const source = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '')
    const capped = this.limits.perSourceOnLoopback || !isLoopbackHost(source)
    if (capped && (this.#perSource.get(source) ?? 0) >= this.limits.maxConnectionsPerSource) return 'source-busy'
    this.#open++
    this.#countSource(source)
    let charged = 0
    let preAuth = true
    let released = false
    const uncharge = (): void => {
      this.#preAuthBytes -= charged
      charged = 0
      preAuth = false
    }
    return {
      take: (n) => {
        if (!preAuth || released) return undefined
        if (charged + n > this.limits.maxPreAuthBytes) return 'too-much-input'
        // Over the shared budget, a connection that has sent no more than a login needs still may:
        // the budget bounds memory, and must not become a cheaper way to shut the owner out than
        // the connection cap (what this lets past the budget is at most connections x 4 KiB).
        if (
          this.#preAuthBytes + n > this.limits.preAuthBudgetBytes &&
          charged + n > (this.limits.loginAllowanceBytes ?? LOGIN_ALLOWANCE_BYTES)
        )
          return 'budget'
        charged += n
        this.#preAuthBytes += n
        return undefined
      },
      loggedIn: uncharge,
      release: () => {
        if (released) return
        released = true
        uncharge()
        this.#open--
        this.#uncountSource(source)
      },
    }
  }
}

/**
 * Refusals are logged at most once per `everyMs` per reason, with how many there were since the
 * last line: a flood of refused connections must not become a flood of log lines.
 */
export class RefusalLog {
  readonly #last = new Map<string, { at: number; count: number }>()
  readonly #now: () => number
  readonly #everyMs: number

  constructor(now: () => number = Date.now, everyMs = 10_000) {
    this.#now = now
    this.#everyMs = everyMs
  }

  /** count one refusal; the number to log (refusals since the last logged line), or undefined: stay quiet */
  note(reason: string): number | undefined {
    const t = this.#now()
    const e = this.#last.get(reason)
    if (e && t - e.at < this.#everyMs) {
      e.count++
      return undefined
    }
    const count = (e?.count ?? 0) + 1
    this.#last.set(reason, { at: t, count: 0 })
    return count
  }
}
