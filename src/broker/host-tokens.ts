/**
 * A host on a shared store keeps working while the store is down: every access token it hands out
 * is also kept in its host cache (store/host-cache.ts), and when the store cannot be reached the
 * cached one is handed out while it is valid (with a warning). After that, the store's own
 * transient error (exit 75, "[UNAVAILABLE]" in the proxy) names the store. There is never a
 * refresh without the store's lease, so a host cut off cannot race the rest of the fleet.
 *
 * Owns: when the host cache is written and when it may answer. Must not: refresh.
 */
import { ERR, MailkeyError, isStoreUnavailable } from '../errors.js'
import { Secret } from '../core/secret.js'
import { CACHED_FALLBACK_MIN_MS } from '../config/settings.js'
import type { HostCache } from '../store/host-cache.js'
import type { AccessToken } from './access-token.js'
import type { AccountRecord, AccountSettings } from '../domain/account.js'

/** The store could not be reached (or is out of resources): the host cache may answer. */
export function storeDown(e: unknown): e is MailkeyError {
  return isStoreUnavailable(e) || (e instanceof MailkeyError && e.code === ERR.RESOURCES_EXHAUSTED)
}

/** Keep `t` for the times the store is down; written only when it changed since this process last did. */
export async function remember(
  cache: HostCache,
  id: string,
  t: AccessToken,
  written: Map<string, number>,
  settingsOf: () => Promise<AccountSettings | undefined>,
): Promise<void> {
  if (t.expiresAt === undefined || written.get(id) === t.expiresAt) return
  try {
    const settings = await settingsOf().catch(() => undefined)
    const { clientSecret: _secret, ...kept } = settings ?? ({} as AccountSettings)
    await cache.put(id, {
      account: t.account,
      ...(settings ? { settings: kept as AccountSettings } : {}),
      token: t.token.reveal(),
      expiresAt: t.expiresAt,
      sasl: t.sasl,
      user: t.user,
      ...(t.scope !== undefined ? { scope: t.scope } : {}),
    })
    written.set(id, t.expiresAt)
  } catch {
    // a courtesy for bad times: its failure is never the caller's
  }
}

/** The cached token while it is valid (more than CACHED_FALLBACK_MIN_MS left), else `e` again. */
export async function fromHostCache(
  cache: HostCache,
  id: string,
  e: MailkeyError,
  now: number,
  onWarning: ((message: string) => void) | undefined,
): Promise<AccessToken> {
  const c = await cache.get(id)
  const left = c ? c.expiresAt - now : 0
  if (!c || left <= CACHED_FALLBACK_MIN_MS) throw e
  onWarning?.(`${e.message}; using this host's cached token for "${id}" (valid ${Math.round(left / 1000)} s more)`)
  const t: AccessToken = {
    account: c.account,
    token: new Secret(c.token),
    expiresAt: c.expiresAt,
    sasl: c.sasl,
    user: c.user,
    refreshed: false,
  }
  if (c.scope !== undefined) t.scope = c.scope
  return t
}

/** The account's record as this host last saw it (settings only, no secrets), while the store is down. */
export async function recordFromHostCache(cache: HostCache, id: string, e: MailkeyError): Promise<AccountRecord> {
  const c = await cache.get(id)
  if (!c?.settings) throw e
  return { v: 1, settings: c.settings, state: 'active', updatedAt: 0 }
}

/** A broker's host cache: the cache files, and which token this process last wrote to them. */
export class HostTokens {
  readonly #cache: HostCache
  readonly #written = new Map<string, number>()

  constructor(cache: HostCache) {
    this.#cache = cache
  }

  remember(id: string, t: AccessToken, settingsOf: () => Promise<AccountSettings | undefined>): Promise<void> {
    return remember(this.#cache, id, t, this.#written, settingsOf)
  }

  /**
   * What getAccessToken gives when it failed with `e`: the cached token while the store is down
   * (not for a forced refresh), else `e`. A dead grant or a removed account is forgotten here
   * first: its token is never handed out from the cache.
   */
  async instead(
    id: string,
    e: unknown,
    force: boolean,
    now: number,
    onWarning?: (message: string) => void,
  ): Promise<AccessToken> {
    if (e instanceof MailkeyError && (e.reauthRequired || e.code === ERR.ACCOUNT_UNKNOWN)) await this.forget(id)
    if (!storeDown(e) || force) throw e
    return await fromHostCache(this.#cache, id, e, now, onWarning)
  }

  forget(id: string): Promise<void> {
    this.#written.delete(id)
    return this.#cache.remove(id)
  }

  record(id: string, e: MailkeyError): Promise<AccountRecord> {
    return recordFromHostCache(this.#cache, id, e)
  }
}
