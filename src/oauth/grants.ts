/**
 * OAuth grants on top of oauth4webapi: refresh (RFC 6749 §6), device authorization (RFC 8628),
 * authorization code with PKCE (RFC 6749 §4.1 + RFC 7636), revocation (RFC 7009).
 *
 * Each function does one exchange and returns plain values with secrets wrapped in `Secret`.
 * Holds no state; retries, locking and persistence belong to the broker.
 *
 * Owns: request/process pairs and the wire -> domain conversion. Must not: touch the store.
 */
import * as oauth from 'oauth4webapi'
import { ERR, InterruptedError, ProtocolError, ReauthRequiredError, TransientError } from '../errors.js'
import { Secret } from '../core/secret.js'
import { stripControls } from '../core/server-text.js'
import { sleep } from '../core/wait.js'
import type { AccountSettings, Identity } from '../domain/account.js'
import { classify, type Phase } from './classify.js'
import {
  authorizationServer,
  clientAuth,
  oauthClient,
  requestKit,
  safeHost,
  type OAuthContext,
  type RequestKit,
} from './http.js'

export interface TokenSet {
  accessToken: Secret
  /** present when the server issued (or rotated) one */
  refreshToken?: Secret
  /** seconds, as the server said */
  expiresIn?: number
  scope?: string
  tokenType: string
  identity?: Identity
}

async function exchange(
  settings: AccountSettings,
  ctx: OAuthContext,
  phase: Phase,
  endpoint: string | undefined,
  run: (as: oauth.AuthorizationServer, client: oauth.Client, kit: RequestKit) => Promise<oauth.TokenEndpointResponse>,
  verify?: (kit: RequestKit, host: string) => void,
): Promise<TokenSet> {
  const kit = requestKit(settings, ctx)
  const host = safeHost(endpoint ?? settings.endpoints.token)
  try {
    const res = await run(authorizationServer(settings), oauthClient(settings), kit)
    verify?.(kit, host)
    return toTokenSet(res, kit.identity(), settings, host)
  } catch (e) {
    throw classify(e, {
      account: settings.email,
      host,
      phase,
      clientId: settings.clientId,
      retryAfterSec: kit.retryAfterSec(),
    })
  } finally {
    kit.dispose()
  }
}

function toTokenSet(
  res: oauth.TokenEndpointResponse,
  identity: Identity | undefined,
  settings: AccountSettings,
  host: string,
): TokenSet {
  // RFC 6750 §1: mail servers take Bearer tokens; a DPoP-bound token would not work there.
  if (res.token_type !== 'bearer') {
    throw new ProtocolError(
      ERR.OAUTH_PROTOCOL,
      `${host} issued a "${res.token_type}" token for "${settings.email}"; mail servers need a Bearer token`,
      {
        account: settings.email,
      },
    )
  }
  const t: TokenSet = { accessToken: new Secret(res.access_token), tokenType: res.token_type }
  if (typeof res.refresh_token === 'string' && res.refresh_token.length > 0)
    t.refreshToken = new Secret(res.refresh_token)
  if (typeof res.expires_in === 'number' && Number.isFinite(res.expires_in) && res.expires_in >= 0)
    t.expiresIn = res.expires_in
  if (typeof res.scope === 'string') t.scope = res.scope
  if (identity) t.identity = identity
  return t
}

/**
 * RFC 6749 §6. A rotated refresh token, if any, is in the result. `scope` (§6: a subset of the
 * granted scopes) picks the resource on Microsoft's v2 endpoint, where one grant serves several
 * resources but each access token is for one ("Refresh tokens ... aren't tied to a resource",
 * learn.microsoft.com/entra/identity-platform/refresh-tokens).
 */
export function refreshGrant(
  settings: AccountSettings,
  refreshToken: Secret,
  ctx: OAuthContext & { scope?: readonly string[] },
): Promise<TokenSet> {
  return exchange(settings, ctx, 'refresh', undefined, async (as, client, kit) =>
    oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth(settings), refreshToken.reveal(), {
        ...kit.options,
        ...(ctx.scope ? { additionalParameters: { scope: ctx.scope.join(' ') } } : {}),
      }),
    ),
  )
}

export interface DeviceAuthorization {
  deviceCode: Secret
  userCode: string
  verificationUri: string
  verificationUriComplete?: string
  /** seconds the code lives (RFC 8628 §3.2) */
  expiresIn: number
  /** epoch ms */
  expiresAt: number
  /** seconds between polls (RFC 8628 §3.2: default 5) */
  interval: number
  /** Microsoft's ready-made instruction text */
  message?: string
}

