/**
 * The HTTP edge of the OAuth layer: builds oauth4webapi's server/client objects from account
 * settings and wraps fetch with a timeout, loopback-only plain HTTP, transient-status detection,
 * and id_token handling.
 *
 * id_token: Microsoft's multi-tenant endpoints issue id_tokens whose `iss` names the user's tenant,
 * not "common", which oauth4webapi rightly rejects. The token came straight from the token
 * endpoint over TLS (OIDC Core §3.1.3.7 allows skipping the signature check there), so mailkey
 * removes it before oauth4webapi sees the response and keeps only the identity claims.
 *
 * Owns: request options and response pre-processing. Must not: touch the store.
 */
import { parseRetryAfter } from '../core/wait.js'
import * as oauth from 'oauth4webapi'
import { ConfigError, ERR, TransientError } from '../errors.js'
import type { AccountSettings, Identity } from '../domain/account.js'
import { isLoopbackHost } from '../core/net.js'
import { cleanServerText, firstLineOf } from '../core/server-text.js'
import type { Secret } from '../core/secret.js'

export { isLoopbackHost }

export const DEFAULT_HTTP_TIMEOUT_MS = 30_000
/** Responses larger than this are refused (a token response is a few KiB). */
export const MAX_RESPONSE_BYTES = 1024 * 1024

export interface OAuthContext {
  /** the account, for messages */
  account: string
  signal?: AbortSignal
  timeoutMs?: number
  /** replaces globalThis.fetch (library users with custom agents) */
  fetch?: typeof fetch
  /**
   * secrets a server might echo besides those in the request itself (the account's access
   * token): removed from every server text (core/server-text.ts)
   */
  secrets?: Secret[]
}

/** https everywhere; http only for loopback test servers (RFC 8252 §8.3 spirit). */
export function checkEndpoint(url: string, what: string, account?: string): URL {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new ConfigError(ERR.CONFIG_INVALID, `the ${what} "${url}" is not a valid URL`, { account })
  }
  if (u.protocol === 'https:') return u
  if (u.protocol === 'http:' && isLoopbackHost(u.hostname)) return u
  throw new ConfigError(
    ERR.INSECURE_ENDPOINT,
    `the ${what} "${url}" must use https (plain http is accepted only for 127.0.0.1, ::1 and localhost)`,
    {
      account,
    },
  )
}

export function usesPlainHttp(settings: Pick<AccountSettings, 'endpoints'>): boolean {
  return Object.values(settings.endpoints).some((u) => typeof u === 'string' && u.startsWith('http:'))
}

export function authorizationServer(settings: AccountSettings): oauth.AuthorizationServer {
  const e = settings.endpoints
  const token = checkEndpoint(e.token, 'token endpoint', settings.email)
  // usesPlainHttp() turns on allowInsecureRequests for every endpoint, so each must pass the check.
  if (e.authorization) checkEndpoint(e.authorization, 'authorization endpoint', settings.email)
  if (e.deviceAuthorization) checkEndpoint(e.deviceAuthorization, 'device authorization endpoint', settings.email)
  if (e.revocation) checkEndpoint(e.revocation, 'revocation endpoint', settings.email)
  return {
    issuer: e.issuer ?? token.origin,
    token_endpoint: e.token,
    ...(e.authorization ? { authorization_endpoint: e.authorization } : {}),
    ...(e.deviceAuthorization ? { device_authorization_endpoint: e.deviceAuthorization } : {}),
    ...(e.revocation ? { revocation_endpoint: e.revocation } : {}),
  }
}

export function oauthClient(settings: AccountSettings): oauth.Client {
  return { client_id: settings.clientId }
}

export function clientAuth(settings: AccountSettings): oauth.ClientAuth {
  if (!settings.clientSecret) return oauth.None()
  return settings.clientAuth === 'basic'
    ? oauth.ClientSecretBasic(settings.clientSecret)
    : oauth.ClientSecretPost(settings.clientSecret)
}

export interface RequestKit {
  options: oauth.TokenEndpointRequestOptions & oauth.DeviceAuthorizationRequestOptions
  /** identity claims of an id_token removed from the last response */
  identity(): Identity | undefined
  /** the `nonce` claim of that id_token (OIDC Core §3.1.3.7 step 11), if it had one */
  idTokenNonce(): string | undefined
  /** whether the last response carried an id_token */
  hadIdToken(): boolean
  /**
   * the Retry-After of the last JSON error answer (RFC 9110 §10.2.3), seconds: oauth4webapi
   * throws its own error for it, so the caller hands this to classify() with the error
   */
  retryAfterSec(): number | undefined
  /** aborts pending work started with this kit */
  dispose(): void
}

