/**
 * The token service's HTTP API, without sockets: a request (method, path and query, the
 * Authorization header) in, a response (status, headers, body) and what to log out. server.ts
 * does the HTTP; docs/openapi.json describes the same routes.
 *
 *   GET /v1/accounts/{account}/token?min_ttl=SEC[&sasl=xoauth2|oauthbearer][&force_refresh=1]
 *   GET /v1/accounts/{account}       the account's status, without secrets
 *   GET /v1/accounts                 the accounts the key may use
 *   GET /metrics                     Prometheus text (a key is needed: it names accounts)
 *   GET /healthz, /readyz            no key: the process is up / the store answers
 *
 * Every /v1 and /metrics request needs `Authorization: Bearer <key>` (serve/keys.ts); a key
 * limited to some accounts sees only those, and is told "not allowed" for any other without
 * learning whether it exists. The refresh token is never in any answer.
 *
 * Owns: routing, checking keys and parameters, response bodies. Must not: open sockets, log, or
 * put a key in anything it returns.
 */
import { DEFAULT_REFRESH_MARGIN_SEC } from '../config/settings.js'
import { accountId } from '../domain/account.js'
import type { AccessToken, GetTokenOptions } from '../broker/access-token.js'
import type { AccountStatus } from '../broker/accounts.js'
import type { SaslMechanism } from '../providers/types.js'
import { allows, type ApiKey, type KeyRing } from './keys.js'
import { DEFAULT_RETRY_AFTER_SEC, problem, problemOf, type Problem, type ProblemKind } from './problem.js'
import type { TokenCache } from './token-cache.js'
import type { Metrics } from './metrics.js'

/** What the service needs from the rest of mailkey; `Mailkey` (mailkey.ts) is one. */
export interface ServiceSource {
  getAccessToken(account: string, options?: GetTokenOptions): Promise<AccessToken>
  status(account: string): Promise<AccountStatus>
  list(): Promise<{ accounts: AccountStatus[] }>
}

export interface ApiRequest {
  method: string
  /** path and query, as sent */
  url: string
  authorization?: string
  signal?: AbortSignal
}

export interface ApiResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** What the server logs about a request (never the key, never a token). */
export interface ApiNote {
  route: string
  key?: string
  account?: string
  kind?: ProblemKind
  /** where a token came from: this replica's memory, the store, or a refresh (here or elsewhere) */
  source?: 'memory' | 'store' | 'refreshed'
}

export interface ApiDeps {
  source: ServiceSource
  keys: KeyRing
  cache: TokenCache
  metrics: Metrics
  /** is the store reachable and the replica not stopping? */
  ready(): Promise<Problem | undefined>
  now?: () => number
}

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' }
const MAX_MIN_TTL = 86_400
// no controls or invisible format characters: a NUL reached PostgreSQL as a 500 with its text
const ACCOUNT = /^[^\s/@\\\p{Cc}\p{Cf}]{1,200}@[^\s/@\\\p{Cc}\p{Cf}]{1,200}$/u

export class Api {
  readonly #d: ApiDeps
  readonly #now: () => number
  readonly #reading = new Map<string, Promise<AccessToken>>()

  constructor(d: ApiDeps) {
    this.#d = d
    this.#now = d.now ?? Date.now
  }

