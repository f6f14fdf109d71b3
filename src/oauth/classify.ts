/**
 * The single place that turns what the OAuth layer can throw (oauth4webapi errors, fetch
 * failures, aborts, timeouts) into mailkey's error classes (pizauth's RefreshKind idea):
 * transient (keep the grant, retry later), re-auth (only a new sign-in helps), config, protocol.
 *
 * @see [RFC 6749 §5.2 - Error Response](https://www.rfc-editor.org/rfc/rfc6749.html#section-5.2)
 * @see [RFC 8628 §3.5 - Device Access Token Response](https://www.rfc-editor.org/rfc/rfc8628.html#section-3.5)
 *
 * Owns: classification and message text. Must not: retry, sleep, or touch the store.
 */
import * as oauth from 'oauth4webapi'
import {
  ConfigError,
  ERR,
  InterruptedError,
  MailkeyError,
  ProtocolError,
  ReauthRequiredError,
  TransientError,
  type ErrorCode,
  type MailkeyErrorOptions,
} from '../errors.js'
import { scrub } from '../core/redact.js'
import { aadstsCodesIn, describeAadsts } from './aadsts.js'
import { parseRetryAfter } from './http.js'
import { isNetworkFailure, networkFailure } from './net-failure.js'

export type Phase = 'refresh' | 'signin' | 'device' | 'discovery' | 'revoke'

export interface ClassifyContext {
  account: string
  /** host of the endpoint, for messages */
  host: string
  phase: Phase
  /** the client id in use, for client errors */
  clientId?: string
  /** the Retry-After of the JSON error answer being classified (RequestKit.retryAfterSec), seconds */
  retryAfterSec?: number
}

/** What the OAuth `error` values of RFC 6749 §5.2, RFC 8628 §3.5, OIDC Core §3.1.2.6 and
 *  Microsoft's device-flow extensions mean to a user. */
export const OAUTH_ERROR_MEANINGS: Readonly<Record<string, string>> = {
  invalid_request: 'the server refused the request as malformed',
  invalid_client: 'the server does not accept this client id (unknown, disabled, or wrong client secret)',
  invalid_grant: 'the refresh token or code is no longer valid (expired, revoked, or already used)',
  unauthorized_client: 'this client id may not use this kind of sign-in',
  unsupported_grant_type: 'the server does not support this kind of sign-in',
  invalid_scope: 'the server refused the requested scopes',
  access_denied: 'the sign-in was declined',
  unsupported_response_type: 'the server does not support this kind of sign-in',
  server_error: 'the server had an internal error',
  temporarily_unavailable: 'the server is temporarily unavailable',
  authorization_pending: 'the sign-in has not been completed yet',
  slow_down: 'the server asked mailkey to poll more slowly',
  expired_token: 'the sign-in code expired before it was used',
  authorization_declined: 'the sign-in was declined',
  bad_verification_code: 'the server does not recognise this sign-in code',
  interaction_required: 'the server needs you to sign in interactively',
  login_required: 'the server needs you to sign in again',
  consent_required: 'the server needs you to grant consent again',
  account_selection_required: 'the server needs you to pick an account',
  invalid_dpop_proof: 'the server refused the proof of possession',
  invalid_target: 'the server refused the requested resource',
}

const REAUTH_ERRORS = new Set(['invalid_grant', 'interaction_required', 'login_required', 'account_selection_required'])
const DECLINED = new Set(['access_denied', 'authorization_declined'])
const EXPIRED = new Set(['expired_token', 'bad_verification_code'])
const TRANSIENT_ERRORS = new Set(['server_error', 'temporarily_unavailable', 'slow_down'])
const CONFIG_ERRORS = new Set([
  'invalid_request',
  'invalid_scope',
  'unsupported_grant_type',
  'unsupported_response_type',
  'invalid_target',
])
const CLIENT_ERRORS = new Set(['invalid_client', 'unauthorized_client'])

