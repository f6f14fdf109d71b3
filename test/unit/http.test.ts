/**
 * The HTTP edge: Retry-After parsing, endpoint checks, JWT claim decoding, and the response
 * pre-processing that requestKit() puts in front of oauth4webapi (driven with a fake fetch).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as oauth from 'oauth4webapi'

import { ConfigError, ERR, TransientError } from '../../src/errors.js'
import {
  MAX_RESPONSE_BYTES,
  authorizationServer,
  checkEndpoint,
  clientAuth,
  decodeJwtClaims,
  isLoopbackHost,
  parseRetryAfter,
  requestKit,
  safeHost,
  usesPlainHttp,
} from '../../src/oauth/http.js'
import type { AccountSettings } from '../../src/domain/account.js'

const ACCOUNT = 'someone@example.com'
const TOKEN_URL = 'https://login.example.com/oauth2/token'

function settings(over: Partial<AccountSettings> = {}): AccountSettings {
  return {
    email: ACCOUNT,
    provider: 'custom',
    clientId: 'x',
    scopes: ['mail'],
    endpoints: { token: TOKEN_URL },
    servers: {},
    sasl: 'XOAUTH2',
    flow: 'device',
    ...over,
  }
}

const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')
const jwt = (claims: unknown): string => `${b64url({ alg: 'none' })}.${b64url(claims)}.c2ln`

type FetchArgs = [string, RequestInit]
type KitFetch = (url: string, init: RequestInit) => Promise<Response>

/** The kit's wrapped fetch, with a fake underneath that answers `res` and records its calls. */
function kitWith(res: () => Response | Promise<Response>, over: Partial<AccountSettings> = {}) {
  const calls: FetchArgs[] = []
  const fake = (async (url: string, init: RequestInit) => {
    calls.push([url, init])
    return res()
  }) as unknown as typeof fetch
  const kit = requestKit(settings(over), { account: ACCOUNT, fetch: fake })
  const call = kit.options[oauth.customFetch] as unknown as KitFetch
  return {
    kit,
    calls,
    fetch: (url = TOKEN_URL) =>
      call(url, { method: 'POST', headers: { accept: 'application/json' }, body: 'grant_type=x' }),
  }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (e) {
    return e
  }
  assert.fail('expected a rejection')
}

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-22T10:00:00Z')

  it('reads delay-seconds', () => {
    assert.equal(parseRetryAfter('7', now), 7)
    assert.equal(parseRetryAfter('0', now), 0)
    assert.equal(parseRetryAfter(' 120 ', now), 120)
  })

  it('reads an IMF-fixdate relative to now', () => {
    assert.equal(parseRetryAfter('Sun, 22 Nov 2026 10:01:30 GMT', now), 90)
  })

  it('reads the obsolete HTTP-date formats (RFC 9110 §5.6.7)', () => {
    assert.equal(parseRetryAfter('Sunday, 22-Nov-26 10:00:10 GMT', now), 10)
    // asctime has no zone; only check that it is read as a date at all
    assert.equal(typeof parseRetryAfter('Sun Nov 22 10:00:20 2026', now), 'number')
  })

  it('a date in the past means now', () => {
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', now), 0)
  })

  it('ignores missing and junk values', () => {
    for (const v of [null, '', '   ', 'soon', 'junk 12', '-5', '1.5', '7s', 'abc 2020', 'tomorrow']) {
      assert.equal(parseRetryAfter(v, now), undefined, JSON.stringify(v))
    }
  })
})

