/**
 * An account's grant policy (its provider's horizons, broker/horizon.ts): the provider that
 * lookupProvider names, config.toml first, each field falling back to the preset's.
 *
 * Owns: where a grant policy comes from. Must not: do the horizon arithmetic.
 */
import type { ConfigFile } from '../config/config-file.js'
import type { AccountSettings } from '../domain/account.js'
import type { GrantPolicy } from './horizon.js'

export async function grantPolicyOf(config: ConfigFile, s: AccountSettings): Promise<GrantPolicy> {
  const [{ lookupProvider }, { presetNamed }] = await Promise.all([
    import('../providers/resolve.js'),
    import('../providers/registry.js'),
  ])
  // A broken config file is reported by the commands that need it. Field by field: a
  // [providers.NAME] that leaves a horizon out keeps the preset's (Microsoft's 90 idle days).
  const p = lookupProvider(s.provider, (await config.loadOrNothing())?.providers ?? new Map())
  const idleDays = p?.refreshTokenIdleDays ?? presetNamed(s.provider)?.refreshTokenIdleDays
  const maxAgeDays = p?.grantMaxAgeDays ?? presetNamed(s.provider)?.grantMaxAgeDays
  return { ...(idleDays ? { idleDays } : {}), ...(maxAgeDays ? { maxAgeDays } : {}) }
}