export function classify(e: unknown, ctx: ClassifyContext): MailkeyError {
  if (e instanceof MailkeyError) return e
  if (e instanceof oauth.ResponseBodyError) {
    const body = e.cause as Record<string, unknown>
    const description = typeof body.error_description === 'string' ? body.error_description : e.error_description
    return fromOAuthError(e.error, description, body.error_codes, e.status, ctx, {
      cause: e,
      retryAfterSec: ctx.retryAfterSec,
    })
  }
  if (e instanceof oauth.AuthorizationResponseError) {
    const desc = e.error_description ?? undefined
    return fromOAuthError(e.error, desc, undefined, undefined, ctx, { cause: e })
  }
  if (e instanceof oauth.WWWAuthenticateChallengeError) {
    // RFC 6749 §5.2: a 401 with WWW-Authenticate from the token endpoint is invalid_client, i.e.
    // this client id / secret is refused; another candidate (or --client-secret) may work.
    return new ReauthRequiredError(
      ERR.CLIENT_REJECTED,
      `${ctx.host} refused the client credentials for "${ctx.account}" (HTTP ${e.status})${ctx.clientId ? ` [client id ${ctx.clientId}]` : ''}`,
      { account: ctx.account, cause: e, status: e.status },
    )
  }
  if (isAbort(e)) {
    const name = (e as { name?: string }).name
    if (name === 'TimeoutError') {
      return new TransientError(ERR.OAUTH_TRANSIENT, `${ctx.host} did not answer in time for "${ctx.account}"`, {
        account: ctx.account,
        cause: e,
      })
    }
    return new InterruptedError(`interrupted while talking to ${ctx.host} for "${ctx.account}"`, {
      account: ctx.account,
      cause: e,
    })
  }
  if (e instanceof oauth.OperationProcessingError) {
    // A non-JSON 408/429/5xx (a proxy's or load balancer's HTML page) is an outage, not a verdict.
    // oauth4webapi reads JSON error bodies only from 4xx responses, so a 5xx with a JSON error lands
    // here too.
    const res = e.cause
    if (res instanceof Response && (res.status === 408 || res.status === 429 || res.status >= 500)) {
      const retryAfterSec = parseRetryAfter(res.headers.get('retry-after'))
      return new TransientError(ERR.OAUTH_TRANSIENT, `${ctx.host} answered HTTP ${res.status} for "${ctx.account}"`, {
        account: ctx.account,
        cause: e,
        status: res.status,
        ...(retryAfterSec !== undefined ? { retryAfterSec } : {}),
      })
    }
    return unusableAnswer(e, res instanceof Response ? res : undefined, ctx)
  }
  // fetch() reports network failures as a bare TypeError; oauth4webapi's and Node's argument
  // errors are TypeErrors too, but carry an ERR_* code and are not worth retrying.
  if (isNetworkFailure(e)) {
    const settingUp = ctx.phase === 'signin' || ctx.phase === 'device' || ctx.phase === 'discovery'
    return networkFailure(e, { account: ctx.account, host: ctx.host, settingUp })
  }
  return new ProtocolError(
    ERR.OAUTH_PROTOCOL,
    `unexpected failure talking to ${ctx.host} for "${ctx.account}": ${redactMessage(String((e as Error)?.message ?? e))}`,
    { account: ctx.account, cause: e },
  )
}

const WHAT: Record<Phase, string> = {
  refresh: 'refreshing the token',
  signin: 'the sign-in',
  device: 'the sign-in',
  discovery: 'the metadata request',
  revoke: 'the revocation',
}

/**
 * An answer oauth4webapi could not use, said in the user's terms: oauth4webapi's own messages
 * ('"response" content-type must be application/json') name its parameters, not what happened.
 */
function unusableAnswer(
  e: oauth.OperationProcessingError,
  res: Response | undefined,
  ctx: ClassifyContext,
): MailkeyError {
  const opts = { account: ctx.account, cause: e, ...(res ? { status: res.status } : {}) }
  if (res && res.status >= 400) {
    const what = `${WHAT[ctx.phase]} for "${ctx.account}"`
    // RFC 6749 §5.2 / RFC 7009 §2.2.1: a refusal comes with a JSON `error`; this one came without.
    const auth = res.status === 401 || res.status === 403 ? ', it may need client authentication' : ''
    return new ProtocolError(
      ERR.OAUTH_PROTOCOL,
      `${ctx.host} refused ${what}: HTTP ${res.status}${auth}, with no OAuth error in the answer`,
      opts,
    )
  }
  const status = res ? `HTTP ${res.status}` : 'an answer'
  let detail: string
  switch (e.code) {
    case oauth.RESPONSE_IS_NOT_JSON:
      detail = `${status} that is not JSON (an HTML page or a proxy's answer?)`
      break
    case oauth.PARSE_ERROR:
      detail = `${status} with JSON that does not parse`
      break
    case oauth.RESPONSE_IS_NOT_CONFORM:
      detail =
        res && res.status >= 300
          ? `HTTP ${res.status}, a redirect where an OAuth answer belongs`
          : `${status} that is not an OAuth answer`
      break
    case oauth.INVALID_RESPONSE: {
      const field = /"([a-z_]+)" property/.exec(e.message)?.[1]
      detail = field ? `${status} whose "${field}" is missing or malformed` : `${status} that breaks the OAuth rules`
      break
    }
    case oauth.JSON_ATTRIBUTE_COMPARISON:
      detail = 'metadata that names another issuer than the one asked for (RFC 8414 §3.3)'
      break
    default:
      detail = `${status} mailkey cannot use`
  }
  return new ProtocolError(
    ERR.OAUTH_PROTOCOL,
    `${ctx.host} sent a response mailkey cannot use for "${ctx.account}": ${detail}`,
    opts,
  )
}