/** Per-request options for oauth4webapi: timeout, loopback http, response pre-processing. */
export function requestKit(settings: AccountSettings, ctx: OAuthContext): RequestKit {
  let identity: Identity | undefined
  let idToken: { nonce?: string } | undefined
  let retryAfterSec: number | undefined
  const baseFetch = ctx.fetch ?? globalThis.fetch
  const timeoutMs = ctx.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS
  const timers: AbortController[] = []
  const wrapped = async (url: string, init: RequestInit): Promise<Response> => {
    const ac = new AbortController()
    timers.push(ac)
    const timer = setTimeout(
      () => ac.abort(new DOMException(`no answer within ${Math.round(timeoutMs / 1000)} s`, 'TimeoutError')),
      timeoutMs,
    )
    const onAbort = (): void => ac.abort(ctx.signal?.reason)
    ctx.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const res = await baseFetch(url, { ...init, signal: ac.signal, redirect: 'manual' })
      const known = [...requestSecrets(init, settings), ...(ctx.secrets ?? []).map((s) => s.reveal())]
      const out = await preprocess(
        url,
        res,
        (i, nonce) => {
          identity = i
          idToken = nonce !== undefined ? { nonce } : {}
        },
        settings.email,
        known,
      )
      retryAfterSec = out.retryAfterSec
      return out.response
    } finally {
      clearTimeout(timer)
      ctx.signal?.removeEventListener('abort', onAbort)
    }
  }
  const plain = usesPlainHttp(settings)
  return {
    options: {
      [oauth.customFetch]: wrapped as never,
      ...(plain ? { [oauth.allowInsecureRequests]: true } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    },
    identity: () => identity,
    idTokenNonce: () => idToken?.nonce,
    hadIdToken: () => idToken !== undefined,
    retryAfterSec: () => retryAfterSec,
    dispose: () => timers.forEach((t) => t.abort()),
  }
}

async function readLimited(res: Response): Promise<string> {
  const len = Number(res.headers.get('content-length') ?? '0')
  if (len > MAX_RESPONSE_BYTES) throw new Error(`response of ${len} bytes is too large`)
  const reader = res.body?.getReader()
  if (!reader) return ''
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > MAX_RESPONSE_BYTES) {
      await reader.cancel().catch(() => {})
      throw new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

export { parseRetryAfter } from '../core/wait.js'

/** Request parameters whose values are secrets (RFC 6749 §2.3.1, §4.1.3, §6; RFC 7636 §4.5; RFC 8628 §3.4; RFC 7009 §2.1). */
const SECRET_PARAMS = [
  'refresh_token',
  'device_code',
  'code',
  'code_verifier',
  'client_secret',
  'client_assertion',
  'token',
  'assertion',
]
/** Response members that are secrets: kept as they are, and removed from every other member. */
const SECRET_MEMBERS = new Set(['access_token', 'refresh_token', 'id_token', 'device_code'])

/** Every secret value this request carries: form parameters, HTTP Basic client credentials, the client secret. */
function requestSecrets(init: RequestInit, settings: AccountSettings): string[] {
  const out: string[] = []
  if (settings.clientSecret) out.push(settings.clientSecret)
  const body = init.body
  const form = body instanceof URLSearchParams ? body : typeof body === 'string' ? new URLSearchParams(body) : undefined
  for (const k of SECRET_PARAMS) for (const v of form?.getAll(k) ?? []) out.push(v)
  const auth = new Headers(init.headers).get('authorization')
  if (auth && /^basic /i.test(auth)) {
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon >= 0) out.push(safeDecode(decoded.slice(colon + 1)))
  }
  return out
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '))
  } catch {
    return s
  }
}

/**
 * Server text enters mailkey here: every string member of a JSON answer but the tokens
 * themselves is cleaned of controls and of every secret value known (the request's, the
 * answer's own tokens, the caller's), so no message, record or hook ever holds them.
 */
