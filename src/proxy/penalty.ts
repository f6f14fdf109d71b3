/**
 * Slows down guessing of the proxy's local passwords. The KDF already makes each guess cost
 * ~0.3 s of CPU; this makes a run of failures cost wall-clock time as well, without ever locking
 * anyone out: after `freePerUser` failed checks for one (client address, user name) pair, the next
 * check for that pair first waits baseMs x 2^(extra failures), at most maxMs; the same per client
 * address alone with a higher threshold, against spraying many user names. A success clears the
 * pair. A pair is forgotten `forgetMs` after its last failure. The idea is Dovecot's auth penalty
 * (anvil), which doubles a per-address delay up to 15 s.
 *
 * A client whose right password is already remembered (PasswordStore's in-memory cache) never
 * waits: the penalty applies only before a KDF run. The "address" is the throttle's source
 * (peer-uid.ts: the local user for loopback clients). A sleep per request cannot bound parallel
 * connections; the shared guess budget in throttle.ts does, and comes first (login-check.ts).
 *
 * Owns: the counters and the delay. Must not: sleep, do I/O, or see a password.
 */
import { accountId } from '../domain/account.js'

export interface PenaltyOptions {
  /** failures of one (address, user) pair that cost nothing extra */
  freePerUser: number
  /** failures from one address, over all user names, that cost nothing extra */
  freePerAddress: number
  /** the first delay */
  baseMs: number
  /** the longest delay */
  maxMs: number
  /** a counter is dropped this long after its last failure */
  forgetMs: number
  /** at most this many counters are kept (the oldest go first) */
  maxEntries: number
  now: () => number
}

export const DEFAULT_PENALTY: PenaltyOptions = {
  freePerUser: 3,
  freePerAddress: 10,
  baseMs: 1000,
  maxMs: 15_000,
  forgetMs: 15 * 60_000,
  maxEntries: 10_000,
  now: Date.now,
}

interface Counter {
  failures: number
  last: number
}

export class LoginPenalty {
  readonly #o: PenaltyOptions
  /** insertion order = age order: a failure moves its counter to the end */
  readonly #counters = new Map<string, Counter>()

  constructor(options: Partial<PenaltyOptions> = {}) {
    this.#o = { ...DEFAULT_PENALTY, ...options }
  }

  /** How long to wait before checking a password for `user` from `address` (0: no wait). */
  delayMs(address: string, user: string): number {
    const o = this.#o
    const now = o.now()
    const pair = this.#get(pairKey(address, user), now)
    const addr = this.#get(addressKey(address), now)
    return Math.max(delay(pair, o.freePerUser, o), delay(addr, o.freePerAddress, o))
  }

  failed(address: string, user: string): void {
    const now = this.#o.now()
    for (const key of [pairKey(address, user), addressKey(address)]) {
      const c = this.#get(key, now) ?? { failures: 0, last: now }
      c.failures += 1
      c.last = now
      this.#counters.delete(key)
      this.#counters.set(key, c)
    }
    while (this.#counters.size > this.#o.maxEntries) {
      const oldest = this.#counters.keys().next().value as string
      this.#counters.delete(oldest)
    }
  }

  /** The right password: this pair starts afresh (the address keeps its count of other failures). */
  succeeded(address: string, user: string): void {
    this.#counters.delete(pairKey(address, user))
  }

  /** counters held (for tests and the log) */
  get size(): number {
    return this.#counters.size
  }

  #get(key: string, now: number): Counter | undefined {
    const c = this.#counters.get(key)
    if (c && now - c.last > this.#o.forgetMs) {
      this.#counters.delete(key)
      return undefined
    }
    return c
  }
}

function delay(c: Counter | undefined, free: number, o: PenaltyOptions): number {
  if (!c || c.failures < free) return 0
  return Math.min(o.maxMs, o.baseMs * 2 ** Math.min(30, c.failures - free))
}

const pairKey = (address: string, user: string): string => `u\0${address}\0${accountId(user)}`
const addressKey = (address: string): string => `a\0${address}`
