// Tests of the test harness itself: the lab OAuth server (oidc-provider), its scripted faults and
// drivers, the temp HOME helper and the real-Chromium BROWSER command. Uses oauth4webapi directly.
// Tokens, codes and secrets never appear in assertion messages: comparisons of secret values go
// through assert.ok(<boolean>, <message>).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import * as oauth from 'oauth4webapi'
import { chromiumAvailable, chromiumOpenCommand } from '../harness/chromium.js'
import {
  DEFAULT_LOGIN,
  DEVICE_CODE_GRANT,
  LAB_CLIENT_SECRET,
  LAB_PUBLIC_CLIENT_ID,
  LAB_SECRET_CLIENT_ID,
  MAIL_RESOURCE,
  MAIL_SCOPES,
  startOAuthServer,
} from '../harness/oauth-server.js'
import type { InteractionOptions, LabServer } from '../harness/oauth-server.js'
import { makeTmpHome } from '../harness/tmp-home.js'

const insecure = { [oauth.allowInsecureRequests]: true } as const
const SCOPE = ['offline_access', 'openid', 'email', ...MAIL_SCOPES].join(' ')
const publicClient: oauth.Client = { client_id: LAB_PUBLIC_CLIENT_ID }
const secretClient: oauth.Client = { client_id: LAB_SECRET_CLIENT_ID }
const none = oauth.None()

let lab: LabServer
let as: oauth.AuthorizationServer

async function discover(server: LabServer, algorithm: 'oidc' | 'oauth2' = 'oidc'): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(server.issuer)
  const res = await oauth.discoveryRequest(issuer, { ...insecure, algorithm })
  return oauth.processDiscoveryResponse(issuer, res)
}

before(async () => {
  lab = await startOAuthServer()
  as = await discover(lab)
})

after(async () => {
  await lab.close()
})

/** The OAuth error code of a failed token-endpoint response (body must be JSON). */
async function errorOf(res: Response): Promise<{ status: number; error: unknown; description: unknown }> {
  const body = (await res.json()) as Record<string, unknown>
  return { status: res.status, error: body.error, description: body.error_description }
}

function scopesOf(tokens: oauth.TokenEndpointResponse): string[] {
  return (tokens.scope ?? '').split(' ').filter(Boolean)
}

async function startDevice(
  client: oauth.Client = publicClient,
  auth: oauth.ClientAuth = none,
  scope = SCOPE,
  meta: oauth.AuthorizationServer = as,
): Promise<oauth.DeviceAuthorizationResponse> {
  const res = await oauth.deviceAuthorizationRequest(meta, client, auth, { scope }, insecure)
  return oauth.processDeviceAuthorizationResponse(meta, client, res)
}

async function deviceTokens(
  opts: { client?: oauth.Client; auth?: oauth.ClientAuth; scope?: string; login?: string } = {},
): Promise<oauth.TokenEndpointResponse> {
  const client = opts.client ?? publicClient
  const auth = opts.auth ?? none
  const da = await startDevice(client, auth, opts.scope)
  await lab.approveDevice(da.user_code, { login: opts.login })
  const res = await oauth.deviceCodeGrantRequest(as, client, auth, da.device_code, insecure)
  return oauth.processDeviceCodeResponse(as, client, res)
}

async function authorizationUrl(
  redirectUri: string,
  opts: { clientId?: string; scope?: string; pkce?: boolean; loginHint?: string; prompt?: string } = {},
): Promise<{ url: string; state: string; verifier: string }> {
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const url = new URL(as.authorization_endpoint ?? '')
  url.searchParams.set('client_id', opts.clientId ?? LAB_PUBLIC_CLIENT_ID)
  url.searchParams.set('response_type', 'code')
  url.searchParams.set('redirect_uri', redirectUri)
  url.searchParams.set('scope', opts.scope ?? SCOPE)
  url.searchParams.set('state', state)
  if (opts.loginHint) url.searchParams.set('login_hint', opts.loginHint)
  if (opts.prompt) url.searchParams.set('prompt', opts.prompt)
  if (opts.pkce !== false) {
    url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier))
    url.searchParams.set('code_challenge_method', 'S256')
  }
  return { url: url.href, state, verifier }
}

