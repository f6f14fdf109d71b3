// The broker with fetch faked at the edge (the real-server version is test/integration).
import { describe, it, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Broker } from '../../src/broker/broker.js'
import { resolvePaths } from '../../src/config/paths.js'
import { ERR, ReauthRequiredError, TransientError } from '../../src/errors.js'
import type { AccountRecord } from '../../src/domain/account.js'

const EMAIL = 'user@example.test'
const TOKEN_URL = 'https://as.example/token'

type Reply = { status: number; body: unknown; headers?: Record<string, string> }

function fakeFetch(replies: Reply[]) {
  const calls: URLSearchParams[] = []
  const fn = async (url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    assert.equal(String(url), TOKEN_URL)
    calls.push(new URLSearchParams(String(init?.body ?? '')))
    const r = replies.shift()
    if (!r) throw new Error('unexpected extra request')
    const body = typeof r.body === 'string' ? r.body : JSON.stringify(r.body)
    return new Response(body, {
      status: r.status,
      headers: { 'content-type': 'application/json', ...(r.headers ?? {}) },
    })
  }
  return { fn: fn as typeof fetch, calls }
}

function tokens(n: number, extra: Record<string, unknown> = {}): Reply {
  return {
    status: 200,
    body: {
      access_token: `at-${n}`,
      refresh_token: `rt-${n}`,
      token_type: 'Bearer',
      expires_in: 3600,
      scope: 'mail',
      ...extra,
    },
  }
}