/** RFC 8628 §3.2 gives no bounds; these keep a hostile or broken answer from turning polling into a flood. */
export const DEVICE_LIMITS = {
  /** never poll faster than this, whatever the server says (seconds) */
  minIntervalSec: 1,
  /** RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default" */
  defaultIntervalSec: 5,
  /** a larger interval (3e6 overflowed setTimeout into a 1 ms loop) is cut to this */
  maxIntervalSec: 60,
  /** a code is given up after this long at most, whatever expires_in says (seconds) */
  maxExpiresInSec: 3600,
} as const

/** The interval actually waited between polls: finite, at least 1 s, at most 60 s. */
export function clampInterval(sec: unknown): number {
  if (typeof sec !== 'number' || !Number.isFinite(sec) || sec <= 0) return DEVICE_LIMITS.defaultIntervalSec
  return Math.min(DEVICE_LIMITS.maxIntervalSec, Math.max(DEVICE_LIMITS.minIntervalSec, sec))
}

function clampExpiresIn(sec: number): number {
  return Number.isFinite(sec) && sec > 0 ? Math.min(DEVICE_LIMITS.maxExpiresInSec, sec) : 0
}

/** RFC 8628 §3.2: the user is sent to a web page; anything but an http(s) address is refused, never shown. */
function webPage(value: string | undefined, what: string, settings: AccountSettings, host: string): string | undefined {
  if (value === undefined) return undefined
  let scheme: string
  try {
    const u = new URL(value)
    if (u.protocol === 'https:' || u.protocol === 'http:') return value
    scheme = u.protocol
  } catch {
    scheme = 'none'
  }
  throw new ProtocolError(
    ERR.OAUTH_PROTOCOL,
    `${host} sent a ${what} for "${settings.email}" that is not a web address (scheme ${stripControls(scheme).slice(0, 20)}); mailkey does not show it`,
    {
      account: settings.email,
      hint: 'Check the device authorization endpoint; the browser sign-in may work with this server.',
    },
  )
}

/** RFC 8628 §3.1-3.2 */
export async function startDeviceAuthorization(
  settings: AccountSettings,
  ctx: OAuthContext & { now?: () => number; scope?: readonly string[] },
): Promise<DeviceAuthorization> {
  const endpoint = settings.endpoints.deviceAuthorization
  if (!endpoint) {
    throw new ProtocolError(
      ERR.PROVIDER_FLOW_UNSUPPORTED,
      `the provider of "${settings.email}" has no device authorization endpoint`,
      {
        account: settings.email,
      },
    )
  }
  const kit = requestKit(settings, ctx)
  const host = safeHost(endpoint)
  try {
    const as = authorizationServer(settings)
    const client = oauthClient(settings)
    const params = new URLSearchParams({ scope: (ctx.scope ?? settings.scopes).join(' ') })
    const res = await oauth.processDeviceAuthorizationResponse(
      as,
      client,
      await oauth.deviceAuthorizationRequest(as, client, clientAuth(settings), params, kit.options),
    )
    const now = (ctx.now ?? Date.now)()
    const expiresIn = clampExpiresIn(res.expires_in)
    const d: DeviceAuthorization = {
      deviceCode: new Secret(res.device_code),
      userCode: res.user_code,
      verificationUri: webPage(res.verification_uri, 'verification_uri', settings, host) as string,
      expiresIn,
      expiresAt: now + expiresIn * 1000,
      interval: clampInterval(res.interval),
    }
    const complete = webPage(res.verification_uri_complete, 'verification_uri_complete', settings, host)
    if (complete) d.verificationUriComplete = complete
    if (typeof res.message === 'string') d.message = res.message
    return d
  } catch (e) {
    throw classify(e, {
      account: settings.email,
      host,
      phase: 'device',
      clientId: settings.clientId,
      retryAfterSec: kit.retryAfterSec(),
    })
  } finally {
    kit.dispose()
  }
}

export interface PollOptions extends OAuthContext {
  now?: () => number
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
  /** called before each wait with the seconds left until the code expires */
  onTick?: (secondsLeft: number) => void
}

