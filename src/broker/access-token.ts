/**
 * What getAccessToken hands out, and the one case where it hands out a token it did not just
 * check against the margin: the server is down and the cached token still has a while to live.
 *
 * Owns: the AccessToken shape. Must not: refresh.
 */
import { ERR, ProtocolError, type MailkeyError } from '../errors.js'
import { Secret } from '../core/secret.js'
import { CACHED_FALLBACK_MIN_MS } from '../config/settings.js'
import type { AccountRecord, ResourceName } from '../domain/account.js'
import { tokenOf } from './freshness.js'
import type { TokenStore } from '../store/token-store.js'
import type { SaslMechanism } from '../providers/types.js'

export interface GetTokenOptions {
  /** refresh even if the cached token looks valid (the server rejected it) */
  forceRefresh?: boolean
  /** require at least this much life left (default: the refresh margin) */
  minValiditySec?: number
  signal?: AbortSignal
  /** a token for this other resource of the grant (Microsoft Graph); absent: the mail servers' */
  resource?: ResourceName
}

export interface AccessToken {
  account: string
  token: Secret
  /** epoch ms */
  expiresAt?: number
  scope?: string
  sasl: SaslMechanism
  /** the mailbox to name in SASL (XOAUTH2 user=, OAUTHBEARER a=) */
  user: string
  /** this call refreshed the token (or waited for another process that did) */
  refreshed: boolean
}

export function toAccessToken(rec: AccountRecord, refreshed: boolean, resource?: ResourceName): AccessToken {
  const g = tokenOf(rec.grant, resource)
  if (!g?.accessToken)
    throw new ProtocolError(
      ERR.OAUTH_PROTOCOL,
      `no ${resource === 'graph' ? 'Microsoft Graph ' : ''}access token stored for "${rec.settings.email}"`,
      { account: rec.settings.email },
    )
  const t: AccessToken = {
    account: rec.settings.email,
    token: new Secret(g.accessToken),
    sasl: rec.settings.sasl,
    user: rec.settings.mailbox ?? rec.settings.email,
    refreshed,
  }
  if (g.expiresAt !== undefined) t.expiresAt = g.expiresAt
  if (g.scope !== undefined) t.scope = g.scope
  return t
}

/**
 * A transient failure (`e`) with a still-valid token in hand: hand it out and say so. Rethrows `e`
 * when the stored token has CACHED_FALLBACK_MIN_MS or less left.
 */
export async function cachedInstead(
  store: TokenStore,
  id: string,
  e: MailkeyError,
  now: number,
  onWarning: ((message: string) => void) | undefined,
  resource?: ResourceName,
): Promise<AccessToken> {
  const cur = await store.read(id).catch(() => undefined)
  const g = tokenOf(cur?.grant, resource)
  const left = g?.accessToken && g.expiresAt !== undefined ? g.expiresAt - now : 0
  if (!cur || left <= CACHED_FALLBACK_MIN_MS) throw e
  onWarning?.(`${e.message}; using the cached token for "${id}" (valid ${Math.round(left / 1000)} s more)`)
  return toAccessToken(cur, false, resource)
}
