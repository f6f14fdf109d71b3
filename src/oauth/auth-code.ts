/**
 * Authorization code + PKCE (RFC 6749 §4.1, RFC 7636 S256) for native apps (RFC 8252): a one-shot
 * loopback listener with a random port (RFC 8252 §7.3) on 127.0.0.1, on ::1, or on both when the
 * registered redirect says "localhost", a random `state` checked on return (RFC 6749 §10.12), and
 * the issuer check of RFC 9207 when the server sends `iss`.
 *
 * "Paste" mode serves people on SSH: the listener still runs (a browser on the same machine
 * completes on its own), and the final redirected URL can also be pasted back.
 *
 * Owns: the loopback HTTP listener and the authorization URL. Must not: touch the store.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import * as oauth from 'oauth4webapi'
import { ConfigError, ERR, InterruptedError, ProtocolError, SignInTimeoutError, UsageError } from '../errors.js'
import { cleanServerText, firstLineOf } from '../core/server-text.js'
import type { AccountSettings } from '../domain/account.js'
import { classify } from './classify.js'
import { authorizationServer, oauthClient, safeHost, type OAuthContext } from './http.js'
import { exchangeAuthorizationCode, type TokenSet } from './grants.js'

export interface AuthCodeOptions extends OAuthContext {
  /**
   * loopback host and path registered for the client (default 127.0.0.1 and "/"); `fixed`: a
   * registered redirect no listener can receive, for the paste flow (providers/types.ts Redirect)
   */
  redirect?: { host: string; path: string; fixed?: string }
  /** fixed port (default: a random free port) */
  port?: number
  /** how long to wait for the user (default 5 min) */
  timeoutMs?: number
  /** called with the URL the user must open; return true when a browser was launched */
  onAuthorizationUrl: (url: string, redirectUri: string) => Promise<void> | void
  /** paste mode: resolves with whatever the user pasted (the final URL or just its query) */
  readPastedRedirect?: (signal: AbortSignal) => Promise<string>
  /** extra authorization request parameters (login_hint, prompt, access_type...) */
  extraParams?: Record<string, string>
  /**
   * scopes of other resources to ask consent for now (Microsoft Graph) without a token for them:
   * they go into the authorization request only, and the code is redeemed for the account's own
   * scopes, because a Microsoft token has one resource (MSAL's extraScopesToConsent,
   * learn.microsoft.com/entra/identity-platform/scenario-desktop-production)
   */
  consentScopes?: string[]
}

const PAGE = (title: string, body: string): string =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>` +
  `<meta name="viewport" content="width=device-width"><style>body{font:16px system-ui,sans-serif;max-width:34em;margin:4em auto;padding:0 1em;color:#222}h1{font-size:1.4em}</style>` +
  `</head><body><h1>${title}</h1><p>${body}</p></body></html>`

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

interface Listener {
  redirectUri: string
  /** the loopback addresses listened on ("127.0.0.1", "::1") */
  addresses: string[]
  result: Promise<URLSearchParams>
  close(): Promise<void>
}

/**
 * The loopback addresses to listen on for a registered redirect host. A browser may resolve
 * "localhost" to 127.0.0.1 or to ::1 (RFC 8252 §8.3; Thunderbird registers http://localhost for
 * Microsoft), so both; a literal address is listened on alone. Never a wildcard address: nothing
 * on the LAN can answer.
 */
export function listenAddresses(host: string): string[] {
  if (host === '[::1]') return ['::1']
  if (host === 'localhost') return ['127.0.0.1', '::1']
  return ['127.0.0.1']
}

/** errno codes of a machine without an IPv6 loopback: listening on ::1 is then skipped */
const NO_IPV6 = new Set(['EADDRNOTAVAIL', 'EAFNOSUPPORT'])

function listen(server: Server, port: number, address: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, address, () => {
      server.off('error', reject)
      const a = server.address()
      resolve(typeof a === 'object' && a ? a.port : port)
    })
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((r) => {
    server.closeAllConnections()
    server.close(() => r())
  })
}

/**
 * One server per address, all on one port: the first picks it (or `port`), the others follow.
 * A random port taken on ::1 by someone else is given up and another one picked (a few times).
 */
async function listenAll(
  addresses: string[],
  port: number,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ servers: Server[]; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const servers: Server[] = []
    let actual = port
    try {
      for (const address of addresses) {
        const server = createServer(handler)
        server.keepAliveTimeout = 1000
        try {
          actual = await listen(server, actual, address)
          servers.push(server)
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code ?? ''
          if (servers.length > 0 && address === '::1' && NO_IPV6.has(code)) continue
          throw Object.assign(e as Error, { address, port: actual })
        }
      }
      return { servers, port: actual }
    } catch (e) {
      await Promise.all(servers.map(closeServer))
      const err = e as NodeJS.ErrnoException & { address: string; port: number }
      if (port === 0 && err.code === 'EADDRINUSE' && attempt < 5) continue
      throw new UsageError(
        `cannot listen on ${err.address.includes(':') ? `[${err.address}]` : err.address}:${err.port} for the sign-in redirect (${err.code ?? err.message})`,
        { cause: e },
      )
    }
  }
}

