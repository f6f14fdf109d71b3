// RFC 8628 §3.4-3.5 polling, with fetch, the clock and sleep faked at the edge.
// (oidc-provider never answers slow_down, so this is where that rule is held.)
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Secret } from '../../src/core/secret.js'
import { ERR, ReauthRequiredError, TransientError } from '../../src/errors.js'
import { pollDeviceAuthorization, type DeviceAuthorization } from '../../src/oauth/grants.js'
import type { AccountSettings } from '../../src/store/types.js'

const settings: AccountSettings = {
  email: 'user@example.test',
  provider: 'microsoft',
  clientId: 'cid',
  scopes: ['https://outlook.office.com/IMAP.AccessAsUser.All', 'offline_access'],
  endpoints: { token: 'https://login.example/token', deviceAuthorization: 'https://login.example/devicecode' },
  servers: {},
  sasl: 'XOAUTH2',
  flow: 'device',
}

type Step = { status: number; body: unknown } | 'network-error'

function harness(steps: Step[], expiresInSec = 900) {
  let now = 1_000_000
  const sleeps: number[] = []
  const requests: URLSearchParams[] = []
  const fetchFake = (async (_url: string, init: RequestInit) => {
    requests.push(new URLSearchParams(String(init.body)))
    const s = steps.shift()
    if (s === undefined) throw new Error('unexpected request')
    if (s === 'network-error') throw new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } })
    return new Response(JSON.stringify(s.body), { status: s.status, headers: { 'content-type': 'application/json' } })
  }) as unknown as typeof fetch
  const d: DeviceAuthorization = {
    deviceCode: new Secret('device-code-value'),
    userCode: 'ABCD-EFGH',
    verificationUri: 'https://login.example/device',
    expiresIn: expiresInSec,
    expiresAt: now + expiresInSec * 1000,
    interval: 5,
  }
  const run = () => pollDeviceAuthorization(settings, d, {
    account: settings.email,
    fetch: fetchFake,
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms)
      now += ms
    },
  })
  return { run, sleeps, requests }
}

const ms = (error: string, code: number) => ({ status: 400, body: { error, error_description: `AADSTS${code}: ${error}`, error_codes: [code] } })
const tokens = { status: 200, body: { access_token: 'at', refresh_token: 'rt', token_type: 'Bearer', expires_in: 3600 } }

describe('device code polling', () => {
  it('waits the interval, keeps polling while pending, and returns the tokens', async () => {
    const h = harness([ms('authorization_pending', 70016), ms('authorization_pending', 70016), tokens])
    const t = await h.run()
    assert.equal(t.accessToken.reveal(), 'at')
    assert.equal(t.refreshToken?.reveal(), 'rt')
    assert.deepEqual(h.sleeps, [5000, 5000, 5000])
    assert.equal(h.requests[0]?.get('grant_type'), 'urn:ietf:params:oauth:grant-type:device_code')
    assert.equal(h.requests[0]?.get('device_code'), 'device-code-value')
  })

  it('slow_down adds 5 seconds to this and every later interval (RFC 8628 §3.5)', async () => {
    const h = harness([{ status: 400, body: { error: 'authorization_pending' } }, { status: 400, body: { error: 'slow_down' } }, { status: 400, body: { error: 'authorization_pending' } }, tokens])
    await h.run()
    assert.deepEqual(h.sleeps, [5000, 5000, 10000, 10000])
  })

  it('expired_token (AADSTS70019) ends the sign-in: SIGNIN_EXPIRED, exit 77', async () => {
    const h = harness([ms('expired_token', 70019)])
    await assert.rejects(h.run(), (e: unknown) => e instanceof ReauthRequiredError && e.code === ERR.SIGNIN_EXPIRED && e.exitCode === 77)
  })

  it("Microsoft's authorization_declined and RFC 8628's access_denied are SIGNIN_DECLINED", async () => {
    await assert.rejects(harness([{ status: 400, body: { error: 'authorization_declined' } }]).run(), (e: unknown) => (e as ReauthRequiredError).code === ERR.SIGNIN_DECLINED)
    await assert.rejects(harness([{ status: 400, body: { error: 'access_denied' } }]).run(), (e: unknown) => (e as ReauthRequiredError).code === ERR.SIGNIN_DECLINED)
  })

  it('bad_verification_code (AADSTS70018) is reported, not polled forever', async () => {
    const h = harness([ms('bad_verification_code', 70018)])
    await assert.rejects(h.run(), (e: unknown) => e instanceof ReauthRequiredError && /70018/.test(e.message))
    assert.equal(h.requests.length, 1)
  })

  it('a network blip does not throw the sign-in away: it backs off and goes on', async () => {
    const h = harness(['network-error', { status: 400, body: { error: 'authorization_pending' } }, tokens])
    const t = await h.run()
    assert.equal(t.accessToken.reveal(), 'at')
    assert.deepEqual(h.sleeps, [5000, 10000, 10000])
  })

  it('stops by itself when the code has expired locally, without another request', async () => {
    const h = harness(Array.from({ length: 10 }, () => ({ status: 400, body: { error: 'authorization_pending' } })), 12)
    await assert.rejects(h.run(), (e: unknown) => e instanceof ReauthRequiredError && e.code === ERR.SIGNIN_EXPIRED)
    assert.equal(h.requests.length, 3, 'polls at 5 s and 10 s and 15 s, then the 12 s code is over')
  })

  it('a persistent outage while polling ends as transient, not as a lost sign-in', async () => {
    const h = harness(Array.from({ length: 25 }, () => 'network-error' as const), 100_000)
    await assert.rejects(h.run(), TransientError)
  })
})