  async handle(req: ApiRequest): Promise<{ res: ApiResponse; note: ApiNote }> {
    const note: ApiNote = { route: 'other' }
    try {
      const res = await this.#route(req, note)
      return { res, note }
    } catch (e) {
      const p = problemOf(e, note.account)
      return { res: this.#problem(p, req, note), note }
    }
  }

  async #route(req: ApiRequest, note: ApiNote): Promise<ApiResponse> {
    const u = new URL(req.url, 'http://service.invalid')
    const path = u.pathname
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return this.#problem(problem('method-not-allowed', 'only GET is served'), req, note, { allow: 'GET, HEAD' })
    if (path === '/healthz') return ((note.route = 'healthz'), json(200, { status: 'ok' }))
    if (path === '/readyz') {
      note.route = 'readyz'
      const p = await this.#d.ready()
      // no key here: "not ready" and when to ask again, never why (the store's address; the log has it)
      const bare = p && problem('unavailable', 'not ready', { retry_after: p.retry_after ?? DEFAULT_RETRY_AFTER_SEC })
      return bare ? this.#problem(bare, req, note) : json(200, { status: 'ready' })
    }
    const m = /^\/v1\/accounts(?:\/([^/]+)(\/token)?)?\/?$/.exec(path)
    if (path === '/metrics') note.route = 'metrics'
    else if (m) note.route = m[2] ? 'token' : m[1] ? 'account' : 'accounts'
    else return this.#problem(problem('not-found', 'no such endpoint'), req, note)
    const key = await this.#key(req)
    if ('status' in key) return this.#problem(key, req, note, challenge(key))
    note.key = key.name
    if (note.route === 'metrics') return await this.#metrics(key)
    if (note.route === 'accounts') return await this.#list(key)
    const account = decodeAccount(m?.[1] ?? '')
    if (typeof account !== 'string') return this.#problem(account, req, note)
    note.account = account
    if (!allows(key, account))
      return this.#problem(problem('not-allowed', `the key "${key.name}" may not use this account`), req, note)
    if (note.route === 'account') return json(200, publicStatus(await this.#d.source.status(account)))
    return await this.#token(account, u.searchParams, req, note)
  }

  async #key(req: ApiRequest): Promise<ApiKey | Problem> {
    const m = /^Bearer +(\S+) *$/i.exec(req.authorization ?? '')
    if (!m?.[1])
      return problem('unauthorized', 'send "Authorization: Bearer <key>"; "mailkey serve key add NAME" makes one')
    const k = await this.#d.keys.check(m[1])
    return k ?? problem('unauthorized', 'the API key is not known here (wrong, or removed)', { code: 'invalid_token' })
  }

  async #token(account: string, q: URLSearchParams, req: ApiRequest, note: ApiNote): Promise<ApiResponse> {
    const o = tokenQuery(q)
    if ('status' in o) return this.#problem(o, req, note)
    if (o.force && req.method === 'HEAD')
      return this.#problem(problem('bad-request', 'force_refresh needs GET: HEAD must not change anything'), req, note)
    const id = accountId(account)
    const minSec = o.minTtl ?? DEFAULT_REFRESH_MARGIN_SEC
    let t = o.force ? undefined : this.#d.cache.get(id, minSec)
    note.source = 'memory'
    if (!t) {
      t = await this.#read(account, id, o, req.signal)
      note.source = t.refreshed ? 'refreshed' : 'store'
    }
    this.#d.metrics.token(note.source)
    return json(200, await tokenBody(t, o.sasl, this.#now()), NO_STORE)
  }

  /**
   * The token from the store (refreshed there if need be). With the cache on, requests that miss at
   * once share one read: when an entry ages out under load, every request in flight would
   * otherwise read the store. The shared read carries no one caller's signal.
   */
  async #read(account: string, id: string, o: TokenQuery, signal?: AbortSignal): Promise<AccessToken> {
    const ask = (s?: AbortSignal): Promise<AccessToken> =>
      this.#d.source.getAccessToken(account, {
        forceRefresh: o.force,
        ...(o.minTtl !== undefined ? { minValiditySec: o.minTtl } : {}),
        ...(s ? { signal: s } : {}),
      })
    if (o.force || !this.#d.cache.enabled) {
      const t = await ask(signal)
      this.#d.cache.put(id, t)
      return t
    }
    const k = `${id}\0${o.minTtl ?? ''}`
    let p = this.#reading.get(k)
    if (!p) {
      p = ask().then((t) => (this.#d.cache.put(id, t), t))
      this.#reading.set(k, p)
      void p.then(
        () => this.#reading.delete(k),
        () => this.#reading.delete(k),
      )
    }
    return await p
  }

  async #list(key: ApiKey): Promise<ApiResponse> {
    const { accounts } = await this.#d.source.list()
    return json(200, { accounts: accounts.filter((a) => allows(key, a.email)).map(publicStatus) })
  }