async function startListener(host: string, path: string, port: number, state: string): Promise<Listener> {
  let resolveResult!: (p: URLSearchParams) => void
  const result = new Promise<URLSearchParams>((r) => (resolveResult = r))
  let done = false
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://loopback')
    const samePath = url.pathname === path || (path === '/' && url.pathname === '')
    if (req.method !== 'GET' || !samePath || done) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
      return
    }
    const p = url.searchParams
    // Only a response carrying our state ends the wait: a stray request (a prefetch, a scanner,
    // another tab) must not cancel the sign-in.
    if (p.get('state') !== state) {
      res
        .writeHead(400, { 'content-type': 'text/html; charset=utf-8' })
        .end(PAGE('mailkey: unexpected request', 'This page does not belong to the sign-in in progress.'))
      return
    }
    done = true
    const err = p.get('error')
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', connection: 'close' })
    res.end(
      err
        ? PAGE(
            'Sign-in was not completed',
            `The server said: ${escapeHtml(err)}${p.get('error_description') ? ' – ' + escapeHtml(p.get('error_description') ?? '') : ''}. You can close this tab and look at the terminal.`,
          )
        : PAGE('mailkey is signed in', 'You can close this tab and return to the terminal.'),
    )
    resolveResult(p)
  }
  const { servers, port: actualPort } = await listenAll(listenAddresses(host), port, handler)
  return {
    redirectUri: `http://${host}:${actualPort}${path}`,
    addresses: servers.map((s) => (s.address() as { address: string }).address),
    result,
    close: async () => {
      await Promise.all(servers.map(closeServer))
    },
  }
}

/**
 * A registered redirect no listener can receive (`https://127.0.0.1`): only a pasted address
 * ends the wait.
 */
function pasteOnly(uri: string): Listener {
  return { redirectUri: uri, addresses: [], result: new Promise<URLSearchParams>(() => {}), close: async () => {} }
}

/** Parse what a user pasted: a full URL, a "?code=..." query, or "code=...&state=...". */
export function parsePastedRedirect(text: string): URLSearchParams {
  const t = text.trim()
  if (t.length === 0) throw new UsageError('nothing was pasted')
  let query = t
  try {
    const u = new URL(t)
    query = u.search || u.hash.replace(/^#/, '?')
  } catch {
    /* not a URL: maybe a query string */
  }
  const p = new URLSearchParams(query.replace(/^\?/, ''))
  if (!p.has('code') && !p.has('error')) {
    throw new UsageError('the pasted text has no "code" in it; paste the whole address from the browser\'s address bar')
  }
  return p
}

/**
 * The redirect's error parameters are server text (or anyone's: the listener is on loopback):
 * cleaned where they enter, like every OAuth answer (core/server-text.ts).
 */
function cleanCallback(p: URLSearchParams, secrets: string[]): URLSearchParams {
  const out = new URLSearchParams(p)
  for (const k of ['error', 'error_description', 'error_uri']) {
    const v = out.get(k)
    if (v !== null) out.set(k, cleanServerText(k === 'error_description' ? firstLineOf(v) : v, secrets))
  }
  return out
}

/** OIDC Core §3.1.2.1: nonce goes with every OpenID Connect authentication request. */
function wantsOpenId(settings: AccountSettings): boolean {
  return settings.scopes.includes('openid')
}

/** Runs the whole authorization code + PKCE sign-in and returns the tokens. */
export async function authorizationCodeSignIn(settings: AccountSettings, opts: AuthCodeOptions): Promise<TokenSet> {
  if (!settings.endpoints.authorization) {
    throw new ProtocolError(
      ERR.PROVIDER_FLOW_UNSUPPORTED,
      `the provider of "${settings.email}" has no authorization endpoint`,
      {
        account: settings.email,
      },
    )
  }
  const redirect = opts.redirect ?? { host: '127.0.0.1', path: '/' }
  const state = oauth.generateRandomState()
  const verifier = oauth.generateRandomCodeVerifier()
  const challenge = await oauth.calculatePKCECodeChallenge(verifier)
  // OIDC Core §3.1.2.1 and §15.5.2: a nonce binds the id_token to this request, so an id_token
  // from a sign-in someone else started (login CSRF) is refused in exchangeAuthorizationCode.
  const nonce = wantsOpenId(settings) ? oauth.generateRandomNonce() : undefined
  if (redirect.fixed && !opts.readPastedRedirect) {
    throw new ConfigError(
      ERR.PROVIDER_FLOW_UNSUPPORTED,
      `the redirect ${redirect.fixed} of "${settings.email}" cannot reach mailkey: only the paste flow can use it`,
      { account: settings.email },
    )
  }
  const listener = redirect.fixed
    ? pasteOnly(redirect.fixed)
    : await startListener(redirect.host, redirect.path, opts.port ?? 0, state)
  const ac = new AbortController()
  const onOuterAbort = (): void => ac.abort(opts.signal?.reason)
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true })
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000
  let stopWaiting = (): void => {}
  try {
    const url = authorizationUrl(
      settings,
      { redirectUri: listener.redirectUri, state, challenge, nonce, consent: opts.consentScopes ?? [] },
      opts.extraParams,
    )
    await opts.onAuthorizationUrl(url.href, listener.redirectUri)

    const { result: redirected, cancel } = waitForRedirect(settings, listener, opts, ac.signal, timeoutMs)
    stopWaiting = cancel
    const returned = cleanCallback(await redirected, [
      verifier,
      ...(settings.clientSecret ? [settings.clientSecret] : []),
    ])
    const callback = validateCallback(settings, returned, state)
    return await exchangeAuthorizationCode(settings, callback, listener.redirectUri, verifier, {
      ...opts,
      ...(nonce ? { nonce } : {}),
      // with other resources consented too, the token request names the one it is for
      ...(opts.consentScopes?.length ? { scope: settings.scopes } : {}),
    })
  } finally {
    stopWaiting()
    ac.abort()
    opts.signal?.removeEventListener('abort', onOuterAbort)
    await listener.close()
  }
}