async function codeTokens(
  redirectUri: string,
  opts: InteractionOptions & { loginHint?: string } = {},
): Promise<oauth.TokenEndpointResponse> {
  const { url, state, verifier } = await authorizationUrl(redirectUri, { loginHint: opts.loginHint })
  const location = await lab.completeAuthorization(url, opts)
  const params = oauth.validateAuthResponse(as, publicClient, new URL(location), state)
  const res = await oauth.authorizationCodeGrantRequest(as, publicClient, none, params, redirectUri, verifier, insecure)
  return oauth.processAuthorizationCodeResponse(as, publicClient, res)
}

function refresh(refreshToken: string, client = publicClient, auth = none): Promise<Response> {
  return oauth.refreshTokenGrantRequest(as, client, auth, refreshToken, insecure)
}

function assertMailTokens(tokens: oauth.TokenEndpointResponse, what: string): string {
  const { access_token: at, refresh_token: rt } = tokens
  assert.ok(typeof at === 'string' && at.length > 20, `${what}: access token`)
  assert.ok(typeof rt === 'string' && rt.length > 20, `${what}: refresh token`)
  assert.deepEqual(scopesOf(tokens).sort(), [...MAIL_SCOPES].sort(), `${what}: granted scopes`)
  return rt
}

test('discovery: openid-configuration and the RFC 8414 path describe the same server', async () => {
  assert.equal(as.issuer, lab.issuer)
  assert.match(lab.issuer, /^http:\/\/127\.0\.0\.1:\d+$/)
  assert.equal(as.token_endpoint, `${lab.issuer}/token`)
  assert.equal(as.device_authorization_endpoint, `${lab.issuer}/device/auth`)
  assert.equal(as.introspection_endpoint, `${lab.issuer}/token/introspection`)
  assert.equal(as.revocation_endpoint, `${lab.issuer}/token/revocation`)
  assert.deepEqual(as.code_challenge_methods_supported, ['S256'])
  assert.ok(as.grant_types_supported?.includes(DEVICE_CODE_GRANT))
  assert.ok(as.grant_types_supported?.includes('refresh_token'))
  assert.equal(as.authorization_response_iss_parameter_supported, true)
  const rfc8414 = await discover(lab, 'oauth2')
  assert.deepEqual(rfc8414, as)
})

test('device flow: pending until approved, then a refresh token and the mail scopes', async () => {
  const da = await startDevice()
  assert.equal(da.interval, 1, 'interval is added (oidc-provider sends none)')
  assert.match(da.user_code, /^[A-Z]{4}-[A-Z]{4}$/)
  assert.equal(da.verification_uri, `${lab.issuer}/device`)
  assert.ok(typeof da.message === 'string' && da.message.includes(da.user_code))

  const pending = await oauth.deviceCodeGrantRequest(as, publicClient, none, da.device_code, insecure)
  assert.equal((await errorOf(pending)).error, 'authorization_pending')

  await lab.approveDevice(da.user_code, { login: 'carol@example.test' })
  const res = await oauth.deviceCodeGrantRequest(as, publicClient, none, da.device_code, insecure)
  const tokens = await oauth.processDeviceCodeResponse(as, publicClient, res)
  assertMailTokens(tokens, 'device flow')
  assert.equal(tokens.token_type.toLowerCase(), 'bearer')
  assert.equal(tokens.expires_in, 3600)
  const claims = oauth.getValidatedIdTokenClaims(tokens)
  assert.equal(claims?.sub, 'carol@example.test')
  assert.equal(claims?.email, 'carol@example.test')

  const again = await oauth.deviceCodeGrantRequest(as, publicClient, none, da.device_code, insecure)
  assert.equal((await errorOf(again)).error, 'invalid_grant', 'a device code is single-use')
})

test('device flow: denial gives access_denied', async () => {
  const da = await startDevice()
  await lab.approveDevice(da.user_code, { deny: true })
  const res = await oauth.deviceCodeGrantRequest(as, publicClient, none, da.device_code, insecure)
  assert.equal((await errorOf(res)).error, 'access_denied')
})

test('device flow: an unknown user code is refused by approveDevice', async () => {
  await assert.rejects(lab.approveDevice('BBBB-CCCC'), /lab-device-bad-code|expected form/)
})