  async #metrics(key: ApiKey): Promise<ApiResponse> {
    const { accounts } = await this.#d.source.list().catch(() => ({ accounts: undefined }))
    const mine = accounts?.filter((a) => allows(key, a.email))
    return {
      status: 200,
      headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', ...NO_STORE },
      // a key for some accounts sees its own requests only, not other keys' names and traffic
      body: this.#d.metrics.render(mine, this.#now(), key.accounts === '*' ? undefined : key.name),
    }
  }

  #problem(p: Problem, req: ApiRequest, note: ApiNote, headers: Record<string, string> = {}): ApiResponse {
    note.kind = p.kind
    this.#d.metrics.failure(p.kind)
    const body = { ...p, instance: new URL(req.url, 'http://service.invalid').pathname.slice(0, 300) }
    const h: Record<string, string> = { 'content-type': 'application/problem+json', ...NO_STORE, ...headers }
    if (p.retry_after !== undefined) h['retry-after'] = String(p.retry_after)
    return { status: p.status, headers: h, body: JSON.stringify(body) + '\n' }
  }
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): ApiResponse {
  return { status, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) + '\n' }
}

/** RFC 6750 §3: the challenge of a 401 */
function challenge(p: Problem): Record<string, string> {
  return { 'www-authenticate': `Bearer realm="mailkey"${p.code === 'invalid_token' ? ', error="invalid_token"' : ''}` }
}

function decodeAccount(raw: string): string | Problem {
  let a: string
  try {
    a = decodeURIComponent(raw)
  } catch {
    return problem('bad-request', 'the account in the path is not valid percent-encoding')
  }
  return ACCOUNT.test(a) ? a : problem('bad-request', 'the path must name an account by its e-mail address')
}

interface TokenQuery {
  minTtl?: number
  sasl?: SaslMechanism
  force: boolean
}

function tokenQuery(q: URLSearchParams): TokenQuery | Problem {
  for (const k of q.keys())
    if (!['min_ttl', 'sasl', 'force_refresh'].includes(k))
      return problem('bad-request', `unknown parameter "${k.slice(0, 40)}" (min_ttl, sasl, force_refresh)`)
  const o: TokenQuery = { force: false }
  const ttl = q.get('min_ttl')
  if (ttl !== null) {
    if (!/^\d{1,6}$/.test(ttl) || Number(ttl) > MAX_MIN_TTL)
      return problem('bad-request', `min_ttl must be a whole number of seconds up to ${MAX_MIN_TTL}`)
    o.minTtl = Number(ttl)
  }
  const sasl = q.get('sasl')?.toUpperCase()
  if (sasl !== undefined) {
    if (sasl !== 'XOAUTH2' && sasl !== 'OAUTHBEARER')
      return problem('bad-request', 'sasl must be xoauth2 or oauthbearer')
    o.sasl = sasl
  }
  const f = q.get('force_refresh')
  if (f !== null) {
    if (!['1', 'true', '0', 'false'].includes(f)) return problem('bad-request', 'force_refresh must be 1 or 0')
    o.force = f === '1' || f === 'true'
  }
  return o
}

async function tokenBody(t: AccessToken, sasl: SaslMechanism | undefined, now: number): Promise<unknown> {
  const body: Record<string, unknown> = {
    account: t.account,
    access_token: t.token.reveal(),
    token_type: 'Bearer',
    ...(t.expiresAt !== undefined
      ? {
          expires_at: new Date(t.expiresAt).toISOString(),
          expires_in: Math.max(0, Math.floor((t.expiresAt - now) / 1000)),
        }
      : {}),
    ...(t.scope !== undefined ? { scope: t.scope } : {}),
    user: t.user,
    sasl_mechanism: t.sasl,
  }
  if (sasl) {
    const { encodeSasl } = await import('../sasl/index.js')
    body.sasl = { mechanism: sasl, response: encodeSasl(sasl, { user: t.user, token: t.token }).reveal() }
  }
  return body
}

/** An account's status as the API gives it: no local file paths of the service's host. */
export function publicStatus(s: AccountStatus): Record<string, unknown> {
  const { storage, ...rest } = s
  return { ...rest, storage: storage.kind === 'file' ? { kind: 'file', encrypted: storage.encrypted } : storage }
}