describe('checkEndpoint / isLoopbackHost', () => {
  it('accepts https anywhere', () => {
    const u = checkEndpoint('https://login.example.com/token', 'token endpoint')
    assert.ok(u instanceof URL)
    assert.equal(u.host, 'login.example.com')
    assert.equal(checkEndpoint('https://127.0.0.1:8443/t', 'x').port, '8443')
  })

  it('accepts plain http only for loopback hosts', () => {
    for (const url of [
      'http://127.0.0.1:8080/token',
      'http://[::1]:8080/token',
      'http://localhost/token',
      'http://LOCALHOST:1/t',
      'http://127.8.9.10/t',
    ]) {
      assert.equal(checkEndpoint(url, 'token endpoint').protocol, 'http:', url)
    }
  })

  it('refuses plain http elsewhere with INSECURE_ENDPOINT', () => {
    for (const url of [
      'http://login.example.com/token',
      'http://10.0.0.1/t',
      'http://localhost.example.com/t',
      'http://127.0.0.1.nip.io/t',
      'http://[::2]/t',
      'ftp://127.0.0.1/t',
    ]) {
      assert.throws(
        () => checkEndpoint(url, 'token endpoint', ACCOUNT),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError, url)
          assert.equal(e.code, ERR.INSECURE_ENDPOINT)
          assert.equal(e.exitCode, 78)
          assert.equal(e.account, ACCOUNT)
          assert.ok(e.message.includes(url) && e.message.includes('token endpoint'), e.message)
          return true
        },
      )
    }
  })

  it('refuses what is not a URL with CONFIG_INVALID', () => {
    assert.throws(
      () => checkEndpoint('login.example.com/token', 'issuer'),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError)
        assert.equal(e.code, ERR.CONFIG_INVALID)
        assert.match(e.message, /issuer "login\.example\.com\/token" is not a valid URL/)
        return true
      },
    )
  })

  it('isLoopbackHost', () => {
    for (const h of ['127.0.0.1', '127.255.255.254', '::1', '[::1]', 'localhost', 'LocalHost'])
      assert.equal(isLoopbackHost(h), true, h)
    for (const h of [
      '128.0.0.1',
      '127.0.0',
      '127.0.0.1.example.com',
      'localhost.example.com',
      '::2',
      '0.0.0.0',
      'example.com',
      '',
    ])
      assert.equal(isLoopbackHost(h), false, h)
  })
})

describe('authorizationServer / clientAuth / usesPlainHttp', () => {
  it('builds the server object from the endpoints', () => {
    const as = authorizationServer(
      settings({
        endpoints: {
          token: TOKEN_URL,
          authorization: 'https://login.example.com/authorize',
          deviceAuthorization: 'https://login.example.com/device',
          revocation: 'https://login.example.com/revoke',
        },
      }),
    )
    assert.equal(as.issuer, 'https://login.example.com')
    assert.equal(as.token_endpoint, TOKEN_URL)
    assert.equal(as.authorization_endpoint, 'https://login.example.com/authorize')
    assert.equal(as.device_authorization_endpoint, 'https://login.example.com/device')
    assert.equal(as.revocation_endpoint, 'https://login.example.com/revoke')
    assert.equal(
      authorizationServer(settings({ endpoints: { token: TOKEN_URL, issuer: 'https://issuer.example.com' } })).issuer,
      'https://issuer.example.com',
    )
  })

  it('refuses an insecure token endpoint', () => {
    assert.throws(
      () => authorizationServer(settings({ endpoints: { token: 'http://login.example.com/token' } })),
      (e: unknown) => e instanceof ConfigError && e.code === ERR.INSECURE_ENDPOINT,
    )
  })

  it('refuses an insecure device, authorization or revocation endpoint next to an https token endpoint', () => {
    // one http endpoint turns on allowInsecureRequests for all of them, so each must be checked
    for (const k of ['deviceAuthorization', 'authorization', 'revocation'] as const) {
      const s = settings({ endpoints: { token: TOKEN_URL, [k]: 'http://idp.example.com/x' } })
      assert.equal(usesPlainHttp(s), true)
      assert.throws(
        () => authorizationServer(s),
        (e: unknown) => e instanceof ConfigError && e.code === ERR.INSECURE_ENDPOINT,
        k,
      )
    }
  })

  it('allows a loopback test server over http', () => {
    const s = settings({
      endpoints: { token: 'http://127.0.0.1:9000/token', deviceAuthorization: 'http://127.0.0.1:9000/device' },
    })
    assert.equal(authorizationServer(s).device_authorization_endpoint, 'http://127.0.0.1:9000/device')
    assert.equal(usesPlainHttp(s), true)
    assert.equal(requestKit(s, { account: ACCOUNT }).options[oauth.allowInsecureRequests], true)
    assert.equal(requestKit(settings(), { account: ACCOUNT }).options[oauth.allowInsecureRequests], undefined)
    assert.equal(usesPlainHttp(settings()), false)
  })

  it('clientAuth: none without a secret, post by default, basic on request', () => {
    // the ClientAuth functions are opaque; compare with the library's own
    assert.equal(clientAuth(settings()).toString(), oauth.None().toString())
    assert.equal(clientAuth(settings({ clientSecret: 's' })).toString(), oauth.ClientSecretPost('s').toString())
    assert.equal(
      clientAuth(settings({ clientSecret: 's', clientAuth: 'basic' })).toString(),
      oauth.ClientSecretBasic('s').toString(),
    )
    assert.notEqual(oauth.ClientSecretPost('s').toString(), oauth.ClientSecretBasic('s').toString())
  })

  it('safeHost', () => {
    assert.equal(safeHost('https://login.example.com:8443/x'), 'login.example.com:8443')
    assert.equal(safeHost('not a url'), 'the server')
  })
})

