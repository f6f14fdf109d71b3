// The token service's API (src/serve/api.ts) driven directly: the router, the key ring, the token
// cache and the problem mapping are the real ones; the edges are faked (an in-memory ServiceSource,
// a clock) or real but local (the key list in a FileItems of a temp dir, behind a wrapper that counts
// reads and can fail). Every answer is checked against docs/openapi.json: its status must be one
// the document lists for the path, its documented headers present, its body valid for the schema.
// The last test checks that every documented status of every path and every problem kind was seen.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Api, type ApiNote, type ApiResponse, type ServiceSource } from '../../src/serve/api.js'
import { KeyRing, addKey } from '../../src/serve/keys.js'
import { TokenCache } from '../../src/serve/token-cache.js'
import { Metrics } from '../../src/serve/metrics.js'
import { problem, type Problem } from '../../src/serve/problem.js'
import { FileItems, type ItemKind, type ItemStore } from '../../src/store/items.js'
import { resolvePaths } from '../../src/config/paths.js'
import { Secret } from '../../src/core/secret.js'
import {
  ConfigError,
  ERR,
  ReauthRequiredError,
  StoreError,
  TransientError,
  type MailkeyError,
} from '../../src/errors.js'
import { unknownAccount } from '../../src/broker/failures.js'
import type { AccessToken, GetTokenOptions } from '../../src/broker/access-token.js'
import type { AccountStatus } from '../../src/broker/accounts.js'
import { SchemaValidator, type Schema } from '../harness/json-schema.js'

const ALICE = 'alice@example.test'
const BOB = 'bob@example.test'
const REAUTH = 'reauth@example.test'
const T0 = Date.parse('2026-01-01T00:00:00Z')

const doc = JSON.parse(await readFile(new URL('../../docs/openapi.json', import.meta.url), 'utf8')) as Schema
const schemas = new SchemaValidator(doc)
const ROUTES: Record<string, string> = {
  token: '/v1/accounts/{account}/token',
  account: '/v1/accounts/{account}',
  accounts: '/v1/accounts',
  metrics: '/metrics',
  healthz: '/healthz',
  readyz: '/readyz',
}
const seen = { statuses: new Set<string>(), kinds: new Set<string>() }

/** The document's answer for a route and status: a path's (or, for 'other', a component's). */
function documented(note: ApiNote, res: ApiResponse): Schema {
  if (note.route === 'other') {
    const name = res.status === 405 ? 'MethodNotAllowed' : 'NoSuchEndpoint'
    return schemas.resolve(`#/components/responses/${name}`)
  }
  const path = ROUTES[note.route]
  assert.ok(path, `route ${note.route} is in the document`)
  const op = (doc.paths as Record<string, { get: { responses: Record<string, Schema> } }>)[path]?.get
  const r = op?.responses[String(res.status)]
  assert.ok(r, `${path} answered ${res.status}, which docs/openapi.json does not list`)
  seen.statuses.add(`${path} ${res.status}`)
  return typeof r.$ref === 'string' ? schemas.resolve(r.$ref) : r
}

/** Check an answer against the document; returns the parsed body (undefined for text). */
function conform(note: ApiNote, res: ApiResponse): Record<string, unknown> | undefined {
  const d = documented(note, res)
  for (const h of Object.keys((d.headers ?? {}) as Record<string, unknown>))
    assert.ok(res.headers[h.toLowerCase()] !== undefined, `the ${h} header of a ${res.status}`)
  const content = d.content as Record<string, { schema: Schema }>
  const type = res.headers['content-type'] ?? ''
  const media = content[type]
  assert.ok(media, `content-type ${type} is documented for ${note.route} ${res.status}`)
  if (!type.includes('json')) return undefined
  const body = JSON.parse(res.body) as Record<string, unknown>
  assert.deepEqual(schemas.errors(body, media.schema), [], `${note.route} ${res.status}: ${res.body}`)
  if (type === 'application/problem+json') {
    seen.kinds.add(String(body.kind))
    assert.equal(body.type, `urn:mailkey:problem:${String(body.kind)}`)
    assert.equal(body.status, res.status)
    assert.equal(res.headers['cache-control'], 'no-store', 'a problem is never cached')
  }
  return body
}

