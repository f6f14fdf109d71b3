/**
 * Authorization server metadata discovery: RFC 8414 first, then OpenID Connect Discovery 1.0.
 *
 * Owns: turning an issuer URL into endpoints. Must not: touch the store.
 */
import * as oauth from 'oauth4webapi'
import { ConfigError, ERR } from '../errors.js'
import { classify } from './classify.js'
import { isNetworkFailure } from './net-failure.js'
import { checkEndpoint, isLoopbackHost, safeHost, type OAuthContext } from './http.js'
import type { AccountEndpoints } from '../domain/account.js'

export async function discoverEndpoints(issuer: string, ctx: OAuthContext): Promise<AccountEndpoints> {
  const url = checkEndpoint(issuer, 'issuer', ctx.account)
  const plain = url.protocol === 'http:' && isLoopbackHost(url.hostname)
  const base = {
    ...(plain ? { [oauth.allowInsecureRequests]: true } : {}),
    signal: AbortSignal.any([AbortSignal.timeout(ctx.timeoutMs ?? 30_000), ...(ctx.signal ? [ctx.signal] : [])]),
  }
  let lastError: unknown
  // RFC 8414 §3 and OIDC Discovery §4: try both well-known locations.
  for (const algorithm of ['oauth2', 'oidc'] as const) {
    try {
      const as = await oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, { ...base, algorithm }))
      if (typeof as.token_endpoint !== 'string') {
        throw new ConfigError(ERR.CONFIG_INVALID, `the metadata of "${issuer}" has no token_endpoint`, {
          account: ctx.account,
        })
      }
      const e: AccountEndpoints = { issuer: as.issuer, token: as.token_endpoint }
      if (as.authorization_endpoint) e.authorization = as.authorization_endpoint
      if (as.device_authorization_endpoint) e.deviceAuthorization = as.device_authorization_endpoint
      if (as.revocation_endpoint) e.revocation = as.revocation_endpoint
      for (const [k, v] of Object.entries(e)) if (v) checkEndpoint(v, `${k} endpoint`, ctx.account)
      return e
    } catch (err) {
      if (err instanceof ConfigError) throw err
      lastError = err
    }
  }
  const c = classify(lastError, { account: ctx.account, host: safeHost(issuer), phase: 'discovery' })
  // a network failure already names the host and what helps (oauth/net-failure.ts)
  if (c.transient || isNetworkFailure(lastError)) throw c
  throw new ConfigError(ERR.CONFIG_INVALID, `cannot read the OAuth metadata of "${issuer}": ${c.message}`, {
    account: ctx.account,
    cause: lastError,
    hint: 'Check the issuer URL, or give the endpoints with --authorize-url, --token-url and --device-url.',
  })
}