test('auth code + PKCE: refresh token without the client asking for consent, any loopback port', async () => {
  const tokens = await codeTokens('http://127.0.0.1:49999/callback', { login: 'bob@example.test' })
  assertMailTokens(tokens, 'auth code')
  assert.equal(oauth.getValidatedIdTokenClaims(tokens)?.email, 'bob@example.test')

  for (const redirect of ['http://localhost:51234', 'http://[::1]:40000/', 'http://127.0.0.1:1234']) {
    const { url, state } = await authorizationUrl(redirect)
    const location = new URL(await lab.completeAuthorization(url))
    const target = `${location.origin}${location.pathname}`
    assert.equal(target, new URL(redirect).href, `redirected to ${redirect}`)
    assert.equal(location.searchParams.get('state'), state)
    assert.equal(location.searchParams.get('iss'), lab.issuer)
    assert.ok(location.searchParams.get('code'), `code for ${redirect}`)
  }
})

test('auth code: login_hint prefills the login', async () => {
  const tokens = await codeTokens('http://127.0.0.1:40001/', { loginHint: 'dave@example.test' })
  assert.equal(oauth.getValidatedIdTokenClaims(tokens)?.email, 'dave@example.test')
  const plain = await codeTokens('http://127.0.0.1:40001/')
  assert.equal(oauth.getValidatedIdTokenClaims(plain)?.email, DEFAULT_LOGIN)
})

test('auth code: Microsoft-style prompt=select_account is accepted, still a refresh token', async () => {
  const redirectUri = 'http://127.0.0.1:40005/callback'
  const { url, state, verifier } = await authorizationUrl(redirectUri, { prompt: 'select_account' })
  const location = new URL(await lab.completeAuthorization(url, { login: 'gina@example.test' }))
  assert.equal(location.searchParams.get('error'), null, 'no error redirect')
  const params = oauth.validateAuthResponse(as, publicClient, location, state)
  const res = await oauth.authorizationCodeGrantRequest(as, publicClient, none, params, redirectUri, verifier, insecure)
  assertMailTokens(await oauth.processAuthorizationCodeResponse(as, publicClient, res), 'select_account')
})

test('auth code: unregistered redirect path, missing PKCE and denial', async () => {
  const bad = await authorizationUrl('http://127.0.0.1:40002/not-registered')
  await assert.rejects(lab.completeAuthorization(bad.url), /HTTP 400 .*redirect_uri/)

  const noPkce = await authorizationUrl('http://127.0.0.1:40002/callback', { pkce: false })
  const refused = new URL(await lab.completeAuthorization(noPkce.url))
  assert.equal(refused.searchParams.get('error'), 'invalid_request')
  assert.match(refused.searchParams.get('error_description') ?? '', /PKCE/)

  const denied = await authorizationUrl('http://127.0.0.1:40002/callback')
  const location = new URL(await lab.completeAuthorization(denied.url, { deny: true }))
  assert.equal(location.searchParams.get('error'), 'access_denied')
  assert.equal(location.searchParams.get('state'), denied.state)
  assert.equal(location.searchParams.get('code'), null)
})

test('confidential client: client_secret_post and client_secret_basic are both accepted', async () => {
  const tokens = await deviceTokens({ client: secretClient, auth: oauth.ClientSecretPost(LAB_CLIENT_SECRET) })
  const rt = assertMailTokens(tokens, 'secret client')
  const viaBasic = await refresh(rt, secretClient, oauth.ClientSecretBasic(LAB_CLIENT_SECRET))
  const rotated = await oauth.processRefreshTokenResponse(as, secretClient, viaBasic)
  assertMailTokens(rotated, 'basic refresh')
  const wrongSecret = oauth.ClientSecretPost('wrong-secret')
  const wrong = await refresh(rotated.refresh_token ?? '', secretClient, wrongSecret)
  assert.equal((await errorOf(wrong)).error, 'invalid_client')
})