function status(email: string, over: Partial<AccountStatus> = {}): AccountStatus {
  return {
    email,
    provider: 'microsoft',
    clientId: 'client-id',
    flow: 'device',
    scopes: ['https://outlook.office.com/IMAP.AccessAsUser.All', 'offline_access'],
    servers: { imap: 'imaps://outlook.office365.com:993', smtp: 'smtp://smtp.office365.com:587' },
    sasl: 'XOAUTH2',
    state: 'active',
    accessToken: { present: true, valid: true, expiresAt: new Date(T0 + 3600_000).toISOString(), expiresInSec: 3600 },
    refreshToken: { present: true, receivedAt: new Date(T0).toISOString(), ageDays: 0, idleLimitDays: 90 },
    grantedAt: new Date(T0).toISOString(),
    storage: {
      kind: 'file',
      path: '/home/ops/.local/state/mailkey/accounts/x.json',
      encrypted: true,
      protection: 'file',
    },
    ...over,
  }
}

/** An in-memory mailkey: accounts, the token each hands out, and failures to throw on demand. */
class FakeSource implements ServiceSource {
  readonly accounts = new Map<string, AccountStatus>()
  readonly tokens = new Map<string, AccessToken>()
  readonly fail = new Map<string, MailkeyError | Error>()
  readonly calls: { account: string; o: GetTokenOptions }[] = []
  statusCalls = 0
  listFails: Error | undefined

  /** while set, token reads wait for it (to have several in flight at once) */
  gate: Promise<void> | undefined

  async getAccessToken(account: string, o: GetTokenOptions = {}): Promise<AccessToken> {
    this.calls.push({ account, o })
    await this.gate
    const f = this.fail.get(account)
    if (f) throw f
    const t = this.tokens.get(account.toLowerCase())
    if (!t) throw unknownAccount(account)
    return { ...t, refreshed: o.forceRefresh === true }
  }

  async status(account: string): Promise<AccountStatus> {
    this.statusCalls++
    const f = this.fail.get(account)
    if (f) throw f
    const s = this.accounts.get(account.toLowerCase())
    if (!s) throw unknownAccount(account)
    return s
  }

  async list(): Promise<{ accounts: AccountStatus[] }> {
    if (this.listFails) throw this.listFails
    return { accounts: [...this.accounts.values()] }
  }
}

/** The file items, counting the key list's reads, and failing with `down` while it is set. */
class CountingItems implements ItemStore {
  readonly inner: ItemStore
  reads = 0
  down: Error | undefined
  constructor(inner: ItemStore) {
    this.inner = inner
  }
  get where(): string {
    return this.inner.where
  }
  get shared(): boolean {
    return this.inner.shared
  }
  get(kind: ItemKind, name: string) {
    return this.inner.get(kind, name)
  }
  async list(kind: ItemKind) {
    this.reads++
    if (this.down) throw this.down
    return await this.inner.list(kind)
  }
  put(kind: ItemKind, name: string, value: Record<string, unknown>, mode: 'create' | 'replace') {
    return this.inner.put(kind, name, value, mode)
  }
  remove(kind: ItemKind, name: string) {
    return this.inner.remove(kind, name)
  }
}

const token = (account: string, expiresAt: number | undefined, value = `at-${account}`): AccessToken => ({
  account,
  token: new Secret(value),
  sasl: 'XOAUTH2',
  user: account,
  refreshed: false,
  ...(expiresAt !== undefined ? { expiresAt, scope: 'https://outlook.office.com/IMAP.AccessAsUser.All' } : {}),
})

