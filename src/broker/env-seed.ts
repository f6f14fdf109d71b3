/**
 * Accounts defined by MAILKEY_* variables (config/env-account.ts) are written to the store on
 * first use, under the account's lock, and seeded again when the environment brings a different
 * refresh token or different settings. A rotated refresh token stays in the store: the
 * environment's one is only a seed (its fingerprint is kept, never the token twice).
 *
 * Owns: seeding the store from the environment. Must not: refresh.
 */
import { fingerprint } from '../core/secret.js'
import { accountId } from '../domain/account.js'
import type { Env } from '../config/paths.js'
import type { AccountRecord, AccountSettings } from '../domain/account.js'
import type { TokenStore } from '../store/token-store.js'
import type { Provider } from '../providers/types.js'
import type { AccountOptions } from '../providers/resolve.js'
import type { SingleFlight } from './single-flight.js'
import type { Settings } from '../config/settings.js'

export interface EnvSeedContext {
  env: Env
  store: TokenStore
  flight: SingleFlight
  now: () => number
  /** the settings snapshot (its lockTimeoutMs: how long to wait for the account's lock) */
  settings: () => Promise<Settings>
  /** [providers.NAME] of config.toml (rejects when the file is broken) */
  configProviders: () => Promise<ReadonlyMap<string, Provider>>
}

/** `rec` as it should be for account `id`: unchanged unless MAILKEY_EMAIL names it and the store lags behind. */
export async function syncEnvAccount(
  ctx: EnvSeedContext,
  id: string,
  rec: AccountRecord | undefined,
): Promise<AccountRecord | undefined> {
  const envEmail = ctx.env.MAILKEY_EMAIL
  if (!envEmail || accountId(envEmail) !== id) return rec
  const { readEnvAccount } = await import('../config/env-account.js')
  const envAcc = await readEnvAccount(ctx.env)
  if (!envAcc) return rec
  const fp = fingerprint(envAcc.refreshToken)
  const settings = await envSettings(ctx, envAcc.options)
  const same = (r: AccountRecord | undefined): boolean =>
    r !== undefined && r.grant?.seededFrom === fp && JSON.stringify(r.settings) === JSON.stringify(settings)
  if (same(rec)) return rec
  const { lockTimeoutMs } = await ctx.settings()
  return ctx.flight.exclusive(id, lockTimeoutMs, async () => {
    const cur = await ctx.store.read(id)
    if (same(cur)) return cur
    const now = ctx.now()
    const keepGrant = cur?.grant?.seededFrom === fp // only the settings changed
    const next: AccountRecord = {
      v: 1,
      settings,
      grant:
        keepGrant && cur?.grant
          ? cur.grant
          : { refreshToken: envAcc.refreshToken, grantedAt: now, refreshTokenAt: now, seededFrom: fp },
      state: keepGrant && cur ? cur.state : 'active',
      updatedAt: now,
    }
    await ctx.store.write(next)
    return next
  })
}

async function envSettings(ctx: EnvSeedContext, options: AccountOptions): Promise<AccountSettings> {
  const { candidateSettings, chooseProvider } = await import('../providers/resolve.js')
  const provider = chooseProvider(options, await ctx.configProviders())
  let discovered
  if (options.issuer && !options.tokenUrl && !provider?.endpoints.token) {
    const { discoverEndpoints } = await import('../oauth/discovery.js')
    discovered = await discoverEndpoints(options.issuer, { account: options.email })
  }
  const all = candidateSettings(options, provider, 'env', discovered)
  return all[0] as AccountSettings
}
