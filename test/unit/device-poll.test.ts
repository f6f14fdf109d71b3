// RFC 8628 §3.4-3.5 polling, with fetch, the clock and sleep faked at the edge.
// (oidc-provider never answers slow_down, so this is where that rule is held.)
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { Secret } from '../../src/core/secret.js'
import { ERR, ReauthRequiredError, TransientError } from '../../src/errors.js'
import { pollDeviceAuthorization, type DeviceAuthorization } from '../../src/oauth/grants.js'
import { sleep } from '../../src/core/wait.js'
import type { AccountSettings } from '../../src/domain/account.js'

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

/** What startDeviceAuthorization would have returned at `now`: a code good for `expiresInSec`. */
function deviceAuthorization(now: number, expiresInSec = 900): DeviceAuthorization {
  return {
    deviceCode: new Secret('device-code-value'),
    userCode: 'ABCD-EFGH',
    verificationUri: 'https://login.example/device',
    expiresIn: expiresInSec,
    expiresAt: now + expiresInSec * 1000,
    interval: 5,
  }
}

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
  const d = deviceAuthorization(now, expiresInSec)
  const run = () =>
    pollDeviceAuthorization(settings, d, {
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

const ms = (error: string, code: number) => ({
  status: 400,
  body: { error, error_description: `AADSTS${code}: ${error}`, error_codes: [code] },
})
const tokens = {
  status: 200,
  body: { access_token: 'at', refresh_token: 'rt', token_type: 'Bearer', expires_in: 3600 },
}

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
    const h = harness([
      { status: 400, body: { error: 'authorization_pending' } },
      { status: 400, body: { error: 'slow_down' } },
      { status: 400, body: { error: 'authorization_pending' } },
      tokens,
    ])
    await h.run()
    assert.deepEqual(h.sleeps, [5000, 5000, 10000, 10000])
  })

  it('expired_token (AADSTS70019) ends the sign-in: SIGNIN_EXPIRED, exit 77', async () => {
    const h = harness([ms('expired_token', 70019)])
    await assert.rejects(
      h.run(),
      (e: unknown) => e instanceof ReauthRequiredError && e.code === ERR.SIGNIN_EXPIRED && e.exitCode === 77,
    )
  })

  it("Microsoft's authorization_declined and RFC 8628's access_denied are SIGNIN_DECLINED", async () => {
    await assert.rejects(
      harness([{ status: 400, body: { error: 'authorization_declined' } }]).run(),
      (e: unknown) => (e as ReauthRequiredError).code === ERR.SIGNIN_DECLINED,
    )
    await assert.rejects(
      harness([{ status: 400, body: { error: 'access_denied' } }]).run(),
      (e: unknown) => (e as ReauthRequiredError).code === ERR.SIGNIN_DECLINED,
    )
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
    const h = harness(
      Array.from({ length: 10 }, () => ({ status: 400, body: { error: 'authorization_pending' } })),
      12,
    )
    await assert.rejects(h.run(), (e: unknown) => e instanceof ReauthRequiredError && e.code === ERR.SIGNIN_EXPIRED)
    assert.equal(h.requests.length, 3, 'polls at 5 s and 10 s and 15 s, then the 12 s code is over')
  })

  it('a persistent outage while polling ends as transient, not as a lost sign-in', async () => {
    const h = harness(
      Array.from({ length: 25 }, () => 'network-error' as const),
      100_000,
    )
    await assert.rejects(h.run(), TransientError)
  })
})