describe('serve api (docs/openapi.json is what the API does)', () => {
  let dir: string
  let items: CountingItems
  let source: FakeSource
  let api: Api
  let cache: TokenCache
  let ready: Problem | undefined
  const clock = { now: T0 }
  const now = (): number => clock.now
  const keys: Record<string, string> = {}

  const call = async (url: string, key?: string, method = 'GET', authorization?: string) => {
    const { res, note } = await api.handle({
      method,
      url,
      ...(authorization !== undefined ? { authorization } : key ? { authorization: `Bearer ${key}` } : {}),
    })
    const body = conform(note, res)
    return { res, note, body: body ?? {}, text: res.body }
  }
  const tokenUrl = (a: string, q = ''): string => `/v1/accounts/${encodeURIComponent(a)}/token${q ? `?${q}` : ''}`
  /** another Api over the same source and items: a key ring that has read nothing yet, no token cache */
  const freshApi = (): Api =>
    new Api({
      source,
      keys: new KeyRing(async () => items, { now }),
      cache: new TokenCache(0, now),
      metrics: new Metrics(),
      ready: async () => ready,
      now,
    })
  /** `url` asked with the ops key, checked to be a 400 bad-request (`what` names the case) */
  const badRequest = async (url: string, what: string) => {
    const r = await call(url, keys.ops)
    assert.equal(r.res.status, 400, what)
    assert.equal(r.body.kind, 'bad-request', what)
    return r
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-serve-api-'))
    items = new CountingItems(new FileItems(resolvePaths({ HOME: dir, XDG_STATE_HOME: join(dir, 'state') })))
    keys.ops = (await addKey(items, 'ops', '*')).reveal()
    keys.alice = (await addKey(items, 'alice-app', [ALICE])).reveal()
    source = new FakeSource()
    source.accounts.set(ALICE, status(ALICE))
    source.accounts.set(
      BOB,
      status(BOB, {
        mailbox: 'shared@example.test',
        tenant: 'contoso',
        clientLabel: 'Thunderbird',
        refreshedAt: new Date(T0).toISOString(),
        grantedScope: 'IMAP.AccessAsUser.All',
        identity: { email: BOB, name: 'Bob', tid: 't', sub: 's', iss: 'https://login.example', names: [BOB] },
        grantHorizon: {
          at: new Date(T0 + 80 * 86_400_000).toISOString(),
          kind: 'idle',
          days: 90,
          daysLeft: 80,
          warn: false,
          message: 'm',
        },
        storage: { kind: 'shared', store: 'postgres://db.example/mailkey', encrypted: true, protection: 'store-key' },
      }),
    )
    source.accounts.set(
      REAUTH,
      status(REAUTH, {
        state: 'reauth',
        accessToken: { present: false, valid: false },
        refreshToken: { present: true },
        lastError: {
          code: ERR.REAUTH_REQUIRED,
          message: 'invalid_grant',
          oauthError: 'invalid_grant',
          providerCodes: ['AADSTS70008'],
          transient: false,
          at: T0,
          atIso: new Date(T0).toISOString(),
          meaning: 'expired',
        },
      }),
    )
    source.tokens.set(ALICE, token(ALICE, T0 + 3600_000))
    source.tokens.set(BOB, token(BOB, undefined))
    source.fail.set(REAUTH, new ReauthRequiredError(ERR.REAUTH_REQUIRED, 'the grant was revoked', { account: REAUTH }))
    cache = new TokenCache(1000, now)
    const ring = new KeyRing(async () => items, { ttlMs: 1000, missMs: 200, now })
    api = new Api({ source, keys: ring, cache, metrics: new Metrics(), ready: async () => ready, now })
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  it('GET token: the token, no-store, never a refresh token; expires_in from the clock', async () => {
    clock.now += 10_000
    const { res, body } = await call(tokenUrl(ALICE, 'min_ttl=60'), keys.ops)
    assert.equal(res.status, 200, res.body)
    assert.equal(res.headers['cache-control'], 'no-store')
    assert.equal(res.headers['content-type'], 'application/json')
    assert.deepEqual(body, {
      account: ALICE,
      access_token: `at-${ALICE}`,
      token_type: 'Bearer',
      expires_at: new Date(T0 + 3600_000).toISOString(),
      expires_in: 3590,
      scope: 'https://outlook.office.com/IMAP.AccessAsUser.All',
      user: ALICE,
      sasl_mechanism: 'XOAUTH2',
    })
    assert.deepEqual(source.calls.at(-1), { account: ALICE, o: { forceRefresh: false, minValiditySec: 60 } })
    // no expiry, no scope: the members are left out, not null
    const b = await call(tokenUrl(BOB), keys.ops)
    assert.equal(b.res.status, 200, b.text)
    assert.deepEqual(Object.keys(b.body).sort(), ['access_token', 'account', 'sasl_mechanism', 'token_type', 'user'])
    assert.deepEqual(source.calls.at(-1), { account: BOB, o: { forceRefresh: false } }, 'no min_ttl: the margin')
  })

  it('GET token ?sasl: the SASL form, in either mechanism and any case', async () => {
    const x = await call(tokenUrl(ALICE, 'sasl=xoauth2'), keys.ops)
    const s = x.body.sasl as { mechanism: string; response: string }
    assert.equal(s.mechanism, 'XOAUTH2')
    assert.equal(Buffer.from(s.response, 'base64').toString(), `user=${ALICE}\x01auth=Bearer at-${ALICE}\x01\x01`)
    const o = await call(tokenUrl(ALICE, 'sasl=OAUTHBEARER'), keys.ops)
    const so = o.body.sasl as { mechanism: string; response: string }
    assert.equal(so.mechanism, 'OAUTHBEARER')
    assert.match(Buffer.from(so.response, 'base64').toString(), /^n,a=alice@example\.test,\x01auth=Bearer at-alice/)
    assert.equal((await call(tokenUrl(ALICE), keys.ops)).body.sasl, undefined, 'no sasl member without ?sasl')
  })

  it('GET token: every bad parameter is a 400 bad-request', async () => {
    for (const q of [
      'min_ttl=86401',
      'min_ttl=-1',
      'min_ttl=soon',
      'min_ttl=1.5',
      'min_ttl=',
      'sasl=plain',
      'sasl=',
      'force_refresh=yes',
      'force_refresh=True',
      'ttl=60',
    ]) {
      const r = await badRequest(tokenUrl(ALICE, q), q)
      assert.equal(r.body.exit_code, 64)
    }
    for (const q of ['min_ttl=0', 'min_ttl=86400', 'force_refresh=0', 'force_refresh=false', 'sasl=XoAuth2'])
      assert.equal((await call(tokenUrl(ALICE, q), keys.ops)).res.status, 200, q)
  })

  it('the path must name an account: bad percent-encoding or a non-address is a 400', async () => {
    for (const p of [
      '/v1/accounts/%E0%A4%A/token',
      '/v1/accounts/%ZZ@example.test',
      '/v1/accounts/not-an-address/token',
      '/v1/accounts/a%2Fb@example.test/token',
      '/v1/accounts/a@b@example.test',
      '/v1/accounts/a%20b@example.test',
    ]) {
      const r = await badRequest(p, p)
      assert.equal(r.body.instance, p.slice(0, 300))
    }
  })

  it('GET account: the status without the file path; a dead grant is 200 with state reauth', async () => {
    const a = await call(`/v1/accounts/${ALICE}`, keys.ops)
    assert.equal(a.res.status, 200, a.text)
    assert.deepEqual(a.body.storage, { kind: 'file', encrypted: true })
    assert.ok(!a.text.includes('/home/ops'), 'no path of the service host')
    const b = await call(`/v1/accounts/${encodeURIComponent(BOB.toUpperCase())}`, keys.ops)
    assert.equal(b.res.status, 200, b.text)
    assert.equal((b.body.storage as { kind: string }).kind, 'shared')
    source.fail.delete(REAUTH)
    const r = await call(`/v1/accounts/${REAUTH}`, keys.ops)
    source.fail.set(REAUTH, new ReauthRequiredError(ERR.REAUTH_REQUIRED, 'the grant was revoked', { account: REAUTH }))
    assert.equal(r.res.status, 200, r.text)
    assert.equal(r.body.state, 'reauth')
  })

  it('GET accounts: all for an --all key, only its own for a limited one', async () => {
    const all = await call('/v1/accounts', keys.ops)
    assert.deepEqual(
      (all.body.accounts as { email: string }[]).map((a) => a.email),
      [ALICE, BOB, REAUTH],
    )
    const mine = await call('/v1/accounts/', keys.alice)
    assert.deepEqual(
      (mine.body.accounts as { email: string }[]).map((a) => a.email),
      [ALICE],
    )
  })

  it('a limited key gets 403 for any other account, existing or not, and learns nothing more', async () => {
    const before = source.statusCalls
    const calls = source.calls.length
    for (const url of [
      tokenUrl(BOB),
      tokenUrl('nobody@example.test'),
      `/v1/accounts/${BOB}`,
      '/v1/accounts/nobody@example.test',
    ]) {
      const r = await call(url, keys.alice)
      assert.equal(r.res.status, 403, url)
      assert.equal(r.body.kind, 'not-allowed')
      assert.equal(r.body.exit_code, 78)
      assert.ok(!r.text.includes('no account'), 'not a word on whether it exists')
    }
    assert.equal(source.statusCalls, before, 'the store was not even asked')
    assert.equal(source.calls.length, calls)
    assert.equal((await call(tokenUrl(ALICE.toUpperCase()), keys.alice)).res.status, 200, 'its own, in any case')
  })

  it('an --all key gets 404 unknown-account for an account the store does not have', async () => {
    for (const url of [tokenUrl('nobody@example.test'), '/v1/accounts/nobody@example.test']) {
      const r = await call(url, keys.ops)
      assert.equal(r.res.status, 404, url)
      assert.equal(r.body.kind, 'unknown-account')
      assert.equal(r.body.account, 'nobody@example.test')
      assert.equal(r.body.code, ERR.ACCOUNT_UNKNOWN)
    }
  })

  it('401: no key, a wrong key, another scheme; the challenge says which (RFC 6750)', async () => {
    for (const url of [tokenUrl(ALICE), `/v1/accounts/${ALICE}`, '/v1/accounts', '/metrics']) {
      const none = await call(url)
      assert.equal(none.res.status, 401, url)
      assert.equal(none.res.headers['www-authenticate'], 'Bearer realm="mailkey"')
      assert.equal(none.body.kind, 'unauthorized')
    }
    const wrong = await call(tokenUrl(ALICE), `mk_${'A'.repeat(43)}`)
    assert.equal(wrong.res.status, 401)
    assert.equal(wrong.res.headers['www-authenticate'], 'Bearer realm="mailkey", error="invalid_token"')
    const alien = await call(tokenUrl(ALICE), 'not-a-mailkey-key')
    assert.equal(alien.res.status, 401)
    const basic = await call(tokenUrl(ALICE), undefined, 'GET', `Basic ${Buffer.from('a:b').toString('base64')}`)
    assert.equal(basic.res.status, 401)
    assert.equal(basic.res.headers['www-authenticate'], 'Bearer realm="mailkey"')
    const lower = await call(tokenUrl(ALICE), undefined, 'GET', `bearer ${keys.ops}`)
    assert.equal(lower.res.status, 200, 'the scheme is case-insensitive')
    for (const r of [wrong, alien, basic]) assert.ok(!r.text.includes(keys.ops as string))
  })

  it('409 needs-sign-in with the command; 503 with Retry-After; 500 without internals', async () => {
    const r = await call(tokenUrl(REAUTH), keys.ops)
    assert.equal(r.res.status, 409, r.text)
    assert.equal(r.body.kind, 'needs-sign-in')
    assert.equal(r.body.command, `mailkey add ${REAUTH}`)
    assert.equal(r.body.exit_code, 77)
    assert.equal(r.body.account, REAUTH)
    source.fail.set(ALICE, new TransientError(ERR.OAUTH_TRANSIENT, 'the provider said later', { retryAfterSec: 7 }))
    const t = await call(tokenUrl(ALICE, 'force_refresh=1'), keys.ops)
    assert.equal(t.res.status, 503, t.text)
    assert.equal(t.res.headers['retry-after'], '7')
    assert.equal(t.body.retry_after, 7)
    assert.equal(t.body.exit_code, 75)
    source.fail.set(ALICE, new StoreError(ERR.STORE_UNAVAILABLE, 'the store did not answer'))
    const s = await call(`/v1/accounts/${ALICE}`, keys.ops)
    assert.equal(s.res.status, 503, s.text)
    assert.equal(s.res.headers['retry-after'], '5', 'the default wait')
    source.fail.set(ALICE, new Error('boom at /srv/secret/place'))
    for (const url of [tokenUrl(ALICE, 'force_refresh=1'), `/v1/accounts/${ALICE}`]) {
      const f = await call(url, keys.ops)
      assert.equal(f.res.status, 500, f.text)
      assert.equal(f.body.detail, 'internal error')
      assert.equal(f.body.exit_code, 70)
      assert.ok(!f.text.includes('/srv/secret'))
    }
    source.fail.set(ALICE, new ConfigError(ERR.CONFIG_INVALID, 'config.toml is broken'))
    const c = await call(tokenUrl(ALICE, 'force_refresh=1'), keys.ops)
    assert.equal(c.res.status, 500)
    assert.equal(c.body.exit_code, 78)
    assert.equal(c.body.code, ERR.CONFIG_INVALID)
    source.fail.delete(ALICE)
    source.listFails = new StoreError(ERR.STORE_UNAVAILABLE, 'down')
    assert.equal((await call('/v1/accounts', keys.ops)).res.status, 503)
    source.listFails = new Error('boom')
    assert.equal((await call('/v1/accounts', keys.ops)).res.status, 500)
    const m = await call('/metrics', keys.ops)
    assert.equal(m.res.status, 200, 'metrics without the account gauges when the list fails')
    assert.doesNotMatch(m.text, /mailkey_accounts\{/)
    source.listFails = undefined
  })

  it('metrics: Prometheus text, no-store, account gauges only for the key’s accounts', async () => {
    const m = await call('/metrics', keys.alice)
    assert.equal(m.res.status, 200)
    assert.equal(m.res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
    assert.equal(m.res.headers['cache-control'], 'no-store')
    assert.match(m.text, /^mailkey_access_token_expiry_seconds\{account="alice@example\.test"\} -?\d+$/m)
    assert.doesNotMatch(m.text, /bob@example|reauth@example/)
    assert.match(m.text, /^mailkey_serve_failures_total\{kind="not-allowed"\} \d+$/m)
    for (const k of Object.values(keys)) assert.ok(!m.text.includes(k))
    const all = await call('/metrics', keys.ops)
    assert.match(all.text, /^mailkey_accounts_needing_sign_in 1$/m)
    // request counts (server.ts records them): a key for some accounts sees its own only
    const mm = new Metrics()
    mm.request('token', 200, 'ops', 0.01)
    mm.request('token', 200, 'alice-app', 0.01)
    const own = mm.render(undefined, T0, 'alice-app')
    assert.match(own, /^mailkey_serve_requests_total\{route="token",status="200",key="alice-app"\} 1$/m)
    assert.doesNotMatch(own, /key="ops"/)
    assert.match(mm.render(undefined, T0), /key="ops"/, 'an --all key sees every key')
  })

  it('healthz and readyz need no key; readyz says 503 not ready (Retry-After), never why', async () => {
    const h = await call('/healthz')
    assert.deepEqual([h.res.status, h.body], [200, { status: 'ok' }])
    assert.deepEqual((await call('/readyz')).body, { status: 'ready' })
    ready = problem('unavailable', 'this replica is stopping', { retry_after: 1 })
    const r = await call('/readyz')
    assert.equal(r.res.status, 503)
    assert.equal(r.res.headers['retry-after'], '1')
    ready = problem('failed', 'the store has no schema', { exit_code: 78, code: ERR.STORE_SCHEMA })
    const f = await call('/readyz')
    assert.equal(f.res.status, 503, 'any reason is "not ready" to a caller without a key')
    assert.equal(f.body.detail, 'not ready')
    assert.ok(!f.text.includes('schema'), 'the reason goes to the log only')
    ready = undefined
  })

  it('HEAD is GET without a body (server.ts drops it); other methods get 405 with Allow', async () => {
    for (const url of ['/healthz', tokenUrl(ALICE), '/v1/accounts']) {
      const g = await call(url, keys.ops)
      const h = await call(url, keys.ops, 'HEAD')
      assert.equal(h.res.status, g.res.status, url)
      assert.equal(h.res.headers['content-type'], g.res.headers['content-type'])
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      const r = await call(tokenUrl(ALICE), keys.ops, method)
      assert.equal(r.res.status, 405, method)
      assert.equal(r.res.headers.allow, 'GET, HEAD')
      assert.equal(r.body.kind, 'method-not-allowed')
    }
    const before = source.calls.length
    const forced = await call(tokenUrl(ALICE, 'force_refresh=1'), keys.ops, 'HEAD')
    assert.equal(forced.res.status, 400, 'HEAD must not refresh')
    assert.equal(source.calls.length, before, 'nothing reached the source')
    const unknown = await call('/v2/accounts')
    assert.equal(unknown.res.status, 404, 'an unknown path, before any key')
    assert.equal(unknown.body.kind, 'not-found')
    assert.equal((await call('/v1/accounts/a@b.test/token/extra', keys.ops)).res.status, 404)
  })

  it('requests that miss the cache at once share one read of the store; without a cache each reads', async () => {
    clock.now += 60_000 // past the cache's ttl
    let open!: () => void
    source.gate = new Promise((r) => (open = r))
    const before = source.calls.length
    const pending = Array.from({ length: 10 }, () => call(tokenUrl(ALICE), keys.ops))
    await new Promise((r) => setImmediate(r))
    open()
    const answers = await Promise.all(pending)
    source.gate = undefined
    for (const a of answers) assert.equal(a.res.status, 200, a.text)
    assert.equal(source.calls.length - before, 1, 'one read for ten requests')
    const uncached = freshApi()
    const n = source.calls.length
    await Promise.all(
      Array.from({ length: 4 }, () =>
        uncached.handle({ method: 'GET', url: tokenUrl(ALICE), authorization: `Bearer ${keys.ops}` }),
      ),
    )
    assert.equal(source.calls.length - n, 4, '--cache-ms 0: every request reads the store')
  })

  it('the cache: a token is reused within its ttl and with min_ttl left, never for force_refresh', async () => {
    const c = new TokenCache(1000, now)
    const t = token(ALICE, clock.now + 600_000)
    c.put('a', t)
    assert.equal(c.get('a', 300), t, 'hit')
    assert.equal(c.get('a', 601), undefined, 'less than min_ttl left')
    clock.now += 999
    assert.equal(c.get('a', 300), t, 'still within the ttl')
    clock.now += 1
    assert.equal(c.get('a', 300), undefined, 'the ttl passed')
    c.put('b', token(BOB, undefined))
    assert.equal(c.get('b', 0), undefined, 'a token of unknown expiry is never reused')
    const off = new TokenCache(0, now)
    off.put('a', t)
    assert.equal(off.get('a', 0), undefined, 'ttl 0: never')
    // through the API: one source call for two requests, then force_refresh goes to the source every time
    clock.now += 5000
    source.tokens.set(ALICE, token(ALICE, clock.now + 3600_000))
    const n = source.calls.length
    const first = await call(tokenUrl(ALICE, 'min_ttl=60'), keys.ops)
    const second = await call(tokenUrl(ALICE, 'min_ttl=60'), keys.ops)
    assert.deepEqual([first.note.source, second.note.source], ['store', 'memory'])
    assert.equal(source.calls.length, n + 1)
    const forced = [await call(tokenUrl(ALICE, 'force_refresh=1'), keys.ops)]
    forced.push(await call(tokenUrl(ALICE, 'force_refresh=true'), keys.ops))
    assert.deepEqual(
      forced.map((f) => f.note.source),
      ['refreshed', 'refreshed'],
    )
    assert.equal(source.calls.length, n + 3)
    assert.equal(source.calls.at(-1)?.o.forceRefresh, true)
    const long = await call(tokenUrl(ALICE, `min_ttl=${3600 + 1}`), keys.ops)
    assert.equal(long.note.source, 'store', 'the cached token has less than min_ttl left: asked again')
  })

  it('keys: a removed key is refused after ttlMs, a new one is seen, wrong keys cost one read per missMs', async () => {
    const ring = new KeyRing(async () => items, { ttlMs: 1000, missMs: 200, now })
    assert.equal((await ring.check(keys.alice as string))?.name, 'alice-app')
    const temp = (await addKey(items, 'temp', [ALICE])).reveal()
    assert.equal(await ring.check(temp), undefined, 'not within missMs of the last read')
    clock.now += 200
    assert.equal((await ring.check(temp))?.name, 'temp', 'a new key is seen once missMs passed')
    assert.ok(await items.remove('api-key', 'temp'))
    clock.now += 999
    assert.equal((await ring.check(temp))?.name, 'temp', 'still trusted within ttlMs')
    clock.now += 1
    assert.equal(await ring.check(temp), undefined, 'refused once ttlMs passed')
    const reads = items.reads
    for (let i = 0; i < 50; i++) assert.equal(await ring.check(`mk_wrong${i}`), undefined)
    assert.equal(items.reads, reads, 'no read within missMs of the last one')
    clock.now += 200
    for (let i = 0; i < 50; i++) await ring.check(`mk_wrong${i}`)
    assert.equal(items.reads, reads + 1, 'one read for 50 wrong keys once missMs passed')
    for (let i = 0; i < 20; i++) {
      clock.now += 50
      await ring.check(`mk_again${i}`)
    }
    assert.equal(items.reads, reads + 1 + 5, 'at most one read per missMs (1000 ms / 200 ms)')
    await ring.check(`x${'A'.repeat(43)}`)
    assert.equal(items.reads, reads + 6, 'not a mailkey key: no read at all')
  })

  it('the store down while checking a key: the last list read counts, else 503, not 401; unusable: 500 without its path', async () => {
    clock.now += 5000
    items.down = new StoreError(ERR.STORE_UNAVAILABLE, 'postgres://db.example did not answer')
    // a replica that read the keys before keeps that list while the store is unreachable (its host
    // cache serves tokens meanwhile): the key still counts
    const kept = await call(`/v1/accounts/${ALICE}`, keys.ops)
    assert.equal(kept.res.status, 200, kept.text)
    // one that never read them cannot tell a key from a guess: 503, not 401
    const savedApi = api
    api = freshApi()
    try {
      for (const url of [tokenUrl(ALICE), '/v1/accounts', '/metrics', `/v1/accounts/${ALICE}`]) {
        const r = await call(url, keys.ops)
        assert.equal(r.res.status, 503, `${url}: ${r.text}`)
        assert.equal(r.body.kind, 'unavailable')
        assert.ok(r.res.headers['retry-after'])
      }
    } finally {
      api = savedApi
    }
    items.down = undefined
    const file = items.inner.where
    const saved = await readFile(file, 'utf8')
    await writeFile(file, 'not json')
    try {
      for (const url of [tokenUrl(ALICE), '/v1/accounts', '/metrics', `/v1/accounts/${ALICE}`]) {
        const r = await call(url, keys.ops)
        assert.equal(r.res.status, 500, `${url}: ${r.text}`)
        assert.equal(r.body.kind, 'failed')
        assert.ok(!r.text.includes(dir), `no path of the service host: ${r.text}`)
      }
    } finally {
      await writeFile(file, saved)
    }
    assert.equal((await call(tokenUrl(ALICE), keys.ops)).res.status, 200, 'and back')
  })

  it('every status the document lists for a path, and every problem kind, was seen above', () => {
    const listed: string[] = []
    for (const [path, item] of Object.entries(doc.paths as Record<string, { get: { responses: object } }>))
      for (const s of Object.keys(item.get.responses)) listed.push(`${path} ${s}`)
    assert.deepEqual(listed.filter((l) => !seen.statuses.has(l)).sort(), [])
    const kinds = (schemas.resolve('#/components/schemas/ProblemKind').enum as string[]).slice().sort()
    assert.deepEqual([...seen.kinds].sort(), kinds)
  })
})
