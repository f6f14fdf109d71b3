/**
 * A replica's memory of the access tokens it handed out lately, so a storm of requests for one
 * account costs the store one read per `ttlMs`, not one per request. An entry is used only while
 * it is younger than `ttlMs` and its token still has the asked life left; a removed account or
 * a revoked grant is therefore noticed within `ttlMs` (the store is the truth). A forced refresh
 * never comes from here, and one that happened replaces the entry.
 *
 * Owns: that memory. Must not: refresh, or outlive the process (nothing is written anywhere).
 */
import type { AccessToken } from '../broker/access-token.js'

export class TokenCache {
  readonly #ttlMs: number
  readonly #now: () => number
  readonly #max: number
  readonly #m = new Map<string, { t: AccessToken; at: number }>()

  constructor(ttlMs: number, now: () => number = Date.now, max = 10_000) {
    this.#ttlMs = ttlMs
    this.#now = now
    this.#max = max
  }

  /** false with a ttl of 0: every request reads the store */
  get enabled(): boolean {
    return this.#ttlMs > 0
  }

  get(id: string, minSec: number): AccessToken | undefined {
    if (this.#ttlMs <= 0) return undefined
    const e = this.#m.get(id)
    if (!e) return undefined
    const now = this.#now()
    if (now - e.at >= this.#ttlMs || (e.t.expiresAt ?? 0) - now < minSec * 1000) return undefined
    return e.t
  }

  put(id: string, t: AccessToken): void {
    if (this.#ttlMs <= 0) return
    if (this.#m.size >= this.#max && !this.#m.has(id)) this.#m.clear()
    this.#m.set(id, { t, at: this.#now() })
  }

  forget(id: string): void {
    this.#m.delete(id)
  }
}