test('refresh: rotation, and reuse of a consumed refresh token revokes the grant', async () => {
  const first = await deviceTokens()
  const rt1 = assertMailTokens(first, 'initial')
  const second = await oauth.processRefreshTokenResponse(as, publicClient, await refresh(rt1))
  const rt2 = assertMailTokens(second, 'refreshed')
  assert.ok(rt2 !== rt1, 'the refresh token rotates')
  assert.ok(second.access_token !== first.access_token, 'a new access token')
  assert.equal((await lab.introspect(first.access_token)).active, true, 'old access token lives on')

  const reuse = await refresh(rt1)
  const reuseError = await errorOf(reuse)
  assert.equal(reuseError.error, 'invalid_grant')
  assert.equal(reuseError.status, 400)

  const afterReuse = await refresh(rt2)
  assert.equal((await errorOf(afterReuse)).error, 'invalid_grant', 'the newest refresh token died too')
  assert.equal((await lab.introspect(second.access_token)).active, false, "the grant's access tokens died")
})

test('counts: every request that reaches the server, failing ones included', async () => {
  lab.resetCounts()
  const counts = lab.counts
  assert.deepEqual(counts, {
    refresh: 0,
    authorizationCode: 0,
    deviceCode: 0,
    deviceAuthorization: 0,
    introspection: 0,
    revocation: 0,
  })
  const device = await deviceTokens()
  await codeTokens('http://127.0.0.1:40003/callback')
  await oauth.processRefreshTokenResponse(as, publicClient, await refresh(device.refresh_token ?? ''))
  await (await refresh('not-a-refresh-token')).body?.cancel()
  await lab.introspect(device.access_token)
  await lab.revokeGrant(device.access_token)
  assert.equal(lab.counts, counts, 'counts is a live object')
  assert.deepEqual(
    { ...lab.counts },
    {
      refresh: 2,
      authorizationCode: 1,
      deviceCode: 1,
      deviceAuthorization: 1,
      introspection: 1,
      revocation: 1,
    },
  )
})

test('injectTokenFault: status, body, headers, times, grant type, delay, dropped connection', async (t) => {
  t.after(() => lab.clearFaults())
  const rt = assertMailTokens(await deviceTokens(), 'fault setup')
  lab.resetCounts()

  lab.injectTokenFault({ status: 503, body: 'upstream unavailable', headers: { 'retry-after': '7' } })
  const r1 = await refresh(rt)
  assert.equal(r1.status, 503)
  assert.equal(r1.headers.get('retry-after'), '7')
  assert.equal(await r1.text(), 'upstream unavailable')

  const body = { error: 'invalid_grant', error_description: 'AADSTS70043' }
  lab.injectTokenFault({ status: 400, body, times: 2 })
  for (let i = 0; i < 2; i++) {
    const res = await refresh(rt)
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8')
    assert.deepEqual(await errorOf(res), { status: 400, error: 'invalid_grant', description: 'AADSTS70043' })
  }

  lab.injectTokenFault({ status: 500, grantType: DEVICE_CODE_GRANT })
  const unaffected = await oauth.processRefreshTokenResponse(as, publicClient, await refresh(rt))
  const rt2 = assertMailTokens(unaffected, 'refresh past a device_code-only fault')
  const da = await startDevice()
  const faulted = await oauth.deviceCodeGrantRequest(as, publicClient, none, da.device_code, insecure)
  assert.equal(faulted.status, 500)
  await faulted.body?.cancel()

  lab.injectTokenFault({ destroySocket: true })
  await assert.rejects(refresh(rt2), TypeError, 'fetch fails on a destroyed connection')

  lab.injectTokenFault({ delayMs: 300 })
  const started = Date.now()
  const delayed = await oauth.processRefreshTokenResponse(as, publicClient, await refresh(rt2))
  assert.ok(Date.now() - started >= 290, 'the request was held back')
  assertMailTokens(delayed, 'delayed refresh')

  lab.injectTokenFault({ status: 502, times: 5 })
  lab.clearFaults()
  const cleared = await refresh(delayed.refresh_token ?? '')
  assert.equal(cleared.status, 200, 'clearFaults removes pending faults')
  await cleared.body?.cancel()

  assert.equal(lab.counts.refresh, 7, 'faulted requests are counted')
  assert.equal(lab.counts.deviceCode, 1)
})

