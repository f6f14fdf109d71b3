// A real OAuth 2.0 authorization server for tests: oidc-provider on 127.0.0.1:<random port>,
// configured like Microsoft's identity platform as far as mailkey can tell (URL-shaped mail scopes
// through resource indicators, device flow, loopback redirects, PKCE, rotating refresh tokens),
// plus scripted faults, request counters and HTTP drivers for the login/consent/device pages.
// Microsoft Graph is a second resource, with Microsoft's rules for several resources (see
// graphResourceRules below). It must not log tokens.
import { createHash, randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { delayOrDrop } from './http-faults.js'
import { listenLoopback } from './listen.js'
import type { InteractionPrompt, OidcClient, OidcToken, Provider as ProviderType } from 'oidc-provider'
import { HttpDriver, describePage, pageId, parseForms } from './http-driver.js'
import type { DriverResponse, ParsedForm } from './http-driver.js'
import {
  consentPage,
  deviceConfirmPage,
  deviceInputPage,
  deviceSuccessPage,
  errorPage,
  loginPage,
  logoutPage,
  logoutSuccessPage,
} from './lab-pages.js'

export const MAIL_RESOURCE = 'https://outlook.office.com'
export const MAIL_SCOPES = [
  'https://outlook.office.com/IMAP.AccessAsUser.All',
  'https://outlook.office.com/POP.AccessAsUser.All',
  'https://outlook.office.com/SMTP.Send',
] as const
export const LAB_PUBLIC_CLIENT_ID = 'mailkey-lab'
export const LAB_SECRET_CLIENT_ID = 'mailkey-secret'
export const LAB_CLIENT_SECRET = 'mailkey-lab-client-secret-for-tests-only'
/**
 * A public client registered, as Yahoo and AOL registered Thunderbird's, with the one redirect
 * https://127.0.0.1 (no port) that no loopback listener can receive: the paste flow's.
 * oidc-provider refuses that URI for a native client, so this one is a web client.
 */
export const LAB_FIXED_REDIRECT_CLIENT_ID = 'mailkey-fixed-redirect'
export const LAB_FIXED_REDIRECT = 'https://127.0.0.1'
export const MAIL_RS_CLIENT_ID = 'mail-rs'
export const MAIL_RS_SECRET = 'mail-rs-introspection-secret-for-tests-only'
/** Microsoft Graph: the second resource (its access tokens have this audience). */
export const GRAPH_RESOURCE = 'https://graph.microsoft.com'
export const GRAPH_SCOPES = ['https://graph.microsoft.com/Mail.Send'] as const
/** Another Graph scope the lab knows, so a test can hold a Graph token without Mail.Send. */
export const GRAPH_USER_READ_SCOPE = 'https://graph.microsoft.com/User.Read'
/** The Graph emulator's introspection client: it may only introspect Graph access tokens. */
export const GRAPH_RS_CLIENT_ID = 'graph-rs'
export const GRAPH_RS_SECRET = 'graph-rs-introspection-secret-for-tests-only'

/** The introspection endpoint with mail-rs's HTTP Basic credentials in it, as Dovecot's oauth2 passdb wants it. */
export function introspectionUrl(issuer: string): string {
  const url = new URL('/token/introspection', issuer)
  url.username = MAIL_RS_CLIENT_ID
  url.password = MAIL_RS_SECRET
  return url.href
}
export const DEFAULT_LOGIN = 'alice@example.test'
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
export const CLIENT_DISABLED_ERROR = {
  error: 'invalid_client',
  error_description: 'AADSTS7000112: Application is disabled.',
} as const

export interface OAuthServerOptions {
  /** Access token lifetime (default 3600). */
  accessTokenTtlSec?: number
  /** Refresh token lifetime (default 14 days); every rotation issues a token with the full lifetime. */
  refreshTokenTtlSec?: number
  /** Device code lifetime (default 600). */
  deviceCodeTtlSec?: number
  /** `interval` in the device authorization response (default 1; oidc-provider itself sends none). */
  deviceInterval?: number
  /**
   * mail-rs introspection: when the request has `X-Dovecot-Auth-Service: imap|pop3|smtp`, the token
   * must hold the matching mail scope (default true).
   */
  enforceServiceScope?: boolean
  /**
   * Rotate refresh tokens on every use (default true: strict, the old one is then dead, and reusing
   * it revokes the grant, RFC 9700 §4.14.2). false: keep the refresh token, as Google does (and as
   * Microsoft's old refresh tokens keep working after a rotation).
   */
  rotateRefreshTokens?: boolean
}

export interface TokenCounts {
  refresh: number
  authorizationCode: number
  deviceCode: number
  deviceAuthorization: number
  introspection: number
  revocation: number
}

export interface TokenFault {
  /** HTTP status of the scripted answer. Without it (and without destroySocket) the request is only delayed. */
  status?: number
  /** Response body; an object is sent as JSON. */
  body?: string | object
  headers?: Record<string, string>
  /** How many matching requests get this fault (default 1). */
  times?: number
  /** Wait this long before answering / destroying / passing the request on. */
  delayMs?: number
  /** Only requests with this grant_type match (e.g. 'refresh_token'). */
  grantType?: string
  /** Destroy the TCP connection instead of answering. */
  destroySocket?: boolean
}

/**
 * One refresh_token grant request that reached the server (faulted and failing ones included),
 * logged when its answer was ready. Hashes (SHA-256, hex) only, never tokens.
 */
export interface RefreshLogEntry {
  /** Date.now() when the request arrived */
  at: number
  /** the refresh token presented ('' hashed when the request had none) */
  presented: string
  /** the answer's HTTP status (0: no answer, the connection was destroyed by a fault) */
  status: number
  /** the OAuth error code of an error answer */
  error?: string
  /** the rotated refresh token in a successful answer */
  issuedRefresh?: string
  /** the access token in a successful answer */
  issuedAccess?: string
  clientId?: string
  /** grant and account of the presented token, when the server still knew it on arrival */
  grantId?: string
  accountId?: string
  /** true when the answer never went out: a held answer dropped, a destroyed connection */
  dropped?: true
}

/** A refresh answer held after the server processed the request (see holdNextRefreshAnswer). */
export interface RefreshHold {
  /** resolves once a refresh answer is ready and being held (its refreshLog entry is in) */
  held: Promise<void>
  /** sends the held answer */
  release(): void
  /** destroys the connection instead of answering */
  drop(): void
}

export interface InteractionOptions {
  /** Login name = account id = email (default: the login_hint, else alice@example.test). */
  login?: string
  /** Deny instead of approving (the client then gets `access_denied`). */
  deny?: boolean
}

export interface LabServer {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  readonly issuer: string
  readonly port: number
  /** Live counters of requests that reached the server (faulted and failing ones included). */
  readonly counts: TokenCounts
  /**
   * SHA-256 (hex) of every token a resource server asked about at the introspection endpoint: what
   * "the provider side" saw. Hashes only, so a test can ask "did the local password get here?"
   * without keeping any token.
   */
  readonly introspectedHashes: string[]
  /** Every refresh_token grant request, in the order its answer was ready (see RefreshLogEntry). */
  readonly refreshLog: RefreshLogEntry[]
  /**
   * Holds the next refresh answer that oidc-provider produces (faults and `deny` answers are not
   * held): the request is processed (tokens minted, the presented one consumed) but the client gets
   * nothing until release() or drop(). Several calls hold the next answers in turn.
   */
  holdNextRefreshAnswer(): RefreshHold
  /** true while the grant exists (not revoked, e.g. by a reused refresh token) */
  grantAlive(grantId: string): Promise<boolean>
  resetCounts(): void
  injectTokenFault(fault: TokenFault): void
  clearFaults(): void
  /** Answer token, device authorization and authorization requests of this client with `invalid_client`. */
  deny(clientId: string): void
  allow(clientId: string): void
  /** Approves (or denies) a pending device authorization over HTTP, like a user in a browser. */
  approveDevice(userCode: string, opts?: InteractionOptions): Promise<void>
  /** Follows an authorization URL through login + consent; returns the redirect to the client, unfetched. */
  completeAuthorization(authorizeUrl: string, opts?: InteractionOptions): Promise<string>
  /** Revokes a token through the revocation endpoint as its client (this revokes its whole grant). */
  revokeGrant(token: string): Promise<void>
  /** RFC 7662 introspection as mail-rs (service: sent as X-Dovecot-Auth-Service, like Dovecot does). */
  introspect(token: string, opts?: { service?: string }): Promise<Record<string, unknown>>
  /**
   * RFC 7662 introspection as graph-rs, the Graph emulator's client: `{ active: false }` for
   * anything but an access token whose audience includes GRAPH_RESOURCE.
   */
  introspectGraph(token: string): Promise<Record<string, unknown>>
  /** true when this refresh token is the grant's current one: known, not expired, not consumed by a rotation */
  refreshTokenAlive(token: string): Promise<boolean>
  close(): Promise<void>
}

const GRANT_COUNTERS: Record<string, keyof TokenCounts> = {
  refresh_token: 'refresh',
  authorization_code: 'authorizationCode',
  [DEVICE_CODE_GRANT]: 'deviceCode',
}

const SERVICE_SCOPES: Record<string, string> = {
  imap: 'https://outlook.office.com/IMAP.AccessAsUser.All',
  pop3: 'https://outlook.office.com/POP.AccessAsUser.All',
  smtp: 'https://outlook.office.com/SMTP.Send',
}

const BODY_LIMIT = 56 * 1024

/** The scopes each resource server of the lab knows (the first is the default resource). */
const RESOURCE_SCOPES: Record<string, readonly string[]> = {
  [MAIL_RESOURCE]: MAIL_SCOPES,
  [GRAPH_RESOURCE]: [...GRAPH_SCOPES, GRAPH_USER_READ_SCOPE],
}

/**
 * The resource a Microsoft identity platform (v2) scope names: the scope URL up to its last '/'
 * ("https://graph.microsoft.com/Mail.Send" names https://graph.microsoft.com). The v2 endpoint has no
 * `resource` parameter; "the resource identifier is the scope value minus the permission" (learn.microsoft.com
 * /entra/identity-platform/scopes-oidc, "Scopes and permissions"). Scopes like openid name none.
 */
export function scopeResource(scope: string): string | undefined {
  const match = /^(https?:\/\/[^/\s]+(?:\/[^\s]*)?)\/[^/\s]+$/i.exec(scope)
  return match?.[1]
}

/** The resources a `scope` parameter names, in the order they first appear. */
export function scopeResources(scope: string | null | undefined): string[] {
  const out: string[] = []
  for (const item of (scope ?? '').split(' ')) {
    const resource = scopeResource(item)
    if (resource !== undefined && !out.includes(resource)) out.push(resource)
  }
  return out
}

/** An error body in the Microsoft identity platform's form (error_codes, trace and correlation ids). */
function aadError(error: string, code: number, description: string, extra: Record<string, string> = {}): object {
  const traceId = randomUUID()
  const correlationId = randomUUID()
  const timestamp = new Date()
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z')
  return {
    error,
    error_description: `${description}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: [code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    ...extra,
  }
}

/**
 * A token or device authorization request whose scope names several resources. Microsoft answers
 * this for /token (captured e.g. in github.com/Azure-Samples/active-directory-aspnetcore-webapp-openidconnect-v2
 * issue 271 and github.com/Earlybyte/aad_oauth issue 328); an authorization request may name several
 * (MSAL's extraScopesToConsent, learn.microsoft.com/entra/msal/dotnet/acquiring-tokens/desktop-mobile/
 * scenario-desktop-production "Have the user consent upfront for several resources").
 */
export function multipleResourcesError(scope: string): object {
  return aadError(
    'invalid_scope',
    28000,
    'AADSTS28000: Provided value for the input parameter scope is not valid because it contains more than one ' +
      `resource. Scope ${scope} is not valid.`,
  )
}

/** A refresh for a resource the user never consented to (Microsoft's AADSTS65001, invalid_grant). */
export function consentRequiredError(clientId: string): object {
  return aadError(
    'invalid_grant',
    65001,
    `AADSTS65001: The user or administrator has not consented to use the application with ID '${clientId}' ` +
      `named '${clientId}'. Send an interactive authorization request for this user and resource.`,
    { suberror: 'consent_required' },
  )
}

/** The token fields the lab widens to its grant (oidc-provider's RefreshToken instance). */
interface WidenableToken {
  grantId?: string
  resource?: string | string[]
  scope?: string
}

/** oidc-provider's Grant: what it holds per resource (scope strings). */
interface GrantResources {
  resources?: Record<string, string | undefined>
}

function asList(value: string | string[] | undefined): string[] {
  if (value === undefined) return []
  return Array.isArray(value) ? [...value] : [value]
}

/**
 * Widens a refresh token (in memory) to every resource and scope its grant holds. Microsoft:
 * "refresh tokens are bound to a combination of user and client, but aren't tied to a resource"
 * (learn.microsoft.com/entra/identity-platform/refresh-tokens). oidc-provider instead checks the
 * requested scope against the token's own (lib/actions/grants/refresh_token.js). The token's first
 * resource stays first: a refresh without scope gets a token for it.
 */
function widenToGrant(token: WidenableToken, grant: GrantResources | undefined): void {
  const resources = asList(token.resource)
  const scopes = new Set((token.scope ?? '').split(' ').filter(Boolean))
  let wider = false
  for (const [resource, scope] of Object.entries(grant?.resources ?? {})) {
    if (!scope) continue
    if (!resources.includes(resource)) {
      resources.push(resource)
      wider = true
    }
    for (const item of scope.split(' ')) {
      if (item && !scopes.has(item)) {
        scopes.add(item)
        wider = true
      }
    }
  }
  if (!wider) return
  token.resource = resources.length === 1 ? resources[0] : resources
  token.scope = [...scopes].join(' ')
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

/** The logged fields of a token endpoint answer body (hashes of the tokens in it). */
function answerFields(body: string): Pick<RefreshLogEntry, 'error' | 'issuedRefresh' | 'issuedAccess'> {
  let json: Record<string, unknown>
  try {
    json = JSON.parse(body) as Record<string, unknown>
  } catch {
    return {}
  }
  const out: Pick<RefreshLogEntry, 'error' | 'issuedRefresh' | 'issuedAccess'> = {}
  if (typeof json.error === 'string') out.error = json.error
  if (typeof json.refresh_token === 'string') out.issuedRefresh = sha256(json.refresh_token)
  if (typeof json.access_token === 'string') out.issuedAccess = sha256(json.access_token)
  return out
}

interface HoldSlot {
  onHeld(): void
  decided: Promise<'release' | 'drop'>
}

type EndArgs = Parameters<ServerResponse['end']>

/**
 * Logs a refresh request's answer into `log` when the server ends it (res.end: oidc-provider, a
 * fault and the `deny` answer all end that way), or as dropped when the connection closes first.
 * Once `reachedProvider()` was called, the answer may be held by the first of `holds`.
 */
function trackRefresh(
  res: ServerResponse,
  entry: RefreshLogEntry,
  log: RefreshLogEntry[],
  holds: HoldSlot[],
): { reachedProvider(): void } {
  let viaProvider = false
  let logged = false
  const chunks: Buffer[] = []
  const collect = (chunk: unknown): void => {
    if (typeof chunk === 'string' || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk))
  }
  const write = res.write.bind(res) as (...args: unknown[]) => boolean
  const end = res.end.bind(res) as (...args: EndArgs) => ServerResponse
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    collect(chunk)
    return write(chunk, ...rest)
  }) as ServerResponse['write']
  res.end = ((...args: EndArgs) => {
    if (typeof args[0] !== 'function') collect(args[0])
    logged = true
    log.push({ ...entry, status: res.statusCode, ...answerFields(Buffer.concat(chunks).toString('utf8')) })
    const logEntry = log[log.length - 1] as RefreshLogEntry
    const hold = viaProvider ? holds.shift() : undefined
    if (!hold) return end(...args)
    hold.onHeld()
    void hold.decided.then((decision) => {
      if (decision === 'release') end(...args)
      else {
        logEntry.dropped = true
        res.destroy()
      }
    })
    return res
  }) as ServerResponse['end']
  res.once('close', () => {
    if (!logged) log.push({ ...entry, status: 0, dropped: true })
  })
  return {
    reachedProvider() {
      viaProvider = true
    },
  }
}

const LOOPBACK_REDIRECTS = ['http://127.0.0.1', 'http://localhost', 'http://[::1]'].flatMap((origin) =>
  ['', '/', '/callback'].map((path) => origin + path),
)

let quieted = false

/**
 * oidc-provider reports through console.warn/console.info ("Unsupported runtime" on Node 20 at import,
 * development-only adapter/keys notices, ...). Those lines, and only those, are dropped.
 * LAB_OIDC_VERBOSE=1 keeps them.
 */
function quietOidcProviderNotices(): void {
  if (quieted || process.env.LAB_OIDC_VERBOSE === '1') return
  quieted = true
  const pattern = /^(?:\x1b\[[\d;]*m)?oidc-provider (?:WARNING|NOTICE): /
  for (const method of ['warn', 'info'] as const) {
    const original = console[method]
    console[method] = function (this: Console, ...args: unknown[]): void {
      if (typeof args[0] === 'string' && pattern.test(args[0])) return
      original.apply(this, args)
    }
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req.iterator({ destroyOnReturn: false })) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk))
    size += buf.length
    if (size > BODY_LIMIT) throw new Error('request body too large')
    chunks.push(buf)
  }
  return Buffer.concat(chunks)
}

/** Hands an already-read urlencoded body to oidc-provider (it reads `req.body` once the stream is consumed). */
function setParsedBody(req: IncomingMessage, body: string): void {
  ;(req as IncomingMessage & { body?: string }).body = body
}

function basicClientId(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization
  if (!auth || !/^basic /i.test(auth)) return undefined
  const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return undefined
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, '%20'))
  } catch {
    return undefined
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
  })
  res.end(text)
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(html),
  })
  res.end(html)
}

function audiences(token: OidcToken): string[] {
  if (token.aud === undefined) return []
  return Array.isArray(token.aud) ? token.aud : [token.aud]
}

interface FaultSlot {
  fault: TokenFault
  remaining: number
}

let providerModule: Promise<typeof import('oidc-provider')> | undefined

function loadOidcProvider(): Promise<typeof import('oidc-provider')> {
  quietOidcProviderNotices()
  providerModule ??= import('oidc-provider')
  return providerModule
}

export async function startOAuthServer(opts: OAuthServerOptions = {}): Promise<LabServer> {
  const { Provider, errors } = await loadOidcProvider()
  const accessTokenTtl = opts.accessTokenTtlSec ?? 3600
  const refreshTokenTtl = opts.refreshTokenTtlSec ?? 14 * 24 * 3600
  const deviceCodeTtl = opts.deviceCodeTtlSec ?? 600
  const deviceInterval = opts.deviceInterval ?? 1
  const enforceServiceScope = opts.enforceServiceScope ?? true

  const counts: TokenCounts = {
    refresh: 0,
    authorizationCode: 0,
    deviceCode: 0,
    deviceAuthorization: 0,
    introspection: 0,
    revocation: 0,
  }
  const introspectedHashes: string[] = []
  const refreshLog: RefreshLogEntry[] = []
  const holds: HoldSlot[] = []
  const faults: FaultSlot[] = []
  const denied = new Set<string>()
  const closing = new AbortController()

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent || res.destroyed) {
        res.destroy()
        return
      }
      const message = err instanceof Error ? err.message : String(err)
      sendHtml(res, 500, errorPage({ error: 'server_error', error_description: message }))
    })
  })
  server.keepAliveTimeout = 2000
  const port = await listenLoopback(server)
  const issuer = `http://127.0.0.1:${port}`

  const findAccount = async (_ctx: unknown, id: string) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: id,
      email_verified: true,
      preferred_username: id,
      name: id.split('@')[0] ?? id,
    }),
  })

  const clientDefaults = {
    application_type: 'native',
    grant_types: [DEVICE_CODE_GRANT, 'authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: LOOPBACK_REDIRECTS,
  }

  const oidc: ProviderType = new Provider(issuer, {
    clients: [
      { ...clientDefaults, client_id: LAB_PUBLIC_CLIENT_ID, token_endpoint_auth_method: 'none' },
      {
        ...clientDefaults,
        application_type: 'web',
        client_id: LAB_FIXED_REDIRECT_CLIENT_ID,
        token_endpoint_auth_method: 'none',
        redirect_uris: [LAB_FIXED_REDIRECT],
      },
      {
        ...clientDefaults,
        client_id: LAB_SECRET_CLIENT_ID,
        client_secret: LAB_CLIENT_SECRET,
        // oidc-provider accepts client_secret_basic for a client registered with client_secret_post too
        token_endpoint_auth_method: 'client_secret_post',
      },
      ...[
        [MAIL_RS_CLIENT_ID, MAIL_RS_SECRET],
        [GRAPH_RS_CLIENT_ID, GRAPH_RS_SECRET],
      ].map(([clientId, secret]) => ({
        client_id: clientId,
        client_secret: secret,
        grant_types: [],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      })),
    ],
    responseTypes: ['code'],
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    claims: {
      openid: ['sub', 'email'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    conformIdTokenClaims: false,
    findAccount,
    extraTokenClaims: async (_ctx: unknown, token: OidcToken) =>
      token.kind === 'AccessToken' && token.accountId ? { email: token.accountId, upn: token.accountId } : undefined,
    rotateRefreshToken: () => opts.rotateRefreshTokens !== false,
    revokeGrantPolicy: () => true,
    clientBasedCORS: () => false,
    ttl: {
      AccessToken: accessTokenTtl,
      AuthorizationCode: 60,
      ClientCredentials: 600,
      DeviceCode: deviceCodeTtl,
      IdToken: 3600,
      RefreshToken: refreshTokenTtl,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: Math.max(refreshTokenTtl, 14 * 24 * 3600),
    },
    features: {
      devInteractions: { enabled: false },
      deviceFlow: {
        enabled: true,
        userCodeInputSource: async (
          ctx: { body: unknown },
          form: string,
          _out: unknown,
          err?: { name?: string; userCode?: string },
        ) => {
          ctx.body = deviceInputPage(form, err?.name, Boolean(err?.userCode))
        },
        userCodeConfirmSource: async (
          ctx: { body: unknown },
          form: string,
          client: OidcClient,
          _deviceInfo: unknown,
          userCode: string,
        ) => {
          ctx.body = deviceConfirmPage(form, client.clientId, userCode)
        },
        successSource: async (ctx: { body: unknown; oidc: { client: OidcClient } }) => {
          ctx.body = deviceSuccessPage(ctx.oidc.client.clientId)
        },
      },
      introspection: {
        enabled: true,
        allowedPolicy: async (ctx: { get(header: string): string }, client: OidcClient, token: OidcToken) => {
          if (client.clientId === MAIL_RS_CLIENT_ID) {
            if (token.kind !== 'AccessToken' || !audiences(token).includes(MAIL_RESOURCE)) return false
            const service = ctx.get('x-dovecot-auth-service').toLowerCase()
            const required = SERVICE_SCOPES[service]
            if (!enforceServiceScope || !required) return true
            return (token.scope ?? '').split(' ').includes(required)
          }
          if (client.clientId === GRAPH_RS_CLIENT_ID) {
            return token.kind === 'AccessToken' && audiences(token).includes(GRAPH_RESOURCE)
          }
          return token.clientId === client.clientId
        },
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx: unknown, client: OidcClient, token: OidcToken) =>
          token.clientId === client.clientId,
      },
      resourceIndicators: {
        enabled: true,
        // Microsoft v2 has no `resource` parameter: the scopes name the resources. An authorization
        // request may name several; a token request names one (the lab adds `resource` for it, see
        // tokenScopeRules), else the token gets the first resource of its grant's request.
        defaultResource: async (
          ctx: { oidc?: { params?: { scope?: unknown } } },
          _client: unknown,
          oneOf?: string[],
        ) => {
          if (oneOf) return oneOf[0]
          const scope = ctx.oidc?.params?.scope
          const named = scopeResources(typeof scope === 'string' ? scope : undefined).filter(
            (resource) => RESOURCE_SCOPES[resource] !== undefined,
          )
          if (named.length === 0) return MAIL_RESOURCE
          return named.length === 1 ? named[0] : named
        },
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, resource: string) => {
          const scopes = RESOURCE_SCOPES[resource]
          if (!scopes) throw new errors.InvalidTarget()
          return {
            scope: scopes.join(' '),
            audience: resource,
            accessTokenTTL: accessTokenTtl,
            accessTokenFormat: 'opaque',
          }
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: { body: unknown; host: string }, form: string) => {
          ctx.body = logoutPage(form, ctx.host)
        },
        postLogoutSuccessSource: async (ctx: { body: unknown }) => {
          ctx.body = logoutSuccessPage()
        },
      },
    },
    renderError: async (ctx: { type: string; body: unknown }, out: Record<string, unknown>) => {
      ctx.type = 'html'
      ctx.body = errorPage(out)
    },
  })

  // oidc-provider sends no `interval`; RFC 8628 clients then default to 5 s. Microsoft sends one + `message`.
  oidc.use(async (ctx, next) => {
    await next()
    if (ctx.oidc?.route !== 'device_authorization' || ctx.status !== 200) return
    const body = ctx.body
    if (body && typeof body === 'object' && 'user_code' in body && 'verification_uri' in body) {
      Object.assign(body, {
        interval: deviceInterval,
        message:
          `To sign in, use a web browser to open the page ${String(body.verification_uri)} ` +
          `and enter the code ${String(body.user_code)} to authenticate.`,
      })
    }
  })
  const handleWithProvider = oidc.callback()

  // Every refresh token oidc-provider looks up is widened to its grant first (in memory only: the
  // stored token, its `consumed` mark and so rotation and reuse detection stay oidc-provider's).
  const refreshModel = oidc.RefreshToken
  const rawFindRefresh = refreshModel.find.bind(refreshModel)
  refreshModel.find = async (value: string, ...rest: unknown[]) => {
    const token = await (rawFindRefresh as (v: string, ...r: unknown[]) => Promise<OidcToken | undefined>)(
      value,
      ...rest,
    )
    const grantId = token?.grantId
    if (token && grantId) widenToGrant(token as WidenableToken, (await oidc.Grant.find(grantId)) as GrantResources)
    return token
  }
  /** Grants by client and account: consent is cumulative per user and app, as at Microsoft. */
  const grantIndex = new Map<string, string>()

  function takeFault(grantType: string | null): TokenFault | undefined {
    const index = faults.findIndex(
      (slot) => slot.remaining > 0 && (slot.fault.grantType === undefined || slot.fault.grantType === grantType),
    )
    const slot = faults[index]
    if (!slot) return undefined
    slot.remaining -= 1
    if (slot.remaining <= 0) faults.splice(index, 1)
    return slot.fault
  }

  /** Returns true when the fault fully answered the request. */
  async function applyFault(req: IncomingMessage, res: ServerResponse, fault: TokenFault): Promise<boolean> {
    if (await delayOrDrop(req, fault, closing.signal)) return true
    if (fault.status === undefined) return false
    if (res.destroyed) return true
    let body = ''
    const headers: Record<string, string> = { 'cache-control': 'no-store' }
    if (typeof fault.body === 'string') {
      body = fault.body
      headers['content-type'] = 'text/plain; charset=utf-8'
    } else if (fault.body !== undefined) {
      body = JSON.stringify(fault.body)
      headers['content-type'] = 'application/json; charset=utf-8'
    }
    for (const [name, value] of Object.entries(fault.headers ?? {})) headers[name.toLowerCase()] = value
    headers['content-length'] = String(Buffer.byteLength(body))
    res.writeHead(fault.status, headers)
    res.end(body)
    return true
  }

  function disabled(res: ServerResponse, status: number): void {
    sendJson(res, status, CLIENT_DISABLED_ERROR)
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', issuer)
    const path = url.pathname
    const post = req.method === 'POST'

    if (path === '/.well-known/oauth-authorization-server') {
      req.url = `/.well-known/openid-configuration${url.search}`
    } else if (path.startsWith('/interaction/')) {
      await handleInteraction(req, res, url)
      return
    } else if (path === '/token') {
      const body = post ? (await readBody(req)).toString('utf8') : ''
      const params = new URLSearchParams(body)
      const grantType = params.get('grant_type')
      const counter = grantType === null ? undefined : GRANT_COUNTERS[grantType]
      if (counter) counts[counter] += 1
      const clientId = params.get('client_id') ?? basicClientId(req)
      const tracked = grantType === 'refresh_token' ? await refreshArrived(res, params, clientId) : undefined
      const fault = takeFault(grantType)
      if (fault && (await applyFault(req, res, fault))) return
      if (clientId !== undefined && denied.has(clientId)) {
        disabled(res, req.headers.authorization ? 401 : 400)
        return
      }
      const refusal = await tokenScopeRules(params, clientId)
      if (refusal) {
        sendJson(res, 400, refusal)
        return
      }
      if (post) setParsedBody(req, params.has('resource') ? params.toString() : body)
      tracked?.reachedProvider()
    } else if (path === '/device/auth') {
      counts.deviceAuthorization += 1
      const body = post ? (await readBody(req)).toString('utf8') : ''
      const params = new URLSearchParams(body)
      const clientId = params.get('client_id') ?? basicClientId(req)
      if (clientId !== undefined && denied.has(clientId)) {
        disabled(res, req.headers.authorization ? 401 : 400)
        return
      }
      // One device round per resource: Microsoft refuses several, as at the token endpoint.
      if (scopeResources(params.get('scope')).length > 1) {
        sendJson(res, 400, multipleResourcesError(params.get('scope') ?? ''))
        return
      }
      if (post) setParsedBody(req, body)
    } else if (path === '/auth') {
      // OIDC Core: offline_access in an authorization request is ignored unless prompt has `consent`.
      // Microsoft has no such rule, so the lab adds prompt=consent itself. Microsoft's
      // prompt=select_account (unsupported by oidc-provider) becomes `login`: the sign-in page is shown.
      const body = post ? (await readBody(req)).toString('utf8') : ''
      const params = new URLSearchParams(post ? body : url.search)
      const clientId = params.get('client_id')
      if (clientId !== null && denied.has(clientId)) {
        disabled(res, 400)
        return
      }
      const scopes = (params.get('scope') ?? '').split(' ')
      const requested = (params.get('prompt') ?? '').split(' ').filter(Boolean)
      const prompts = new Set(requested.map((p) => (p === 'select_account' ? 'login' : p)))
      if (scopes.includes('offline_access') && !prompts.has('none')) prompts.add('consent')
      const rewrite = [...prompts].join(' ') !== requested.join(' ')
      if (rewrite) params.set('prompt', [...prompts].join(' '))
      if (post) setParsedBody(req, params.toString())
      else if (rewrite) req.url = `${path}?${params.toString()}`
    } else if (path === '/token/introspection') {
      counts.introspection += 1
      if (post) {
        const body = (await readBody(req)).toString('utf8')
        const token = new URLSearchParams(body).get('token')
        if (token !== null) introspectedHashes.push(createHash('sha256').update(token).digest('hex'))
        setParsedBody(req, body)
      }
    } else if (path === '/token/revocation') {
      counts.revocation += 1
    }
    handleWithProvider(req, res)
  }

  /**
   * Microsoft's scope rules for a token request: a scope naming several resources is refused
   * (AADSTS28000); one naming a single resource becomes that `resource` for oidc-provider; a refresh
   * for a resource the grant never consented to is refused (AADSTS65001). Returns the refusal's body.
   */
  async function tokenScopeRules(params: URLSearchParams, clientId: string | undefined): Promise<object | undefined> {
    const grantType = params.get('grant_type')
    if (grantType === null || GRANT_COUNTERS[grantType] === undefined) return undefined
    const scope = params.get('scope')
    const named = scopeResources(scope)
    if (named.length > 1) return multipleResourcesError(scope ?? '')
    const resource = named[0]
    if (resource === undefined || params.has('resource')) return undefined
    if (grantType === 'refresh_token' && (await unconsented(params.get('refresh_token'), resource))) {
      return consentRequiredError(clientId ?? '')
    }
    params.set('resource', resource)
    return undefined
  }

  /** true when the refresh token is known and neither it nor its grant covers `resource`. */
  async function unconsented(refreshToken: string | null, resource: string): Promise<boolean> {
    const token = refreshToken ? await oidc.RefreshToken.find(refreshToken).catch(() => undefined) : undefined
    if (!token?.grantId || (await oidc.Grant.find(token.grantId)) === undefined) return false
    return !asList((token as WidenableToken).resource).includes(resource)
  }

  /** Starts the refreshLog entry of a refresh request (and lets its answer be held). */
  async function refreshArrived(
    res: ServerResponse,
    params: URLSearchParams,
    clientId: string | undefined,
  ): Promise<{ reachedProvider(): void }> {
    const at = Date.now()
    const presented = params.get('refresh_token') ?? ''
    const known = presented ? await oidc.RefreshToken.find(presented).catch(() => undefined) : undefined
    const entry: RefreshLogEntry = { at, presented: sha256(presented), status: 0 }
    if (clientId !== undefined) entry.clientId = clientId
    if (known?.grantId) entry.grantId = known.grantId
    if (known?.accountId) entry.accountId = known.accountId
    return trackRefresh(res, entry, refreshLog, holds)
  }

  function holdNextRefreshAnswer(): RefreshHold {
    let onHeld!: () => void
    let decide!: (d: 'release' | 'drop') => void
    const held = new Promise<void>((resolve) => (onHeld = resolve))
    const decided = new Promise<'release' | 'drop'>((resolve) => (decide = resolve))
    holds.push({ onHeld, decided })
    return { held, release: () => decide('release'), drop: () => decide('drop') }
  }

  async function handleInteraction(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const match = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(url.pathname)
    const uid = match?.[1]
    const action = match?.[2]
    const method = action === undefined ? 'GET' : 'POST'
    if (!uid || req.method !== method) {
      sendHtml(res, 404, errorPage({ error: 'not_found', error_description: 'no such interaction route' }))
      return
    }
    let details
    try {
      details = await oidc.interactionDetails(req, res)
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      sendHtml(res, 400, errorPage({ error: 'invalid_request', error_description: message }))
      return
    }
    if (details.uid !== uid) {
      sendHtml(res, 400, errorPage({ error: 'invalid_request', error_description: 'interaction mismatch' }))
      return
    }
    const clientId = String(details.params.client_id ?? '')
    const { name, details: missing } = details.prompt

    if (action === undefined) {
      if (name === 'login') {
        const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint : ''
        sendHtml(res, 200, loginPage(uid, clientId, hint))
      } else if (name === 'consent') {
        sendHtml(
          res,
          200,
          consentPage(
            uid,
            clientId,
            details.session?.accountId ?? '',
            missing.missingOIDCScope ?? [],
            missing.missingResourceScopes ?? {},
          ),
        )
      } else {
        const description = `unknown prompt ${name}`
        sendHtml(res, 400, errorPage({ error: 'invalid_request', error_description: description }))
      }
      return
    }

    const form = new URLSearchParams((await readBody(req)).toString('utf8'))
    if (action === 'abort') {
      await oidc.interactionFinished(
        req,
        res,
        {
          error: 'access_denied',
          error_description: 'End-User denied the request',
        },
        { mergeWithLastSubmission: false },
      )
    } else if (action === 'login') {
      const login = (form.get('login') ?? '').trim()
      if (name !== 'login' || !login) {
        sendHtml(res, 400, loginPage(uid, clientId, login, 'Enter your email address'))
        return
      }
      const result = { login: { accountId: login } }
      await oidc.interactionFinished(req, res, result, { mergeWithLastSubmission: false })
    } else {
      const accountId = details.session?.accountId
      if (name !== 'consent' || !accountId) {
        const description = 'nothing to consent to'
        sendHtml(res, 400, errorPage({ error: 'invalid_request', error_description: description }))
        return
      }
      const grantId = await saveConsent(accountId, clientId, details.grantId, missing)
      await oidc.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true })
    }
  }

  /**
   * Adds what the consent page asked for to the user's grant for this client: the session's, else the
   * one an earlier sign-in of this user made (consent is per user and app, as at Microsoft).
   */
  async function saveConsent(
    accountId: string,
    clientId: string,
    sessionGrantId: string | undefined,
    missing: InteractionPrompt['details'],
  ): Promise<string> {
    const key = `${clientId}\n${accountId}`
    const known = sessionGrantId ?? grantIndex.get(key)
    const grant = (known ? await oidc.Grant.find(known) : undefined) ?? new oidc.Grant({ accountId, clientId })
    if (missing.missingOIDCScope?.length) grant.addOIDCScope(missing.missingOIDCScope.join(' '))
    if (missing.missingOIDCClaims?.length) grant.addOIDCClaims(missing.missingOIDCClaims)
    for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(resource, scopes.join(' '))
    }
    const grantId = await grant.save()
    grantIndex.set(key, grantId)
    return grantId
  }

  type DriveEnd = { kind: 'redirect'; location: string } | { kind: 'device-success' }

  function requireForm(page: DriverResponse, id: string): ParsedForm {
    const form = parseForms(page.html, page.url).find((f) => f.id === id)
    if (!form) throw new Error(`lab: expected form #${id}, got ${describePage(page)}`)
    return form
  }

  /** Follows redirects and answers the lab's login/consent pages until the flow leaves the issuer. */
  async function drive(driver: HttpDriver, first: DriverResponse, opts: InteractionOptions): Promise<DriveEnd> {
    let page = first
    for (let step = 0; step < 25; step++) {
      if (page.location) {
        if (page.location.origin !== issuer) return { kind: 'redirect', location: page.location.href }
        page = await driver.request(page.location)
        continue
      }
      const id = pageId(page.html)
      if (page.status === 200 && id === 'lab-login') {
        const form = requireForm(page, opts.deny ? 'deny' : 'login')
        const login = opts.login ?? (form.fields.login || DEFAULT_LOGIN)
        page = await driver.request(new URL(form.action), { ...form.fields, login, password: 'lab' })
      } else if (page.status === 200 && id === 'lab-consent') {
        const form = requireForm(page, opts.deny ? 'deny' : 'consent')
        page = await driver.request(new URL(form.action), form.fields)
      } else if (page.status === 200 && id === 'lab-device-success') {
        return { kind: 'device-success' }
      } else {
        throw new Error(`lab: unexpected page: ${describePage(page)}`)
      }
    }
    throw new Error('lab: too many steps in the authorization flow')
  }

  async function approveDevice(userCode: string, opts: InteractionOptions = {}): Promise<void> {
    const driver = new HttpDriver()
    let page = await driver.request(new URL('/device', issuer))
    let form = requireForm(page, 'op.deviceInputForm')
    page = await driver.request(new URL(form.action), { ...form.fields, user_code: userCode })
    form = requireForm(page, 'op.deviceConfirmForm')
    if (opts.deny) {
      page = await driver.request(new URL(form.action), { ...form.fields, abort: 'yes' })
      if (pageId(page.html) !== 'lab-device-aborted') {
        throw new Error(`lab: device abort failed: ${describePage(page)}`)
      }
      return
    }
    page = await driver.request(new URL(form.action), form.fields)
    const end = await drive(driver, page, { login: opts.login })
    if (end.kind !== 'device-success') throw new Error('lab: device flow ended with a redirect')
  }

  async function completeAuthorization(authorizeUrl: string, opts: InteractionOptions = {}): Promise<string> {
    const start = new URL(authorizeUrl)
    if (start.origin !== issuer) throw new Error(`lab: ${start.origin} is not the lab issuer ${issuer}`)
    const driver = new HttpDriver()
    const end = await drive(driver, await driver.request(start), opts)
    if (end.kind !== 'redirect') throw new Error('lab: authorization ended on the device success page')
    return end.location
  }

  async function revokeGrant(token: string): Promise<void> {
    const found = (await oidc.AccessToken.find(token)) ?? (await oidc.RefreshToken.find(token))
    const clientId = found?.clientId ?? LAB_PUBLIC_CLIENT_ID
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
    const body = new URLSearchParams({ token })
    if (clientId === LAB_SECRET_CLIENT_ID) {
      headers.authorization = `Basic ${Buffer.from(`${clientId}:${LAB_CLIENT_SECRET}`).toString('base64')}`
    } else {
      body.set('client_id', clientId)
    }
    const res = await fetch(`${issuer}/token/revocation`, { method: 'POST', headers, body })
    const text = await res.text()
    if (!res.ok) throw new Error(`lab: revocation failed with HTTP ${res.status}: ${text.slice(0, 200)}`)
  }

  async function refreshTokenAlive(token: string): Promise<boolean> {
    const t = (await oidc.RefreshToken.find(token)) as { isExpired?: boolean; consumed?: unknown } | undefined
    return t !== undefined && !t.isExpired && !t.consumed
  }

  function introspect(token: string, o: { service?: string } = {}): Promise<Record<string, unknown>> {
    return introspectAs(MAIL_RS_CLIENT_ID, MAIL_RS_SECRET, token, o.service)
  }

  function introspectGraph(token: string): Promise<Record<string, unknown>> {
    return introspectAs(GRAPH_RS_CLIENT_ID, GRAPH_RS_SECRET, token)
  }

  async function introspectAs(
    clientId: string,
    secret: string,
    token: string,
    service?: string,
  ): Promise<Record<string, unknown>> {
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
    }
    if (service) headers['x-dovecot-auth-service'] = service
    const res = await fetch(`${issuer}/token/introspection`, {
      method: 'POST',
      headers,
      body: new URLSearchParams({ token }),
    })
    if (!res.ok) throw new Error(`lab: introspection failed with HTTP ${res.status}`)
    return (await res.json()) as Record<string, unknown>
  }

  let closed: Promise<void> | undefined
  function close(): Promise<void> {
    closed ??= new Promise<void>((resolve) => {
      closing.abort()
      server.close(() => resolve())
      server.closeAllConnections()
    })
    return closed
  }

  return {
    issuer,
    port,
    counts,
    introspectedHashes,
    refreshLog,
    holdNextRefreshAnswer,
    async grantAlive(grantId: string) {
      return (await oidc.Grant.find(grantId)) !== undefined
    },
    resetCounts() {
      for (const key of Object.keys(counts) as (keyof TokenCounts)[]) counts[key] = 0
    },
    injectTokenFault(fault: TokenFault) {
      const times = fault.times ?? 1
      if (!(times > 0)) throw new RangeError('injectTokenFault: times must be > 0')
      faults.push({ fault: { ...fault }, remaining: times })
    },
    clearFaults() {
      faults.length = 0
    },
    deny(clientId: string) {
      denied.add(clientId)
    },
    allow(clientId: string) {
      denied.delete(clientId)
    },
    approveDevice,
    completeAuthorization,
    revokeGrant,
    introspect,
    introspectGraph,
    refreshTokenAlive,
    close,
  }
}
