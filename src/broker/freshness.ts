/**
 * When is a stored access token good enough to hand out? Shared by the broker, the single flight
 * and the CLI's fast path, so all decide the same way.
 *
 * Owns: the freshness rule and "does this record answer that request". Must not: do I/O.
 */
import type { AccountRecord, GrantRecord, ResourceName, ResourceToken } from '../domain/account.js'

export { DEFAULT_REFRESH_MARGIN_SEC, marginFromEnv } from '../config/settings.js'

/**
 * True when the token has more than `minSec` left, with the margin capped at half the token's
 * lifetime: a server that issues 2-minute tokens must not turn every call into a refresh.
 */
export function isFresh(grant: TokenView | undefined, now: number, minSec: number): boolean {
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
  /** a token for this resource of the grant (absent: the mail servers') */
  resource?: ResourceName
}

/** The fields of an access token, the mail one (the grant's own) or another resource's. */
export type TokenView = Pick<ResourceToken, 'accessToken' | 'tokenType' | 'expiresAt' | 'refreshedAt' | 'scope'>

/** The access token a grant holds for `resource` (absent: the mail servers', the grant's own fields). */
export function tokenOf(grant: GrantRecord | undefined, resource: ResourceName | undefined): TokenView | undefined {
  if (resource === undefined) return grant
  return grant?.resources?.[resource]
}

/**
 * Does this record answer the request? Without force: a token with `minSec` left. With force: a
 * token refreshed since the caller asked (and not yet expired).
 */
export function goodEnough(rec: AccountRecord | undefined, want: Want, now: number): boolean {
  if (rec === undefined) return false
  const t = tokenOf(rec.grant, want.resource)
  if (want.force) return (t?.refreshedAt ?? 0) >= want.since && isFresh(t, now, 0)
  return isFresh(t, now, want.minSec)
}

/** When the requested resource's token was last refreshed (0: never). */
export function refreshedAt(rec: AccountRecord, want: Pick<Want, 'resource'>): number {
  return tokenOf(rec.grant, want.resource)?.refreshedAt ?? 0
}

/** Is the failure recorded in `rec` the answer to a request made at `want.since` (for its resource)? */
export function failedSince(rec: AccountRecord, want: Pick<Want, 'since' | 'resource'>): boolean {
  const e = rec.lastError
  return e !== undefined && e.at >= want.since && e.resource === want.resource
}