test('deny/allow: a disabled client gets invalid_client everywhere, others are unaffected', async (t) => {
  const rt = assertMailTokens(await deviceTokens(), 'deny setup')
  const other = await deviceTokens({ client: secretClient, auth: oauth.ClientSecretBasic(LAB_CLIENT_SECRET) })
  lab.deny(LAB_PUBLIC_CLIENT_ID)
  t.after(() => lab.allow(LAB_PUBLIC_CLIENT_ID))

  const description = 'AADSTS7000112: Application is disabled.'
  const disabled = { status: 400, error: 'invalid_client', description }
  assert.deepEqual(await errorOf(await refresh(rt)), disabled)
  const dev = await oauth.deviceAuthorizationRequest(as, publicClient, none, { scope: SCOPE }, insecure)
  assert.deepEqual(await errorOf(dev), disabled)
  const { url } = await authorizationUrl('http://127.0.0.1:40004/callback')
  assert.deepEqual(await errorOf(await fetch(url, { redirect: 'manual' })), disabled)
  await assert.rejects(lab.completeAuthorization(url), /invalid_client: AADSTS7000112/)

  const secretBasic = oauth.ClientSecretBasic(LAB_CLIENT_SECRET)
  const basic = await refresh(other.refresh_token ?? '', secretClient, secretBasic)
  assert.equal(basic.status, 200, 'another client still works')
  const otherRt = (await oauth.processRefreshTokenResponse(as, secretClient, basic)).refresh_token ?? ''
  lab.deny(LAB_SECRET_CLIENT_ID)
  t.after(() => lab.allow(LAB_SECRET_CLIENT_ID))
  const viaBasic = await refresh(otherRt, secretClient, secretBasic)
  assert.deepEqual(await errorOf(viaBasic), { ...disabled, status: 401 }, 'Basic auth -> 401')

  lab.allow(LAB_PUBLIC_CLIENT_ID)
  const back = await oauth.processRefreshTokenResponse(as, publicClient, await refresh(rt))
  assertMailTokens(back, 'after allow')
})

test('introspection as mail-rs: email, upn, aud, scope; refresh tokens, revoked grants inactive', async () => {
  const tokens = await deviceTokens({ login: 'erin@example.test' })
  const info = await lab.introspect(tokens.access_token)
  assert.equal(info.active, true)
  assert.equal(info.sub, 'erin@example.test')
  assert.equal(info.email, 'erin@example.test')
  assert.equal(info.upn, 'erin@example.test')
  assert.equal(info.aud, MAIL_RESOURCE)
  assert.equal(info.client_id, LAB_PUBLIC_CLIENT_ID)
  assert.equal(info.iss, lab.issuer)
  assert.equal(info.scope, MAIL_SCOPES.join(' '))
  assert.equal(info.token_type, 'Bearer')
  assert.ok(typeof info.exp === 'number' && info.exp > Date.now() / 1000 + 3500)

  const asPassword = await lab.introspect(tokens.refresh_token ?? '')
  assert.deepEqual(asPassword, { active: false }, 'refresh token as password')
  assert.deepEqual(await lab.introspect('garbage'), { active: false })

  await lab.revokeGrant(tokens.refresh_token ?? '')
  assert.deepEqual(await lab.introspect(tokens.access_token), { active: false }, 'revocation kills the grant')
  assert.equal((await errorOf(await refresh(tokens.refresh_token ?? ''))).error, 'invalid_grant')
})

test('introspection: X-Dovecot-Auth-Service requires the matching mail scope', async () => {
  const imapOnly = await deviceTokens({ scope: `offline_access ${MAIL_SCOPES[0]}` })
  assert.deepEqual(scopesOf(imapOnly), [MAIL_SCOPES[0]])
  assert.equal((await lab.introspect(imapOnly.access_token, { service: 'imap' })).active, true)
  assert.equal((await lab.introspect(imapOnly.access_token, { service: 'pop3' })).active, false)
  assert.equal((await lab.introspect(imapOnly.access_token, { service: 'smtp' })).active, false)
  assert.equal((await lab.introspect(imapOnly.access_token)).active, true)
})

test('options: access token TTL and device interval', async () => {
  const other = await startOAuthServer({ accessTokenTtlSec: 120, deviceInterval: 3 })
  try {
    assert.notEqual(other.port, lab.port)
    const meta = await discover(other)
    const da = await startDevice(publicClient, none, SCOPE, meta)
    assert.equal(da.interval, 3)
    await other.approveDevice(da.user_code)
    const res = await oauth.deviceCodeGrantRequest(meta, publicClient, none, da.device_code, insecure)
    const tokens = await oauth.processDeviceCodeResponse(meta, publicClient, res)
    assert.equal(tokens.expires_in, 120)
    assert.equal((await lab.introspect(tokens.access_token)).active, false, 'servers do not share state')
  } finally {
    await other.close()
  }
  await assert.rejects(fetch(`${other.issuer}/.well-known/openid-configuration`), TypeError, 'closed')
})

