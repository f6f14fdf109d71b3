/**
 * When is a stored access token good enough to hand out? Shared by the broker, the single flight
 * and the CLI's fast path, so all decide the same way.
 *
 * Owns: the freshness rule and "does this record answer that request". Must not: do I/O.
 */
import type { AccountRecord, GrantRecord } from '../domain/account.js'

export { DEFAULT_REFRESH_MARGIN_SEC, marginFromEnv } from '../config/settings.js'

/**
 * True when the token has more than `minSec` left, with the margin capped at half the token's
 * lifetime: a server that issues 2-minute tokens must not turn every call into a refresh.
 */
export function isFresh(grant: GrantRecord | undefined, now: number, minSec: number): boolean {
  if (!grant?.accessToken || grant.expiresAt === undefined) return false
  const left = grant.expiresAt - now
  if (left <= 0) return false
  const life = grant.refreshedAt !== undefined ? grant.expiresAt - grant.refreshedAt : Infinity
  return left > Math.min(minSec * 1000, life / 2)
}

/** What a caller of getAccessToken asked for. */
export interface Want {
  /** a refresh that happened after `since` is required (the server rejected the token) */
  force: boolean
  /** epoch ms when the caller asked */
  since: number
  /** life left required (without force) */
  minSec: number
}

/**
 * Does this record answer the request? Without force: a token with `minSec` left. With force: a
 * token refreshed since the caller asked (and not yet expired).
 */
export function goodEnough(rec: AccountRecord | undefined, want: Want, now: number): boolean {
  if (rec === undefined) return false
  if (want.force) return (rec.grant?.refreshedAt ?? 0) >= want.since && isFresh(rec.grant, now, 0)
  return isFresh(rec.grant, now, want.minSec)
}