describe('Broker.getAccessToken', () => {
  let dir: string
  let now: number
  const clock = () => now

  async function setup(
    grant: Partial<NonNullable<AccountRecord['grant']>>,
    replies: Reply[],
    opts: { margin?: number; marginFromConfig?: boolean } = {},
  ) {
    const f = fakeFetch(replies)
    const warnings: string[] = []
    const broker = new Broker({
      paths: resolvePaths({ HOME: dir, XDG_STATE_HOME: join(dir, 'state'), XDG_CONFIG_HOME: join(dir, 'config') }),
      env: {},
      fetch: f.fn,
      now: clock,
      sleep: async () => {}, // the backoff between attempts, without waiting
      ...(opts.marginFromConfig ? {} : { refreshMarginSec: opts.margin ?? 300 }),
      onWarning: (m) => warnings.push(m),
    })
    await broker.store.write({
      v: 1,
      settings: {
        email: EMAIL,
        provider: 'custom',
        clientId: 'cid',
        scopes: ['mail', 'offline_access'],
        endpoints: { token: TOKEN_URL },
        servers: {},
        sasl: 'XOAUTH2',
        flow: 'device',
      },
      grant: {
        grantedAt: now - 1000,
        refreshToken: 'rt-0',
        accessToken: 'at-0',
        expiresAt: now - 1,
        refreshedAt: now - 3600_000,
        ...grant,
      },
      state: 'active',
      updatedAt: now,
    })
    return { broker, calls: f.calls, warnings }
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-broker-'))
    now = 1_800_000_000_000
  })
  afterEach(async () => rm(dir, { recursive: true, force: true }))

  async function writeConfig(text: string): Promise<void> {
    await mkdir(join(dir, 'config', 'mailkey'), { recursive: true })
    await writeFile(join(dir, 'config', 'mailkey', 'config.toml'), text)
  }

  it('follows refresh_margin_sec in config.toml while it lives, like every other key', async () => {
    await writeConfig('refresh_margin_sec = 300\n')
    // 400 s left: fresh under a 300 s margin, due under a 1000 s one
    const { broker, calls } = await setup({ expiresAt: now + 400_000 }, [tokens(1)], { marginFromConfig: true })
    assert.equal((await broker.getAccessToken(EMAIL)).refreshed, false)
    assert.equal(calls.length, 0)
    await writeConfig('refresh_margin_sec = 1000\n')
    const t = await broker.getAccessToken(EMAIL)
    assert.equal(t.token.reveal(), 'at-1')
    assert.equal(calls.length, 1)
    assert.equal((await broker.settings()).refreshMarginSec, 1000)
  })

  it('keeps its last good settings while config.toml is broken, and refuses a broken one from the start', async () => {
    await writeConfig('refresh_margin_sec = 300\n')
    const { broker, calls } = await setup({ expiresAt: now + 400_000 }, [], { marginFromConfig: true })
    await broker.getAccessToken(EMAIL)
    await writeConfig('refresh_margin_sec = = 1000\n')
    assert.equal((await broker.getAccessToken(EMAIL)).token.reveal(), 'at-0')
    assert.equal(calls.length, 0)
    const fresh = new Broker({ paths: broker.paths, env: {}, now: clock })
    await assert.rejects(
      fresh.getAccessToken(EMAIL),
      (e: unknown) => (e as { code?: string }).code === ERR.CONFIG_INVALID,
    )
  })

  it('takes grant policies from config.toml first, by the same rule as sign-in', async () => {
    await writeConfig('[providers.microsoft]\ntoken_url = "https://t.example/token"\nrefresh_token_idle_days = 30\n')
    const { broker } = await setup({}, [])
    const s = (await broker.store.read(EMAIL))?.settings
    assert.ok(s)
    assert.deepEqual(await broker.grantPolicy({ ...s, provider: 'microsoft' }), { idleDays: 30 })
    await rm(join(dir, 'config', 'mailkey', 'config.toml'))
    assert.deepEqual(await broker.grantPolicy({ ...s, provider: 'microsoft' }), { idleDays: 90 }, 'the preset')
  })

  it("keeps a preset's grant horizons when a [providers.NAME] override leaves them out", async () => {
    // an override of Microsoft's endpoints or client id must not switch off the 90-day keep-alive
    await writeConfig('[providers.microsoft]\ntoken_url = "https://t.example/token"\nclient_id = "own-id"\n')
    const { broker } = await setup({}, [])
    const s = (await broker.store.read(EMAIL))?.settings
    assert.ok(s)
    assert.deepEqual(await broker.grantPolicy({ ...s, provider: 'microsoft' }), { idleDays: 90 })
  })

  it('returns a fresh cached token without any request', async () => {
    const { broker, calls } = await setup({ expiresAt: now + 3000_000 }, [])
    const t = await broker.getAccessToken(EMAIL)
    assert.equal(t.token.reveal(), 'at-0')
    assert.equal(t.refreshed, false)
    assert.equal(calls.length, 0)
  })

  it('refreshes an expired token and stores the rotated refresh token before returning', async () => {
    const { broker, calls } = await setup({}, [tokens(1)])
    const t = await broker.getAccessToken(EMAIL)
    assert.equal(t.token.reveal(), 'at-1')
    assert.equal(calls.length, 1)
    assert.equal(calls[0]?.get('grant_type'), 'refresh_token')
    assert.equal(calls[0]?.get('refresh_token'), 'rt-0')
    const rec = await broker.store.read(EMAIL)
    assert.equal(rec?.grant?.refreshToken, 'rt-1')
    assert.equal(rec?.grant?.accessToken, 'at-1')
    assert.equal(rec?.grant?.expiresAt, now + 3600_000)
    assert.equal(rec?.grant?.refreshTokenAt, now)
  })

  it('a caller that stops waiting does not abort the refresh it started: the rotated token is stored', async () => {
    const { broker: seeded } = await setup({}, [])
    let release: () => void = () => undefined
    const answered = new Promise<void>((r) => (release = r))
    let requested: () => void = () => undefined
    const sent = new Promise<void>((r) => (requested = r))
    // like the real fetch: an abort of the signal it was given rejects the pending request
    const slowFetch = (async (_url: string | URL | Request, init?: RequestInit): Promise<Response> => {
      requested()
      await new Promise<void>((resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')))
        void answered.then(resolve)
      })
      return new Response(JSON.stringify((tokens(1) as { body: object }).body), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      })
    }) as typeof fetch
    const broker = new Broker({ paths: seeded.paths, env: {}, fetch: slowFetch, now: clock, refreshMarginSec: 300 })
    const caller = new AbortController()
    const got = broker.getAccessToken(EMAIL, { signal: caller.signal })
    await sent
    caller.abort() // e.g. the proxy's login deadline, or a client that went away
    release()
    await got.catch(() => undefined)
    const rec = await broker.store.read(EMAIL)
    assert.equal(rec?.grant?.refreshToken, 'rt-1', 'the rotated refresh token was stored')
    assert.equal(rec?.lastError, undefined)
  })

  it('keeps the old refresh token when the server does not rotate it', async () => {
    const { broker } = await setup({}, [
      { status: 200, body: { access_token: 'at-1', token_type: 'bearer', expires_in: 60 } },
    ])
    await broker.getAccessToken(EMAIL)
    assert.equal((await broker.store.read(EMAIL))?.grant?.refreshToken, 'rt-0')
  })

  it('refreshes within the margin, not before', async () => {
    const { broker, calls } = await setup({ expiresAt: now + 301_000 }, [tokens(1)])
    await broker.getAccessToken(EMAIL)
    assert.equal(calls.length, 0)
    now += 2000 // 299 s left < 300 s margin
    const t = await broker.getAccessToken(EMAIL)
    assert.equal(t.token.reveal(), 'at-1')
    assert.equal(calls.length, 1)
  })

  it('does not refresh on every call when tokens live shorter than the margin', async () => {
    const { broker, calls } = await setup({}, [tokens(1, { expires_in: 120 }), tokens(2, { expires_in: 120 })])
    await broker.getAccessToken(EMAIL)
    now += 30_000
    await broker.getAccessToken(EMAIL)
    assert.equal(calls.length, 1, 'a 120 s token is good for at least half its life')
    now += 40_000
    await broker.getAccessToken(EMAIL)
    assert.equal(calls.length, 2)
  })

  it('shares one refresh among concurrent callers in a process', async () => {
    const { broker, calls } = await setup({}, [tokens(1)])
    const all = await Promise.all(Array.from({ length: 20 }, () => broker.getAccessToken(EMAIL)))
    assert.equal(calls.length, 1)
    assert.ok(all.every((t) => t.token.reveal() === 'at-1'))
  })

  it('assumes an hour when the server sends no expires_in', async () => {
    const { broker } = await setup({}, [{ status: 200, body: { access_token: 'at-1', token_type: 'Bearer' } }])
    const t = await broker.getAccessToken(EMAIL)
    assert.equal(t.expiresAt, now + 3600_000)
  })

  it('force-refreshes a token that looks valid', async () => {
    const { broker, calls } = await setup({ expiresAt: now + 3000_000 }, [tokens(1)])
    const t = await broker.getAccessToken(EMAIL, { forceRefresh: true })
    assert.equal(t.token.reveal(), 'at-1')
    assert.equal(calls.length, 1)
  })

  it('retries a transient failure and succeeds', async () => {
    const { broker, calls } = await setup({}, [
      { status: 503, body: '<html>down</html>', headers: { 'content-type': 'text/html' } },
      tokens(1),
    ])
    const t = await broker.getAccessToken(EMAIL)
    assert.equal(t.token.reveal(), 'at-1')
    assert.equal(calls.length, 2)
    assert.equal((await broker.store.read(EMAIL))?.lastError, undefined)
  })

  it('gives up at once on a Retry-After longer than it will wait, keeping the grant', async () => {
    const { broker, calls } = await setup({}, [
      { status: 429, body: 'slow down', headers: { 'retry-after': '120', 'content-type': 'text/plain' } },
    ])
    await assert.rejects(broker.getAccessToken(EMAIL), (e: unknown) => {
      assert.ok(e instanceof TransientError)
      assert.equal(e.retryAfterSec, 120)
      assert.equal(e.exitCode, 75)
      return true
    })
    assert.equal(calls.length, 1)
    const rec = await broker.store.read(EMAIL)
    assert.equal(rec?.state, 'active')
    assert.equal(rec?.grant?.refreshToken, 'rt-0')
    assert.equal(rec?.lastError?.transient, true)
  })

  it('hands out the cached token when the server is down and it is still valid', async () => {
    const down: Reply = { status: 502, body: 'bad gateway', headers: { 'content-type': 'text/plain' } }
    const { broker, warnings } = await setup({ expiresAt: now + 120_000 }, [down, down, down])
    const t = await broker.getAccessToken(EMAIL)
    assert.equal(t.token.reveal(), 'at-0')
    assert.equal(warnings.length, 1)
    assert.match(warnings[0] ?? '', /cached token/)
    assert.doesNotMatch(warnings[0] ?? '', /at-0|rt-0/)
  })

  it('marks the account for sign-in on invalid_grant, keeps the record, and stops asking the server', async () => {
    const { broker, calls } = await setup({}, [
      {
        status: 400,
        body: {
          error: 'invalid_grant',
          error_description: 'AADSTS700082: The refresh token has expired due to inactivity.',
        },
      },
    ])
    await assert.rejects(broker.getAccessToken(EMAIL), (e: unknown) => {
      assert.ok(e instanceof ReauthRequiredError)
      assert.equal(e.code, ERR.REAUTH_REQUIRED)
      assert.equal(e.exitCode, 77)
      assert.match(e.message, /user@example\.test/)
      assert.match(e.message, /700082/)
      return true
    })
    const rec = await broker.store.read(EMAIL)
    assert.equal(rec?.state, 'reauth')
    assert.equal(rec?.grant?.refreshToken, 'rt-0', 'the grant is kept for inspection')
    assert.deepEqual(rec?.lastError?.providerCodes, ['AADSTS700082'])
    await assert.rejects(broker.getAccessToken(EMAIL), ReauthRequiredError)
    assert.equal(calls.length, 1, 'a dead grant is not retried')
  })

  it('says sign-in is needed when there is no refresh token', async () => {
    const { broker, calls } = await setup({ refreshToken: undefined }, [])
    await assert.rejects(
      broker.getAccessToken(EMAIL),
      (e: unknown) => e instanceof ReauthRequiredError && e.code === ERR.NO_REFRESH_TOKEN,
    )
    assert.equal(calls.length, 0)
  })

  it('names the account and the next command for an unknown account', async () => {
    const { broker } = await setup({}, [])
    await assert.rejects(broker.getAccessToken('other@example.test'), (e: unknown) => {
      const err = e as { code: string; hint?: string; exitCode: number }
      return (
        err.code === ERR.ACCOUNT_UNKNOWN &&
        /mailkey add other@example\.test/.test(err.hint ?? '') &&
        err.exitCode === 78
      )
    })
  })

  it('names the shared mailbox, not the signed-in account, as the SASL user', async () => {
    const { broker } = await setup({ expiresAt: now + 3000_000 }, [])
    const rec = await broker.store.read(EMAIL)
    assert.ok(rec)
    await broker.store.write({ ...rec, settings: { ...rec.settings, mailbox: 'team@example.test' } })
    const t = await broker.getAccessToken(EMAIL)
    assert.equal(t.user, 'team@example.test')
    assert.equal(t.account, EMAIL)
  })

  it('status cleans a last error stored raw before server text was cleaned on entry', async () => {
    const { broker } = await setup({}, [])
    const rec = await broker.store.read(EMAIL)
    assert.ok(rec)
    const raw = 'bad\u001b]0;owned\u0007 grant\r\u001b[2Jforged\u009b line'
    await broker.store.write({
      ...rec,
      lastError: {
        code: 'X',
        message: raw,
        oauthError: 'invalid\u001b[31m_grant',
        providerCodes: ['AADSTS1\u0007'],
        transient: false,
        at: now,
      },
    })
    const { accountStatus } = await import('../../src/broker/accounts.js')
    const st = await accountStatus(broker, EMAIL)
    const shown = JSON.stringify(st.lastError)
    assert.doesNotMatch(shown, /\\u001b|\\u0007|\\u009b|\\r/, shown)
    assert.match(st.lastError?.message ?? '', /bad\]0;owned grant \[2Jforged line/)
    assert.equal(st.lastError?.oauthError, 'invalid[31m_grant')
  })

  it('refuses a DPoP-bound token: mail servers take Bearer', async () => {
    const { broker } = await setup({}, [
      { status: 200, body: { access_token: 'at-1', token_type: 'DPoP', expires_in: 60 } },
    ])
    await assert.rejects(broker.getAccessToken(EMAIL), /Bearer/)
  })
})