/** Map one OAuth `error` (+ description, + Microsoft's error_codes) to a mailkey error. */
export function fromOAuthError(
  error: string,
  description: string | undefined,
  errorCodes: unknown,
  status: number | undefined,
  ctx: ClassifyContext,
  extra: MailkeyErrorOptions = {},
): MailkeyError {
  const codes = aadstsCodesIn(description, errorCodes)
  const aad = codes.map((c) => describeAadsts(c)).find((d) => d !== undefined)
  const detail = aad
    ? `AADSTS${aad.code}: ${aad.meaning}`
    : (firstLine(description) ?? OAUTH_ERROR_MEANINGS[error] ?? 'no explanation given')
  const what =
    ctx.phase === 'refresh'
      ? `refreshing the token for "${ctx.account}"`
      : ctx.phase === 'revoke'
        ? `the revocation for "${ctx.account}"`
        : `signing in "${ctx.account}"`
  const message = `${ctx.host} refused ${what}: ${error} (${detail})`
  const opts: MailkeyErrorOptions = {
    ...extra,
    account: ctx.account,
    oauthError: error,
    providerCodes: codes.map((c) => `AADSTS${c}`),
    ...(status !== undefined ? { status } : {}),
  }
  if (aad?.advice) opts.hint = aad.advice

  // Microsoft codes refine the standard error where they say more.
  if (aad) {
    switch (aad.kind) {
      case 'transient':
        return new TransientError(ERR.OAUTH_TRANSIENT, message, opts)
      case 'client':
        return new ReauthRequiredError(ERR.CLIENT_REJECTED, message, opts)
      case 'consent':
        return new ReauthRequiredError(ERR.CONSENT_REQUIRED, message, opts)
      case 'blocked':
        return new ReauthRequiredError(ERR.FLOW_BLOCKED, message, opts)
      case 'config':
        return new ConfigError(ERR.OAUTH_CONFIG, message, opts)
      case 'reauth':
        // the standard error can be more precise (expired_token, authorization_declined...)
        if (DECLINED.has(error)) return new ReauthRequiredError(ERR.SIGNIN_DECLINED, message, opts)
        if (EXPIRED.has(error)) return new ReauthRequiredError(ERR.SIGNIN_EXPIRED, message, opts)
        return new ReauthRequiredError(ERR.REAUTH_REQUIRED, message, opts)
      case 'pending':
        break
    }
  }
  if (TRANSIENT_ERRORS.has(error)) return new TransientError(ERR.OAUTH_TRANSIENT, message, opts)
  if (DECLINED.has(error)) return new ReauthRequiredError(ERR.SIGNIN_DECLINED, message, opts)
  if (EXPIRED.has(error)) return new ReauthRequiredError(ERR.SIGNIN_EXPIRED, message, opts)
  if (error === 'consent_required') return new ReauthRequiredError(ERR.CONSENT_REQUIRED, message, opts)
  if (REAUTH_ERRORS.has(error)) return new ReauthRequiredError(ERR.REAUTH_REQUIRED, message, opts)
  if (CLIENT_ERRORS.has(error)) {
    const code: ErrorCode = ERR.CLIENT_REJECTED
    return new ReauthRequiredError(code, `${message}${ctx.clientId ? ` [client id ${ctx.clientId}]` : ''}`, opts)
  }
  if (CONFIG_ERRORS.has(error)) return new ConfigError(ERR.OAUTH_CONFIG, message, opts)
  // authorization_pending outside a polling loop, or an error no spec defines
  return new ProtocolError(ERR.OAUTH_PROTOCOL, message, opts)
}

/** True for errors that mean "this client id is dead here; another candidate may work". */
export function isClientRejection(e: MailkeyError): boolean {
  if (e.code === ERR.CLIENT_REJECTED) return true
  // A Microsoft code says more than the standard error. AADSTS7000218 (invalid_client: public
  // client flows are off) is one app registration's setting, so another built-in id may have them
  // on; the rest (700025, a secret sent to a public client; 53003, a tenant's policy) every id meets.
  if (e.providerCodes.includes('AADSTS7000218')) return true
  if (e.providerCodes.length > 0) return false
  return e.oauthError === 'unauthorized_client' || e.oauthError === 'invalid_client'
}

function firstLine(s: string | undefined): string | undefined {
  if (!s) return undefined
  // a server's free text goes into messages and the state file: scrub anything token-shaped
  const line = scrub(s.split(/\r?\n/)[0]?.trim() ?? '')
  if (!line) return undefined
  return line.length > 200 ? line.slice(0, 200) + '…' : line
}

function isAbort(e: unknown): boolean {
  const name = (e as { name?: string } | undefined)?.name
  return name === 'AbortError' || name === 'TimeoutError'
}

function redactMessage(m: string): string {
  // oauth4webapi messages name fields, never values; other errors may not be so careful.
  const s = scrub(m)
  return s.length > 200 ? s.slice(0, 200) + '…' : s
}
