/**
 * When is a stored access token good enough to hand out? Shared by the broker and the CLI's
 * fast path, so both decide the same way.
 *
 * Owns: the freshness rule. Must not: do I/O.
 */
import type { GrantRecord } from '../domain/account.js'

export const DEFAULT_REFRESH_MARGIN_SEC = 300

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

/** MAILKEY_REFRESH_MARGIN_SEC, when it is a whole number of seconds. */
export function marginFromEnv(value: string | undefined): number | undefined {
  return value !== undefined && /^\d{1,5}$/.test(value) ? Number(value) : undefined
}