/** RFC 8628 §3.4-3.5: poll until the user approves, declines, or the code expires. */
export async function pollDeviceAuthorization(
  settings: AccountSettings,
  d: DeviceAuthorization,
  opts: PollOptions,
): Promise<TokenSet> {
  const now = opts.now ?? Date.now
  const wait = opts.sleep ?? sleep
  let interval = clampInterval(d.interval)
  let transientStreak = 0
  for (;;) {
    const left = Math.max(0, Math.round((d.expiresAt - now()) / 1000))
    opts.onTick?.(left)
    if (now() >= d.expiresAt) {
      throw new ReauthRequiredError(
        ERR.SIGNIN_EXPIRED,
        `the sign-in code for "${settings.email}" expired before it was used`,
        {
          account: settings.email,
        },
      )
    }
    await wait(interval * 1000, opts.signal)
    // stopped while waiting for the person to approve, not while talking to the server
    if (opts.signal?.aborted)
      throw new InterruptedError(`interrupted while waiting for the sign-in of "${settings.email}" to be approved`, {
        account: settings.email,
      })
    try {
      return await exchange(settings, opts, 'device', undefined, async (as, client, kit) =>
        oauth.processDeviceCodeResponse(
          as,
          client,
          await oauth.deviceCodeGrantRequest(as, client, clientAuth(settings), d.deviceCode.reveal(), kit.options),
        ),
      )
    } catch (e) {
      const err = e as { oauthError?: string }
      if (err.oauthError === 'authorization_pending') {
        transientStreak = 0
        continue
      }
      // RFC 8628 §3.5: slow_down -> "the interval MUST be increased by 5 seconds for this and
      // all subsequent requests".
      // The bounds of clampInterval hold for the increased interval too.
      if (err.oauthError === 'slow_down') {
        interval = clampInterval(interval + 5)
        continue
      }
      // A network blip must not throw away a sign-in the user is in the middle of: back off
      // (RFC 8628 §3.5 suggests exponential backoff on timeouts) until the code expires.
      if (e instanceof TransientError && transientStreak < 20) {
        transientStreak++
        interval = clampInterval(interval * 2)
        continue
      }
      throw e
    }
  }
}

/** RFC 6749 §4.1.3 with the RFC 7636 verifier; `nonce` is the one sent in the authorization request, if any. */
export function exchangeAuthorizationCode(
  settings: AccountSettings,
  callback: URLSearchParams,
  redirectUri: string,
  codeVerifier: string,
  ctx: OAuthContext & { nonce?: string; scope?: readonly string[] },
): Promise<TokenSet> {
  return exchange(
    settings,
    ctx,
    'signin',
    undefined,
    async (as, client, kit) =>
      oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(
          as,
          client,
          clientAuth(settings),
          callback,
          redirectUri,
          codeVerifier,
          ctx.scope ? { ...kit.options, additionalParameters: { scope: ctx.scope.join(' ') } } : kit.options,
        ),
        // http.ts removes id_tokens before oauth4webapi sees them (ADR 0004); the nonce is checked below.
        { expectedNonce: oauth.expectNoNonce, requireIdToken: false },
      ),
    (kit, host) => {
      // OIDC Core §3.1.3.7 step 11: "If a nonce value was sent in the Authentication Request, a nonce
      // Claim MUST be present and its value checked". An id_token without this sign-in's nonce was
      // minted for another authorization request: whoever completed it is not the one who asked.
      if (ctx.nonce === undefined || !kit.hadIdToken()) return
      if (kit.idTokenNonce() !== ctx.nonce) {
        throw new ProtocolError(
          ERR.STATE_MISMATCH,
          `the id_token ${host} returned for "${settings.email}" does not carry the nonce of this sign-in; it belongs to another sign-in attempt, so nothing was stored`,
          {
            account: settings.email,
          },
        )
      }
    },
  )
}

/** RFC 7009: best effort; the caller decides whether a failure matters. */
export async function revokeToken(settings: AccountSettings, token: Secret, ctx: OAuthContext): Promise<void> {
  if (!settings.endpoints.revocation) return
  const kit = requestKit(settings, ctx)
  const host = safeHost(settings.endpoints.revocation)
  try {
    const as = authorizationServer(settings)
    const client = oauthClient(settings)
    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, client, clientAuth(settings), token.reveal(), kit.options),
    )
  } catch (e) {
    throw classify(e, {
      account: settings.email,
      host,
      phase: 'revoke',
      clientId: settings.clientId,
      retryAfterSec: kit.retryAfterSec(),
    })
  } finally {
    kit.dispose()
  }
}