function cleanMembers(json: Record<string, unknown>, known: string[]): void {
  const secrets = [...known]
  for (const k of SECRET_MEMBERS) if (typeof json[k] === 'string') secrets.push(json[k] as string)
  for (const [k, v] of Object.entries(json)) {
    if (SECRET_MEMBERS.has(k)) continue
    // RFC 6749 §5.2: error_description is one human-readable line; Microsoft adds trace ids on
    // later lines, which messages never showed.
    if (typeof v === 'string') json[k] = cleanServerText(k === 'error_description' ? firstLineOf(v) : v, secrets)
    else if (Array.isArray(v)) json[k] = v.map((x) => (typeof x === 'string' ? cleanServerText(x, secrets) : x))
  }
}

async function preprocess(
  url: string,
  res: Response,
  setIdToken: (i: Identity | undefined, nonce: string | undefined) => void,
  account: string,
  requestKnown: string[],
): Promise<{ response: Response; retryAfterSec?: number }> {
  let known = requestKnown
  const host = safeHost(url)
  const text = await readLimited(res)
  const headers = new Headers(res.headers)
  headers.delete('content-length')
  headers.delete('content-encoding')
  let json: Record<string, unknown> | undefined
  try {
    const v: unknown = JSON.parse(text)
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) json = v as Record<string, unknown>
  } catch {
    /* not JSON */
  }
  // RFC 6749 §5.2 errors come as JSON; anything else with these statuses is an outage, not a verdict
  // on the grant (RFC 9110 §15.5.9 408, RFC 6585 §4 429, §15.6 5xx).
  const status = res.status
  if ((status === 408 || status === 429 || status >= 500) && (json === undefined || typeof json.error !== 'string')) {
    throw new TransientError(
      ERR.OAUTH_TRANSIENT,
      `${host} answered HTTP ${status}${status === 429 ? ' (too many requests)' : ''}${describeBody(headers, text)} for "${account}"`,
      {
        account,
        status,
        retryAfterSec: parseRetryAfter(res.headers.get('retry-after')),
      },
    )
  }
  if (json !== undefined) {
    if (typeof json.id_token === 'string') {
      const claims = decodeJwtClaims(json.id_token)
      setIdToken(
        claims ? identityFromClaims(claims) : undefined,
        typeof claims?.nonce === 'string' ? claims.nonce : undefined,
      )
      known = [...known, json.id_token]
      delete json.id_token
    }
    cleanMembers(json, known)
    // Google's device endpoint says verification_url (RFC 8628 §3.2 says verification_uri).
    if (typeof json.verification_url === 'string' && json.verification_uri === undefined) {
      json.verification_uri = json.verification_url
    }
    if (typeof json.expires_in === 'string' && /^\d+$/.test(json.expires_in)) json.expires_in = Number(json.expires_in)
    if (typeof json.interval === 'string' && /^\d+$/.test(json.interval)) json.interval = Number(json.interval)
    headers.set('content-type', 'application/json')
    const response = new Response(JSON.stringify(json), { status, statusText: res.statusText, headers })
    const retryAfterSec =
      typeof json.error === 'string' && status >= 400 ? parseRetryAfter(res.headers.get('retry-after')) : undefined
    return retryAfterSec !== undefined ? { response, retryAfterSec } : { response }
  }
  return { response: new Response(text, { status, statusText: res.statusText, headers }) }
}

function describeBody(headers: Headers, text: string): string {
  const type = headers.get('content-type') ?? ''
  if (text.length === 0) return ''
  if (type.includes('html')) return ' with an HTML page'
  return ''
}

export function safeHost(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return 'the server'
  }
}

export function decodeJwtClaims(jwt: string): Record<string, unknown> | undefined {
  const part = jwt.split('.')[1]
  if (!part) return undefined
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

function identityFromClaims(c: Record<string, unknown>): Identity {
  // claims are server text too: no controls in what `add`, `status` and `test` print
  const str = (k: string): string | undefined =>
    typeof c[k] === 'string' ? cleanServerText(c[k] as string) : undefined
  const id: Identity = {}
  const email = str('email') ?? str('preferred_username') ?? str('upn')
  if (email) id.email = email
  // every name the token gives: the identity check accepts the account if it is any of them
  const names = [...new Set(['email', 'preferred_username', 'upn'].map(str).filter((n): n is string => Boolean(n)))]
  if (names.length > 1) id.names = names
  if (str('name')) id.name = str('name')
  if (str('tid')) id.tid = str('tid')
  if (str('sub')) id.sub = str('sub')
  if (str('iss')) id.iss = str('iss')
  return id
}