describe('a hostile device authorization answer (issue 11, items 8 and 9)', () => {
  /** startDeviceAuthorization against a fake endpoint answering `body`, then polling with a fake clock */
  async function start(body: Record<string, unknown>) {
    const { startDeviceAuthorization } = await import('../../src/oauth/grants.js')
    const answers: unknown[] = [body]
    let polls = 0
    const fetchFake = (async (url: string) => {
      if (url.endsWith('/devicecode'))
        return new Response(JSON.stringify(answers.shift()), {
          status: 200,
          headers: { 'content-type': 'application/json' },
        })
      polls++
      return new Response(JSON.stringify({ error: polls < 4 ? 'slow_down' : 'authorization_pending' }), {
        status: 400,
        headers: { 'content-type': 'application/json' },
      })
    }) as unknown as typeof fetch
    let now = 1_000_000
    const d = await startDeviceAuthorization(settings, { account: settings.email, fetch: fetchFake, now: () => now })
    const sleeps: number[] = []
    const poll = () =>
      pollDeviceAuthorization(settings, d, {
        account: settings.email,
        fetch: fetchFake,
        now: () => now,
        sleep: async (ms) => {
          sleeps.push(ms)
          now += ms
        },
      })
    return { d, sleeps, poll, polls: () => polls }
  }
  const base = {
    device_code: 'dc-value-0123456789',
    user_code: 'ABCD-EFGH',
    verification_uri: 'https://login.example/device',
    expires_in: 900,
  }

  it('interval 3e6 is cut to 60 s, expires_in 1e12 to an hour; polls stay one a minute', async () => {
    const h = await start({ ...base, interval: 3e6, expires_in: 1e12 })
    assert.equal(h.d.interval, 60)
    assert.equal(h.d.expiresIn, 3600)
    await assert.rejects(h.poll(), (e: unknown) => (e as ReauthRequiredError).code === ERR.SIGNIN_EXPIRED)
    assert.ok(
      h.sleeps.every((ms) => ms === 60_000),
      JSON.stringify(h.sleeps),
    )
    assert.equal(h.polls(), 60, 'one poll a minute for the hour, slow_down included')
  })

  it('a tiny or zero interval never polls faster than once a second', async () => {
    for (const interval of [0.001, 1e-9]) {
      const h = await start({ ...base, interval, expires_in: 30 })
      await assert.rejects(h.poll())
      assert.ok(h.sleeps.length > 0 && h.sleeps.every((ms) => ms >= 1000), JSON.stringify(h.sleeps))
      assert.ok(h.polls() <= 30)
    }
  })

  it('a verification_uri or verification_uri_complete that is not http(s) is refused, never shown', async () => {
    for (const bad of [
      { verification_uri: 'javascript:alert(1)' },
      { verification_uri_complete: 'file:///etc/passwd' },
      { verification_uri: 'not a url' },
    ]) {
      await assert.rejects(
        start({ ...base, ...bad }),
        (e: unknown) =>
          e instanceof Error &&
          /is not a web address/.test(e.message) &&
          !e.message.includes('alert') &&
          !e.message.includes('passwd'),
      )
    }
  })

  it('user_code, message and verification_uri arrive without terminal controls or the device code', async () => {
    const h = await start({
      ...base,
      user_code: 'AB\x1b[2JCD',
      message: `Open it\x1b]0;x\x07\rnow ${base.device_code}`,
      interval: 5,
    })
    assert.equal(h.d.userCode, 'AB[2JCD')
    assert.equal(h.d.message, 'Open it]0;x now [redacted]')
  })
})

describe('a long device sign-in wait (issue 15, item 3)', () => {
  it('forty polls on one signal leave no abort listener and raise no MaxListeners warning', async () => {
    const polls = 40
    const steps: Step[] = [...Array.from({ length: polls }, () => ms('authorization_pending', 70016)), tokens]
    let now = 1_000_000
    const d = deviceAuthorization(now)
    const fetchFake = (async () => {
      const s = steps.shift() as { status: number; body: unknown }
      return new Response(JSON.stringify(s.body), { status: s.status, headers: { 'content-type': 'application/json' } })
    }) as unknown as typeof fetch
    const ac = new AbortController()
    const warnings: Error[] = []
    const onWarning = (w: Error): void => void warnings.push(w)
    process.on('warning', onWarning)
    try {
      const t = await pollDeviceAuthorization(settings, d, {
        account: settings.email,
        fetch: fetchFake,
        signal: ac.signal,
        now: () => now,
        // the clock is faked; the wait itself is the real one, cut to nothing
        sleep: (wait, signal) => {
          now += wait
          return sleep(0, signal)
        },
      })
      assert.equal(t.accessToken.reveal(), 'at')
      await new Promise((r) => setImmediate(r)) // process.emitWarning reports on a later tick
    } finally {
      process.off('warning', onWarning)
    }
    assert.equal(steps.length, 0, 'every poll was made')
    assert.deepEqual(
      warnings.map((w) => w.name),
      [],
    )
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0)
  })

  it('Ctrl-C while waiting for the person: says so, not "talking to" the server', async () => {
    const ac = new AbortController()
    let now = 1_000_000
    const d = deviceAuthorization(now)
    const fetchFake = (async () =>
      new Response(JSON.stringify(ms('authorization_pending', 70016).body), {
        status: 400,
        headers: { 'content-type': 'application/json' },
      })) as unknown as typeof fetch
    await assert.rejects(
      pollDeviceAuthorization(settings, d, {
        account: settings.email,
        fetch: fetchFake,
        signal: ac.signal,
        now: () => now,
        sleep: async (wait) => {
          now += wait
          ac.abort() // the person pressed Ctrl-C during the wait
        },
      }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'ERR_MAILKEY_INTERRUPTED')
        assert.match(e.message, /interrupted while waiting for the sign-in of ".+" to be approved/)
        assert.doesNotMatch(e.message, /talking to/)
        return true
      },
    )
  })

  it('an abort still ends the wait at once, and the listener goes with it', async () => {
    const ac = new AbortController()
    const waiting = sleep(3_600_000, ac.signal)
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1)
    ac.abort()
    await waiting
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0)
  })
})