describe('decodeJwtClaims', () => {
  it('decodes the payload without checking the signature', () => {
    assert.deepEqual(decodeJwtClaims(jwt({ email: 'u@example.com', tid: 't' })), { email: 'u@example.com', tid: 't' })
    assert.deepEqual(decodeJwtClaims(`${b64url({})}.${b64url({ a: 1 })}.`), { a: 1 })
  })

  it('returns undefined for anything that is not a JWT with an object payload', () => {
    for (const v of [
      '',
      'abc',
      'a.',
      `a.${Buffer.from('not json').toString('base64url')}.c`,
      `a.${b64url(42)}.c`,
      `a.${b64url(null)}.c`,
      `a.${b64url('str')}.c`,
      `a.${b64url([1, 2])}.c`,
    ]) {
      assert.equal(decodeJwtClaims(v), undefined, v)
    }
  })
})

describe('requestKit: response pre-processing', () => {
  it('passes the request through with a timeout signal and no redirects', async () => {
    const { fetch, calls } = kitWith(() => Response.json({ access_token: 'a', token_type: 'Bearer' }))
    await fetch()
    assert.equal(calls.length, 1)
    const [url, init] = calls[0] as FetchArgs
    assert.equal(url, TOKEN_URL)
    assert.equal(init.method, 'POST')
    assert.equal(init.redirect, 'manual')
    assert.ok(init.signal instanceof AbortSignal)
    assert.equal(init.body, 'grant_type=x')
  })

  it('503 text/html -> TransientError with status 503', async () => {
    const { fetch } = kitWith(
      () =>
        new Response('<html><body>Service Unavailable</body></html>', {
          status: 503,
          headers: { 'content-type': 'text/html' },
        }),
    )
    const e = await rejection(fetch())
    assert.ok(e instanceof TransientError)
    assert.equal(e.code, ERR.OAUTH_TRANSIENT)
    assert.equal(e.status, 503)
    assert.equal(e.exitCode, 75)
    assert.equal(e.account, ACCOUNT)
    assert.match(e.message, /^login\.example\.com answered HTTP 503 with an HTML page/)
    assert.ok(e.message.includes(ACCOUNT))
    assert.ok(!e.message.includes('<'))
  })

  it('429 with Retry-After: 7 -> TransientError retryAfterSec 7', async () => {
    const { fetch } = kitWith(() => new Response('slow down', { status: 429, headers: { 'retry-after': '7' } }))
    const e = await rejection(fetch())
    assert.ok(e instanceof TransientError)
    assert.equal(e.retryAfterSec, 7)
    assert.equal(e.status, 429)
    assert.match(e.message, /too many requests/)
  })

  it('408, 500, 502 and an empty 504 are transient too; a non-JSON 400 is passed on', async () => {
    for (const status of [408, 500, 502, 504]) {
      const e = await rejection(kitWith(() => new Response(status === 504 ? null : 'x', { status })).fetch())
      assert.ok(e instanceof TransientError, String(status))
      assert.equal(e.status, status)
      assert.equal(e.retryAfterSec, undefined)
    }
    const res = await kitWith(() => new Response('bad', { status: 400 })).fetch()
    assert.equal(res.status, 400)
    assert.equal(await res.text(), 'bad')
  })

  it('a JSON error with a 5xx status is passed on, not thrown, with Retry-After remembered', async () => {
    const { fetch } = kitWith(() =>
      Response.json({ error: 'temporarily_unavailable' }, { status: 503, headers: { 'retry-after': '30' } }),
    )
    const res = await fetch()
    assert.equal(res.status, 503)
    assert.deepEqual(await res.json(), { error: 'temporarily_unavailable' })
  })

  it('a 200 with an id_token: the id_token is removed and its claims kept as identity', async () => {
    const idToken = jwt({
      email: 'user@contoso.example',
      name: 'User',
      tid: 'tenant-1',
      sub: 'sub-1',
      iss: 'https://login.example.com/tenant-1/v2.0',
      oid: 'x',
    })
    const { fetch, kit } = kitWith(() =>
      Response.json({ access_token: 'at', token_type: 'Bearer', expires_in: 3599, id_token: idToken }),
    )
    assert.equal(kit.identity(), undefined)
    const res = await fetch()
    const body = (await res.json()) as Record<string, unknown>
    assert.equal('id_token' in body, false)
    assert.equal(body.access_token, 'at')
    assert.equal(res.headers.get('content-type'), 'application/json')
    assert.deepEqual(kit.identity(), {
      email: 'user@contoso.example',
      name: 'User',
      tid: 'tenant-1',
      sub: 'sub-1',
      iss: 'https://login.example.com/tenant-1/v2.0',
    })
  })

  it('identity falls back to preferred_username, then upn', async () => {
    const a = kitWith(() =>
      Response.json({
        access_token: 'at',
        token_type: 'Bearer',
        id_token: jwt({ preferred_username: 'pu@example.com', upn: 'upn@example.com' }),
      }),
    )
    await a.fetch()
    assert.equal(a.kit.identity()?.email, 'pu@example.com')
    const b = kitWith(() =>
      Response.json({ access_token: 'at', token_type: 'Bearer', id_token: jwt({ upn: 'upn@example.com', tid: 7 }) }),
    )
    await b.fetch()
    assert.deepEqual(b.kit.identity(), { email: 'upn@example.com' })
  })

  it('an id_token that is not a JWT is still removed, and sets no identity', async () => {
    const { fetch, kit } = kitWith(() =>
      Response.json({ access_token: 'at', token_type: 'Bearer', id_token: 'fake-id-token-for-fixture' }),
    )
    const body = (await (await fetch()).json()) as Record<string, unknown>
    assert.equal('id_token' in body, false)
    assert.equal(kit.identity(), undefined)
  })

  it('the processed response passes oauth4webapi with no id_token checks', async () => {
    const { kit } = kitWith(() =>
      Response.json({
        access_token: 'at',
        token_type: 'Bearer',
        expires_in: '3599',
        id_token: jwt({ email: 'u@example.com', iss: 'https://other.example.com' }),
      }),
    )
    const as = authorizationServer(settings())
    const res = await oauth.refreshTokenGrantRequest(as, { client_id: 'x' }, oauth.None(), 'rt', kit.options)
    const out = await oauth.processRefreshTokenResponse(as, { client_id: 'x' }, res)
    assert.equal(out.access_token, 'at')
    assert.equal(out.expires_in, 3599)
    assert.equal(out.id_token, undefined)
    assert.equal(kit.identity()?.email, 'u@example.com')
  })

  it("Google's verification_url becomes verification_uri", async () => {
    const { fetch } = kitWith(() =>
      Response.json({
        device_code: 'd',
        user_code: 'U',
        verification_url: 'https://www.google.com/device',
        expires_in: 1800,
        interval: 5,
      }),
    )
    const body = (await (await fetch()).json()) as Record<string, unknown>
    assert.equal(body.verification_uri, 'https://www.google.com/device')
  })

  it('an existing verification_uri is not overwritten', async () => {
    const { fetch } = kitWith(() =>
      Response.json({ verification_url: 'https://a.example/', verification_uri: 'https://b.example/' }),
    )
    const body = (await (await fetch()).json()) as Record<string, unknown>
    assert.equal(body.verification_uri, 'https://b.example/')
  })

  it('string expires_in and interval become numbers; junk strings are left alone', async () => {
    const { fetch } = kitWith(() =>
      Response.json({ access_token: 'a', token_type: 'Bearer', expires_in: '3599', interval: '5' }),
    )
    const body = (await (await fetch()).json()) as Record<string, unknown>
    assert.equal(body.expires_in, 3599)
    assert.equal(body.interval, 5)
    const junk = (await (
      await kitWith(() => Response.json({ expires_in: '1h', interval: '-1' })).fetch()
    ).json()) as Record<string, unknown>
    assert.equal(junk.expires_in, '1h')
    assert.equal(junk.interval, '-1')
  })

  it('the Google device fixture shape passes processDeviceAuthorizationResponse', async () => {
    const { kit } = kitWith(() =>
      Response.json({
        device_code: 'd',
        user_code: 'U',
        verification_url: 'https://www.google.com/device',
        expires_in: '1800',
        interval: 5,
      }),
    )
    const as = { ...authorizationServer(settings()), device_authorization_endpoint: 'https://login.example.com/device' }
    const res = await oauth.deviceAuthorizationRequest(
      as,
      { client_id: 'x' },
      oauth.None(),
      new URLSearchParams({ scope: 's' }),
      kit.options,
    )
    const out = await oauth.processDeviceAuthorizationResponse(as, { client_id: 'x' }, res)
    assert.equal(out.verification_uri, 'https://www.google.com/device')
    assert.equal(out.expires_in, 1800)
  })

  it('a body over 1 MiB is rejected, whether announced or streamed', async () => {
    const big = 'x'.repeat(MAX_RESPONSE_BYTES + 1)
    const streamed = await rejection(kitWith(() => new Response(big)).fetch())
    assert.ok(streamed instanceof Error)
    assert.match(streamed.message, /larger than/)
    const announced = await rejection(
      kitWith(() => new Response('{}', { headers: { 'content-length': String(2 * MAX_RESPONSE_BYTES) } })).fetch(),
    )
    assert.ok(announced instanceof Error)
    assert.match(announced.message, /too large/)
    // exactly the limit is fine
    const ok = await kitWith(() => new Response('y'.repeat(MAX_RESPONSE_BYTES))).fetch()
    assert.equal((await ok.text()).length, MAX_RESPONSE_BYTES)
  })

  it('non-JSON success bodies and JSON arrays are passed on as text', async () => {
    const res = await kitWith(() => new Response('[1,2]', { headers: { 'content-type': 'application/json' } })).fetch()
    assert.equal(await res.text(), '[1,2]')
    const empty = await kitWith(() => new Response(null, { status: 200 })).fetch()
    assert.equal(await empty.text(), '')
  })

  it('drops content-length and content-encoding of the original response', async () => {
    const res = await kitWith(
      () =>
        new Response('{"a":1}', {
          headers: { 'content-type': 'application/json', 'content-encoding': 'identity', 'x-keep': '1' },
        }),
    ).fetch()
    assert.equal(res.headers.get('content-encoding'), null)
    assert.equal(res.headers.get('x-keep'), '1')
  })

  it('dispose() aborts requests in flight', async () => {
    let seen: AbortSignal | undefined
    const hang = ((_url: string, init: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        seen = init.signal ?? undefined
        init.signal?.addEventListener('abort', () => reject(init.signal?.reason), { once: true })
      })) as unknown as typeof fetch
    const kit = requestKit(settings(), { account: ACCOUNT, fetch: hang })
    const p = (kit.options[oauth.customFetch] as unknown as KitFetch)(TOKEN_URL, {})
    await new Promise((r) => setImmediate(r))
    kit.dispose()
    await rejection(p)
    assert.equal(seen?.aborted, true)
  })

  it('times out with a TimeoutError after timeoutMs', async () => {
    const hang = ((_url: string, init: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        init.signal?.addEventListener('abort', () => reject(init.signal?.reason), { once: true })
      })) as unknown as typeof fetch
    const kit = requestKit(settings(), { account: ACCOUNT, fetch: hang, timeoutMs: 5 })
    const e = await rejection((kit.options[oauth.customFetch] as unknown as KitFetch)(TOKEN_URL, {}))
    assert.equal((e as { name?: string }).name, 'TimeoutError')
  })
})