/** The authorization request (RFC 6749 §4.1.1) with PKCE (RFC 7636 §4.3) and the account as login_hint. */
function authorizationUrl(
  settings: AccountSettings,
  r: { redirectUri: string; state: string; challenge: string; nonce: string | undefined; consent: string[] },
  extraParams: Record<string, string> | undefined,
): URL {
  const url = new URL(settings.endpoints.authorization as string)
  const params: Record<string, string> = {
    client_id: settings.clientId,
    response_type: 'code',
    redirect_uri: r.redirectUri,
    scope: [...settings.scopes, ...r.consent.filter((c) => !settings.scopes.includes(c))].join(' '),
    state: r.state,
    code_challenge: r.challenge,
    code_challenge_method: 'S256',
    login_hint: settings.signInAs ?? settings.email,
    ...(r.nonce ? { nonce: r.nonce } : {}),
    ...(settings.authorizationParams ?? {}),
    ...(extraParams ?? {}),
  }
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v)
  return url
}

/**
 * Whichever comes first: the redirect at the listener, a pasted address (asked again until one
 * parses), the timeout, or the caller's abort. `cancel` stops the timer.
 */
function waitForRedirect(
  settings: AccountSettings,
  listener: Listener,
  opts: AuthCodeOptions,
  signal: AbortSignal,
  timeoutMs: number,
): { result: Promise<URLSearchParams>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined
  const waits: Promise<URLSearchParams>[] = [listener.result]
  if (opts.readPastedRedirect) {
    waits.push(
      (async () => {
        for (;;) {
          const text = await opts.readPastedRedirect!(signal)
          if (signal.aborted) return new Promise<URLSearchParams>(() => {})
          try {
            return parsePastedRedirect(text)
          } catch {
            continue // let the caller prompt again
          }
        }
      })(),
    )
  }
  waits.push(
    new Promise<URLSearchParams>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new SignInTimeoutError(
              `no sign-in for "${settings.email}" arrived within ${timeoutText(timeoutMs)}`,
              listener.addresses.length > 0 ? listener.redirectUri : undefined,
              { account: settings.email },
            ),
          ),
        timeoutMs,
      )
    }),
  )
  waits.push(
    new Promise<URLSearchParams>((_, reject) => {
      signal.addEventListener(
        'abort',
        () => reject(new InterruptedError('sign-in interrupted', { account: settings.email })),
        {
          once: true,
        },
      )
    }),
  )
  return { result: Promise.race(waits), cancel: () => clearTimeout(timer) }
}

/** "300 s"; a test's short timeout reads "0.05 s", not "0 s" */
function timeoutText(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms / 1000} s`
}

/** Checks state (RFC 6749 §10.12), iss (RFC 9207 §2.4) and turns ?error= into an error. */
function validateCallback(settings: AccountSettings, returned: URLSearchParams, state: string): URLSearchParams {
  try {
    return oauth.validateAuthResponse(authorizationServer(settings), oauthClient(settings), returned, state)
  } catch (e) {
    if (e instanceof oauth.AuthorizationResponseError)
      throw classify(e, {
        account: settings.email,
        host: safeHost(settings.endpoints.authorization as string),
        phase: 'signin',
        clientId: settings.clientId,
      })
    // oauth4webapi's wording names its own parameters; say what it means instead.
    const why = /"iss"/.test((e as Error).message)
      ? 'it names another issuer'
      : /"state"/.test((e as Error).message)
        ? 'its state does not match'
        : 'it is not a valid sign-in response'
    throw new ProtocolError(
      ERR.STATE_MISMATCH,
      `the sign-in response for "${settings.email}" does not match the request (${why}); it may be from another sign-in attempt`,
      { account: settings.email, cause: e },
    )
  }
}
