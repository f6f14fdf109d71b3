/**
 * Account rules derived from provider data (providers/types.ts), so no code asks which provider
 * an account belongs to: which SASL mechanisms to offer its servers, and what to say when a
 * grant came without a refresh token. The caller passes the provider (providers/registry.ts
 * presetNamed); undefined stands for a custom server, which gets the general rules.
 *
 * Owns: these rules. Must not: do I/O, name a provider, or import anything of mailkey but
 * core/, errors.ts and provider data types.
 */
import type { Provider, SaslMechanism } from '../providers/types.js'
import type { AccountSettings } from './account.js'

/** Every SASL mechanism mailkey speaks for OAuth (RFC 7628 OAUTHBEARER and Google's XOAUTH2). */
export const SASL_MECHANISMS: readonly SaslMechanism[] = ['XOAUTH2', 'OAUTHBEARER']

/**
 * The mechanisms to offer an account's servers, preferred first: the account's own, then the
 * others mailkey speaks, keeping only those the provider's servers accept (Provider.sasl).
 */
export function mechanismsFor(
  settings: Pick<AccountSettings, 'sasl'>,
  provider: Pick<Provider, 'sasl'> | undefined,
): SaslMechanism[] {
  const order = [settings.sasl, ...SASL_MECHANISMS.filter((m) => m !== settings.sasl)]
  return provider ? order.filter((m) => provider.sasl.includes(m)) : order
}

/**
 * What to tell a user whose grant has no refresh token: where the provider's preset asks for
 * OpenID Connect's offline_access scope, that scope is what brings one.
 */
export function noRefreshTokenHint(provider: Pick<Provider, 'scopes'> | undefined): string | undefined {
  return provider?.scopes.includes('offline_access')
    ? 'The "offline_access" scope is needed for a refresh token.'
    : undefined
}
