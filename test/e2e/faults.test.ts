// Faults between mailkey and the OAuth server, made by a misbehaving TCP proxy in front of the real
// oidc-provider (test/harness/fault-proxy.ts) and by the server itself (scripted answers): every
// refresh must end in the right class and exit code, and the grant must survive all of them.
// The main server keeps its refresh tokens (as Google does; Microsoft's old ones keep working after
// a rotation), so a lost answer costs nothing; a strict rotating server is the last case.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { startOAuthServer, LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { runCli, transcript, findLeaks, noteSecrets } from '../harness/cli.js'
import { signIn as labSignIn } from '../harness/sign-in.js'
import { startFaultProxy, type Fault, type FaultProxy } from '../harness/fault-proxy.js'

const EMAIL = 'faults@example.test'
const SCOPE = [...MAIL_SCOPES, 'offline_access'].join(' ')

interface Rec {
  grant: { accessToken: string; refreshToken: string; expiresAt: number }
  state: string
  lastError?: { code: string; transient: boolean; message: string }
}

/** signed in through the fault proxy at `base` (its endpoints given by hand: no discovery) */
async function signIn(lab: LabServer, home: TmpHome, base: string, secrets?: string[]): Promise<void> {
  await labSignIn(
    lab,
    home.env,
    EMAIL,
    [
      '--device-url',
      `${base}/device/auth`,
      '--token-url',
      `${base}/token`,
      '--client-id',
      LAB_PUBLIC_CLIENT_ID,
      '--scope',
      SCOPE,
    ],
    secrets,
  )
}

/** a whole HTTP/1.1 answer, written by the fault proxy in place of the server's */
const httpAnswer = (status: string, contentType: string, body: string): string =>
  `HTTP/1.1 ${status}\r\ncontent-type: ${contentType}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`