describe('server text entering through requestKit (issue 11, items 8 and 10)', () => {
  const RT = 'refresh-token-value-0123456789abcdefghij'
  const SECRET = 'client-secret-value-0123456789ABCDEF'
  const AT = 'access-token-value-0123456789abcdefghij'

  async function answer(body: unknown, init: RequestInit): Promise<Record<string, unknown>> {
    const fake = (async () =>
      new Response(JSON.stringify(body), {
        status: 400,
        headers: { 'content-type': 'application/json' },
      })) as unknown as typeof fetch
    const { Secret } = await import('../../src/core/secret.js')
    const kit = requestKit(settings({ clientSecret: SECRET, clientAuth: 'basic' }), {
      account: ACCOUNT,
      fetch: fake,
      secrets: [new Secret(AT)],
    })
    const call = kit.options[oauth.customFetch] as unknown as KitFetch
    return (await (await call(TOKEN_URL, init)).json()) as Record<string, unknown>
  }

  it("every known secret is removed from error texts: the request's, the client secret, the caller's", async () => {
    const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: RT })
    const basic = `Basic ${Buffer.from(`x:${encodeURIComponent(SECRET)}`).toString('base64')}`
    const j = await answer(
      {
        error: 'invalid_grant',
        error_description: `refresh token ${RT} unknown; secret ${SECRET}; access ${AT.slice(0, 24)}`,
        error_uri: `https://x/?t=${RT}`,
      },
      { method: 'POST', body, headers: { authorization: basic } },
    )
    for (const v of [RT, SECRET, AT.slice(0, 24)]) assert.ok(!JSON.stringify(j).includes(v), JSON.stringify(j))
    assert.equal(j.error_description, 'refresh token [redacted] unknown; secret [redacted]; access [redacted]')
  })

  it('controls are stripped from every text member, never from tokens', async () => {
    const j = await answer(
      {
        error: 'invalid\x1b[2J_grant',
        error_description: 'line \x1b]0;owned\x07one\r\nmailkey: forged',
        message: 'a\rb',
      },
      { method: 'POST', body: 'grant_type=x' },
    )
    assert.equal(j.error, 'invalid[2J_grant')
    assert.equal(j.error_description, 'line ]0;ownedone', 'error_description is its first line (RFC 6749 §5.2)')
    assert.equal(j.message, 'a b')
  })
})