test('makeTmpHome: isolated HOME/XDG dirs and a scrubbed environment copy', async (t) => {
  const saved = { MAILKEY_LEAK: process.env.MAILKEY_LEAK, BROWSER: process.env.BROWSER }
  process.env.MAILKEY_LEAK = '1'
  process.env.BROWSER = 'firefox'
  t.after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  })
  const home = await makeTmpHome()
  try {
    for (const name of ['HOME', 'XDG_CONFIG_HOME', 'XDG_STATE_HOME', 'XDG_RUNTIME_DIR']) {
      const path = home.env[name] ?? ''
      assert.ok(path.startsWith(home.dir + '/'), `${name} inside the temp dir`)
      assert.ok((await stat(path)).isDirectory(), `${name} exists`)
    }
    assert.equal((await stat(home.env.XDG_RUNTIME_DIR ?? '')).mode & 0o777, 0o700)
    const removed = ['MAILKEY_LEAK', 'BROWSER', 'NODE_EXTRA_CA_CERTS', 'DISPLAY', 'WAYLAND_DISPLAY']
    removed.push('SSH_CONNECTION')
    for (const name of removed) {
      assert.equal(home.env[name], undefined, `${name} removed`)
    }
    assert.equal(home.env.PATH, process.env.PATH)
    assert.equal(process.env.MAILKEY_LEAK, '1', 'process.env itself is untouched')
  } finally {
    await home.cleanup()
  }
  assert.equal(existsSync(home.dir), false, 'cleanup removes the tree')
})

test(
  'real Chromium: BROWSER command signs in and the loopback listener gets code and state',
  {
    timeout: 60_000,
  },
  async (t) => {
    if (!chromiumAvailable()) {
      const message = 'Chromium not found: install it (apt-get install chromium) to run the real-browser test'
      if (process.env.CI) assert.fail(message)
      t.diagnostic(message)
      t.skip(message)
      return
    }
    const received: URL[] = []
    const listener = createServer((req, res) => {
      received.push(new URL(req.url ?? '/', 'http://127.0.0.1'))
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end('<!DOCTYPE html><title>mailkey</title><p>Signed in. You can close this window.</p>')
    })
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => listener.close(() => resolve())))
    const redirectUri = `http://127.0.0.1:${(listener.address() as AddressInfo).port}/callback`
    const { url, state, verifier } = await authorizationUrl(redirectUri)

    const home = await makeTmpHome()
    t.after(() => home.cleanup())
    const screenshot = join(home.dir, 'final.png')
    const child = spawn(`${chromiumOpenCommand()} '${url}'`, {
      shell: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...home.env, LAB_LOGIN: 'frank@example.test', LAB_ISSUER: lab.issuer, LAB_SCREENSHOT: screenshot },
    })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
    })
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString()
    })
    const exitCode = await new Promise<number | null>((resolve) => child.on('close', resolve))
    assert.equal(exitCode, 0, `chromium-open failed: ${output.trim()}`)

    const callback = received.find((u) => u.pathname === '/callback')
    assert.ok(callback, 'the browser loaded the loopback redirect')
    const code = callback.searchParams.get('code')
    assert.ok(code, 'code in the redirect')
    assert.ok(!output.includes(code), 'the code is not printed')
    assert.equal(callback.searchParams.get('state'), state)
    assert.equal(callback.searchParams.get('iss'), lab.issuer)
    assert.ok((await stat(screenshot)).size > 100, 'screenshot saved')

    const params = oauth.validateAuthResponse(as, publicClient, callback, state)
    const res = await oauth.authorizationCodeGrantRequest(
      as,
      publicClient,
      none,
      params,
      redirectUri,
      verifier,
      insecure,
    )
    const tokens = await oauth.processAuthorizationCodeResponse(as, publicClient, res)
    assertMailTokens(tokens, 'browser flow')
    assert.equal(oauth.getValidatedIdTokenClaims(tokens)?.email, 'frank@example.test')
  },
)