describe('faults between mailkey and the OAuth server', () => {
  let lab: LabServer
  let proxy: FaultProxy
  let home: TmpHome
  const secrets: string[] = []
  let injected = 0
  const file = (): string => recordFile(home.env, EMAIL)
  const stored = async (): Promise<Rec> => JSON.parse(await readFile(file(), 'utf8')) as Rec
  /** the stored tokens into the leak checks */
  const remember = async (rec: Rec): Promise<void> => {
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
  }
  const expire = async (): Promise<void> => {
    const raw = JSON.parse(await readFile(file(), 'utf8')) as Rec
    raw.grant.expiresAt = Date.now() - 1000
    await writeFile(file(), JSON.stringify(raw), { mode: 0o600 })
  }

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1, rotateRefreshTokens: false })
    proxy = await startFaultProxy({ host: '127.0.0.1', port: lab.port })
    home = await makeTmpHome()
    // every OAuth request goes through the proxy; the server gives up after 2 s of silence
    await mkdir(join(home.env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
    await writeFile(join(home.env.XDG_CONFIG_HOME as string, 'mailkey', 'config.toml'), 'http_timeout_sec = 2\n')
    // slow_down during sign-in (RFC 8628 §3.5): the poll waits 5 s more, then succeeds
    lab.injectTokenFault({
      grantType: 'urn:ietf:params:oauth:grant-type:device_code',
      status: 400,
      body: { error: 'slow_down', error_description: 'poll slower' },
    })
    injected++
    const t0 = Date.now()
    await signIn(lab, home, proxy.url, secrets)
    assert.ok(Date.now() - t0 >= 5000, 'slow_down added 5 s to the polling interval')
    lab.clearFaults()
  })
  after(async () => {
    await proxy?.close()
    await lab?.close()
    await home?.cleanup()
  })

  /** an expired token, these faults queued, one `mailkey token`: its exit code and what it left */
  const refreshThrough = async (
    faults: Fault[],
  ): Promise<{ code: number; stderr: string; before: Rec; after: Rec }> => {
    await expire()
    const before = await stored()
    proxy.clear()
    proxy.push(...faults)
    injected += faults.length
    const r = await runCli(['token', EMAIL], home.env, { timeoutMs: 60_000 })
    proxy.clear()
    return { code: r.code ?? -1, stderr: r.stderr, before, after: await stored() }
  }
  /** the grant survived: same refresh token, still active, and a clean refresh works */
  const grantKept = async (r: { before: Rec; after: Rec }): Promise<void> => {
    assert.equal(r.after.state, 'active')
    assert.equal(r.after.grant.refreshToken, r.before.grant.refreshToken, 'the refresh token is kept')
    const ok = await runCli(['token', EMAIL], home.env, { timeoutMs: 30_000 })
    assert.equal(ok.code, 0, ok.stderr)
    await remember(await stored())
  }

  const times = (n: number, f: Fault): Fault[] => Array.from({ length: n }, () => f)

  it('a reset before any answer, on every attempt: exit 75 (try later), grant kept', async () => {
    const r = await refreshThrough(times(3, { kind: 'reset-before' }))
    assert.equal(r.code, 75, r.stderr)
    assert.equal(r.after.lastError?.transient, true)
    assert.match(r.stderr, /faults@example\.test/)
    await grantKept(r)
  })

  it('a reset in the middle of the answer: exit 75, grant kept', async () => {
    const r = await refreshThrough(times(3, { kind: 'reset-mid', afterBytes: 40 }))
    assert.equal(r.code, 75, r.stderr)
    await grantKept(r)
  })

  it('a server that never answers: given up after http_timeout_sec, exit 75, grant kept', async () => {
    // more stalls than attempts: Node 24's fetch may open a second connection after an aborted one
    const stalls = proxy.used.stall ?? 0
    const r = await refreshThrough(times(6, { kind: 'stall' }))
    assert.equal(r.code, 75, r.stderr)
    assert.match(r.stderr, /did not answer in time for "faults@example\.test"/)
    // counted, not timed: every attempt gave up and the next one came, all before runCli's 60 s
    // watchdog (with the 30 s default, three attempts could not fit and the exit code above would fail)
    const attempts = (proxy.used.stall ?? 0) - stalls
    assert.ok(attempts >= 3, `3 attempts of 2 s and the back-off, not the 30 s default (${attempts} attempts)`)
    await grantKept(r)
  })

  it('an answer cut short (headers, then a close): exit 75, grant kept', async () => {
    const r = await refreshThrough(times(3, { kind: 'truncate', afterBytes: 150 }))
    assert.equal(r.code, 75, r.stderr)
    await grantKept(r)
  })

  it('one fault, then the server is back: the retry succeeds with one refresh at the server', async () => {
    lab.resetCounts()
    const r = await refreshThrough([{ kind: 'reset-before' }])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(lab.counts.refresh, 1)
    assert.notEqual(r.after.grant.accessToken, r.before.grant.accessToken, 'a new access token, stored')
    assert.ok(r.after.grant.expiresAt > Date.now())
    await remember(r.after)
  })

  it('bytes that are not HTTP: exit 75 (a broken path, not a refused grant), grant kept', async () => {
    const r = await refreshThrough(times(3, { kind: 'raw', bytes: 'SSH-2.0-OpenSSH_9.2\r\n' }))
    assert.equal(r.code, 75, r.stderr)
    await grantKept(r)
  })

  it('200 with an HTML page (a captive portal): exit 76, not a refused grant; nothing of the page in the message', async () => {
    const page =
      '<html><head><title>Hotel WiFi</title></head><body>Please log in secret-looking-page-text</body></html>'
    const r = await refreshThrough([{ kind: 'raw', bytes: httpAnswer('200 OK', 'text/html', page) }])
    assert.equal(r.code, 76, r.stderr)
    assert.equal(r.after.state, 'active')
    assert.doesNotMatch(r.stderr, /secret-looking-page-text/)
    await grantKept(r)
  })

  it('200 with JSON that does not parse: exit 76, grant kept', async () => {
    const body = '{"access_token": "abc", "token_type": '
    const r = await refreshThrough([{ kind: 'raw', bytes: httpAnswer('200 OK', 'application/json', body) }])
    assert.equal(r.code, 76, r.stderr)
    await grantKept(r)
  })

  it('with --debug (error causes printed), a broken answer that holds tokens shows none of them', async () => {
    const fakeRt = 'fake-refresh-token-in-a-broken-body-0123456789'
    const fakeAt = 'fake-access-token-in-a-broken-body-0123456789'
    secrets.push(fakeRt, fakeAt)
    await noteSecrets(fakeRt, fakeAt)
    const body = `{"access_token":"${fakeAt}","refresh_token":"${fakeRt}","token_type":"Bearer","expires_in":`
    await expire()
    const before = await stored()
    proxy.push({ kind: 'raw', bytes: httpAnswer('200 OK', 'application/json', body) })
    injected++
    const r = await runCli(['token', EMAIL, '--debug'], home.env, { timeoutMs: 30_000 })
    proxy.clear()
    assert.equal(r.code, 76, r.stderr)
    assert.match(r.stderr, /caused by|faults@example\.test/)
    assert.ok(!r.stderr.includes(fakeRt) && !r.stderr.includes(fakeAt), r.stderr)
    assert.equal(r.stdout, '')
    await grantKept({ before, after: await stored() })
  })

  it('a 20 MiB answer: refused at 1 MiB, exit 76, grant kept', async () => {
    const r = await refreshThrough([{ kind: 'huge', contentType: 'application/json', bytes: 20 * 1024 * 1024 }])
    assert.equal(r.code, 76, r.stderr)
    assert.match(r.stderr, /too large|larger than/)
    await grantKept(r)
  })

  it('a 400 HTML error page from something in between: not invalid_grant, so the grant is kept', async () => {
    const page = '<html><body>Bad Request</body></html>'
    const r = await refreshThrough([{ kind: 'raw', bytes: httpAnswer('400 Bad Request', 'text/html', page) }])
    assert.notEqual(r.code, 77, 'not "sign in again"')
    assert.ok(r.code === 75 || r.code === 76, `exit ${r.code}: ${r.stderr}`)
    await grantKept(r)
  })

  it('503 with Retry-After: 1 is waited out and retried; 429 with Retry-After: 120 fails at once with the wait', async () => {
    await expire()
    lab.injectTokenFault({ grantType: 'refresh_token', status: 503, headers: { 'retry-after': '1' }, body: 'busy' })
    injected++
    const t0 = Date.now()
    const ok = await runCli(['token', EMAIL], home.env, { timeoutMs: 30_000 })
    assert.equal(ok.code, 0, ok.stderr)
    assert.ok(Date.now() - t0 >= 1000, 'waited the second')
    const after = await stored()
    await remember(after)
    await expire()
    lab.injectTokenFault({
      grantType: 'refresh_token',
      status: 429,
      headers: { 'retry-after': '120' },
      body: { error: 'temporarily_unavailable' },
      times: 5,
    })
    injected++
    const requests = lab.counts.refresh
    const busy = await runCli(['token', EMAIL], home.env, { timeoutMs: 30_000 })
    lab.clearFaults()
    assert.equal(busy.code, 75, busy.stderr)
    // counted, not timed: one request and no second after a wait (runCli's watchdog is 30 s)
    assert.equal(lab.counts.refresh - requests, 1, 'did not sit out two minutes')
    assert.match(busy.stderr, /the server asks to wait 2 min \(Retry-After: 120\)[\s\S]*try again in 2 min/)
    await grantKept({ before: after, after: await stored() })
  })

  it('every fault was really injected, and no secret appeared in any output', () => {
    assert.ok(
      (proxy.used['reset-before'] ?? 0) >= 4 && (proxy.used.stall ?? 0) >= 3 && (proxy.used.huge ?? 0) === 1,
      JSON.stringify(proxy.used),
    )
    console.error(`faults injected: ${injected} (proxy: ${JSON.stringify(proxy.used)})`)
    assert.deepEqual(
      findLeaks(
        transcript
          .filter((t) => t.args[0] !== 'token')
          .map((t) => t.stdout + t.stderr)
          .concat(transcript.map((t) => t.stderr)),
        secrets,
      ),
      [],
    )
  })
})

