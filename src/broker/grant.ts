/**
 * The grant record after a token response: one rule for a refresh and for a sign-in, so both
 * store the same fields the same way.
 *
 * Owns: building a GrantRecord from a TokenSet. Must not: do I/O.
 */
import type { GrantRecord, ResourceName, ResourceToken } from '../domain/account.js'
import type { TokenSet } from '../oauth/grants.js'

/** when the server sends no expires_in (RFC 6749 §5.1 makes it RECOMMENDED only) */
export const ASSUMED_LIFETIME_SEC = 3600

/**
 * The grant after `ts` arrived at `now`. `prev` is the grant it continues (a refresh, or an
 * imported refresh token); without one, a new grant starts now (a sign-in). RFC 6749 §6: the
 * server MAY issue a new refresh token; if it does, the old one may be dead already (rotation, RFC
 * 9700 §4.14.2), so the new one replaces it; if it does not, the old one is kept.
 */
export function nextGrant(
  prev: GrantRecord | undefined,
  ts: TokenSet,
  now: number,
  resource?: ResourceName,
): GrantRecord {
  if (resource !== undefined) return nextResourceGrant(prev, ts, now, resource)
  return {
    ...(prev ?? { grantedAt: now }),
    accessToken: ts.accessToken.reveal(),
    tokenType: ts.tokenType,
    expiresAt: now + (ts.expiresIn ?? ASSUMED_LIFETIME_SEC) * 1000,
    refreshedAt: now,
    ...(ts.refreshToken ? { refreshToken: ts.refreshToken.reveal(), refreshTokenAt: now } : {}),
    ...(ts.scope !== undefined ? { scope: ts.scope } : {}),
    ...(ts.identity ? { identity: ts.identity } : {}),
  }
}

/**
 * The grant after a refresh for another resource: its access token goes beside the mail token
 * (which is kept), and a rotated refresh token replaces the grant's one, whichever resource's
 * refresh brought it (one refresh token serves them all).
 */
function nextResourceGrant(
  prev: GrantRecord | undefined,
  ts: TokenSet,
  now: number,
  resource: ResourceName,
): GrantRecord {
  const base = prev ?? { grantedAt: now }
  const token: ResourceToken = {
    accessToken: ts.accessToken.reveal(),
    tokenType: ts.tokenType,
    expiresAt: now + (ts.expiresIn ?? ASSUMED_LIFETIME_SEC) * 1000,
    refreshedAt: now,
    ...(ts.scope !== undefined ? { scope: ts.scope } : {}),
  }
  return {
    ...base,
    ...(ts.refreshToken ? { refreshToken: ts.refreshToken.reveal(), refreshTokenAt: now } : {}),
    resources: { ...base.resources, [resource]: token },
  }
}