describe('a server that rotates refresh tokens strictly, and an answer lost in transit', () => {
  let lab: LabServer
  let proxy: FaultProxy
  let home: TmpHome
  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 }) // rotation on, reuse revokes the grant
    proxy = await startFaultProxy({ host: '127.0.0.1', port: lab.port })
    home = await makeTmpHome()
    await signIn(lab, home, proxy.url)
  })
  after(async () => {
    await proxy?.close()
    await lab?.close()
    await home?.cleanup()
  })

  it('the server rotated, the answer never came, the retry finds the old token dead: exit 77 that says why, record kept and marked', async () => {
    const file = recordFile(home.env, EMAIL)
    const raw = JSON.parse(await readFile(file, 'utf8')) as Rec
    raw.grant.expiresAt = Date.now() - 1000
    await writeFile(file, JSON.stringify(raw), { mode: 0o600 })
    lab.resetCounts()
    proxy.push({ kind: 'reset-mid', afterBytes: 40 })
    const r = await runCli(['token', EMAIL], home.env, { timeoutMs: 60_000 })
    assert.equal(r.code, 77, r.stderr)
    assert.equal(lab.counts.refresh, 2, 'the request reached the server twice: the lost one and the retry')
    assert.match(r.stderr, /lost its connection before the answer arrived[\s\S]*mailkey add faults@example\.test/)
    const after = JSON.parse(await readFile(file, 'utf8')) as Rec
    assert.equal(after.state, 'reauth')
    assert.equal(after.grant.refreshToken, raw.grant.refreshToken, 'the record is kept as it was')
    // signing in again is the way out, and it works
    await signIn(lab, home, proxy.url)
    const ok = await runCli(['token', EMAIL], home.env)
    assert.equal(ok.code, 0, ok.stderr)
  })

  it('a server that was down (connection refused) never got the request: a later invalid_grant is no lost answer', async () => {
    const file = recordFile(home.env, EMAIL)
    const raw = JSON.parse(await readFile(file, 'utf8')) as Rec & { settings: { endpoints: { token: string } } }
    const tokenUrl = raw.settings.endpoints.token
    // a loopback port nobody listens on: every connection is refused before a byte is written
    const closed = createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const port = (closed.address() as AddressInfo).port
    await new Promise((r) => closed.close(r))
    raw.grant.expiresAt = Date.now() - 1000
    raw.settings.endpoints.token = `http://127.0.0.1:${port}/token`
    await writeFile(file, JSON.stringify(raw), { mode: 0o600 })
    lab.resetCounts()
    const down = await runCli(['token', EMAIL], home.env, { timeoutMs: 60_000 })
    assert.equal(down.code, 75, down.stderr)
    assert.match(down.stderr, /ECONNREFUSED/)
    // the server is back, and the grant is gone there: its answer is a plain invalid_grant
    const back = JSON.parse(await readFile(file, 'utf8')) as typeof raw
    assert.equal(back.lastError?.transient, true, 'the refused connection was recorded')
    back.settings.endpoints.token = tokenUrl
    await writeFile(file, JSON.stringify(back), { mode: 0o600 })
    await lab.revokeGrant(back.grant.refreshToken)
    const r = await runCli(['token', EMAIL], home.env, { timeoutMs: 60_000 })
    assert.equal(r.code, 77, r.stderr)
    assert.equal(lab.counts.refresh, 1, 'only the answered request reached the server')
    assert.match(r.stderr, /mailkey add faults@example\.test/)
    assert.doesNotMatch(r.stderr, /lost its connection|already replaced the refresh token/)
  })
})
