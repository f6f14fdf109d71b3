// End to end: refresh under pressure. 50 processes on one expired token (kill -9 rounds: kill.test.ts),
// transient failures, every error class and its exit code, env-defined accounts, and
// the fast path's module footprint. Real oidc-provider on loopback; faults injected in front of it.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile, mkdir, rm } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startOAuthServer, LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { BIN, runCli, spawnCli, transcript, findLeaks, noteSecrets } from '../harness/cli.js'
import { labFlags, signIn as labSignIn } from '../harness/sign-in.js'

const SCOPE = [...MAIL_SCOPES, 'offline_access'].join(' ')
const EMAIL = 'alice@example.test'

interface Rec {
  grant: { accessToken: string; refreshToken: string; expiresAt: number }
  state: string
  lastError?: { code: string }
}

async function stored(home: TmpHome, email = EMAIL): Promise<Rec> {
  return JSON.parse(await readFile(recordFile(home.env, email), 'utf8')) as Rec
}
/** The test's hand on the clock: make the stored access token look expired. */
async function expire(home: TmpHome, email = EMAIL): Promise<void> {
  const raw = JSON.parse(await readFile(recordFile(home.env, email), 'utf8')) as { grant: { expiresAt: number } }
  raw.grant.expiresAt = Date.now() - 1000
  await writeFile(recordFile(home.env, email), JSON.stringify(raw))
}

async function signIn(lab: LabServer, home: TmpHome, email: string): Promise<Rec> {
  await labSignIn(lab, home.env, email)
  return stored(home, email)
}

async function closedPort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as { port: number }).port
  await new Promise((r) => srv.close(r))
  return port
}

describe('refresh: concurrency, crashes, failures', () => {
  let lab: LabServer
  let home: TmpHome
  const secrets: string[] = []

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    home = await makeTmpHome()
    const rec = await signIn(lab, home, EMAIL)
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
  })
  after(async () => {
    await lab.close()
    await home.cleanup()
  })

  it('50 concurrent processes on an expired token cause exactly one refresh request', async () => {
    await expire(home)
    lab.resetCounts()
    // Hold the refresh at the server for a moment so that every process really overlaps it.
    lab.injectTokenFault({ grantType: 'refresh_token', delayMs: 400 })
    const results = await Promise.all(
      Array.from({ length: 50 }, () => runCli(['token', EMAIL], home.env, { timeoutMs: 60_000 })),
    )
    lab.clearFaults()
    assert.deepEqual(
      results.map((r) => r.code),
      Array(50).fill(0),
      results.find((r) => r.code !== 0)?.stderr,
    )
    assert.equal(lab.counts.refresh, 1, 'one request to the token endpoint')
    const rec = await stored(home)
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
    assert.ok(
      results.every((r) => r.stdout === rec.grant.accessToken + '\n'),
      'everyone printed the new token',
    )
    assert.equal((await lab.introspect(rec.grant.accessToken)).active, true)
  })

  it('transient server errors are retried; when they persist: exit 75 and the grant is kept', async () => {
    lab.resetCounts()
    lab.injectTokenFault({
      grantType: 'refresh_token',
      status: 503,
      body: '<html><body>Service Unavailable</body></html>',
      headers: { 'content-type': 'text/html' },
      times: 1,
    })
    const ok = await runCli(['token', EMAIL, '--force-refresh'], home.env)
    assert.equal(ok.code, 0, ok.stderr)
    assert.equal(lab.counts.refresh, 2, 'one failure, one retry')
    secrets.push(ok.stdout.trim())

    lab.resetCounts()
    lab.injectTokenFault({ grantType: 'refresh_token', status: 502, body: 'bad gateway', times: 3 })
    const bad = await runCli(['token', EMAIL, '--force-refresh'], home.env)
    assert.equal(bad.code, 75, bad.stderr)
    assert.equal(lab.counts.refresh, 3)
    assert.match(bad.stderr, /HTTP 502/)
    assert.match(bad.stderr, /try again/i)
    assert.equal(bad.stdout, '')
    const rec = await stored(home)
    assert.equal(rec.state, 'active')
    const again = await runCli(['token', EMAIL, '--force-refresh'], home.env)
    assert.equal(again.code, 0, 'the grant survived the outage')
    secrets.push(again.stdout.trim())
  })

  it('honours a short Retry-After on 429', async () => {
    lab.resetCounts()
    lab.injectTokenFault({
      grantType: 'refresh_token',
      status: 429,
      body: { error: 'temporarily_unavailable', error_description: 'slow down' },
      headers: { 'retry-after': '1' },
    })
    const t0 = Date.now()
    const r = await runCli(['token', EMAIL, '--force-refresh'], home.env)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(lab.counts.refresh, 2)
    assert.ok(Date.now() - t0 >= 1000, 'waited the second the server asked for')
    secrets.push(r.stdout.trim())
  })

  it('a dropped connection is transient (75), not a lost grant', async () => {
    lab.injectTokenFault({ grantType: 'refresh_token', destroySocket: true, times: 3 })
    const r = await runCli(['token', EMAIL, '--force-refresh'], home.env)
    lab.clearFaults()
    assert.equal(r.code, 75, r.stderr)
    assert.match(r.stderr, /cannot reach|did not answer|socket|reset|fetch failed/i)
    assert.equal((await stored(home)).state, 'active')
  })

  it('an unreachable server: exit 75 naming the host; a still-valid token is handed out with a warning', async () => {
    const port = await closedPort()
    const other = await makeTmpHome()
    try {
      // A second account whose token endpoint is dead.
      const rec = await signIn(lab, other, 'bob@example.test')
      secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
      const path = recordFile(other.env, 'bob@example.test')
      const raw = JSON.parse(await readFile(path, 'utf8')) as {
        settings: { endpoints: { token: string } }
        grant: { expiresAt: number; refreshedAt: number }
      }
      raw.settings.endpoints.token = `http://127.0.0.1:${port}/token`
      raw.grant.expiresAt = Date.now() + 120_000 // inside the 300 s margin, still valid
      raw.grant.refreshedAt = raw.grant.expiresAt - 3600_000 // an hour-long token near its end
      await writeFile(path, JSON.stringify(raw))
      const warm = await runCli(['token', 'bob@example.test'], other.env)
      assert.equal(warm.code, 0, warm.stderr)
      assert.equal(warm.stdout, rec.grant.accessToken + '\n')
      assert.match(warm.stderr, /warning: cannot reach 127\.0\.0\.1:\d+ .*\(ECONNREFUSED\); using the cached token/)
      raw.grant.expiresAt = Date.now() - 1000
      await writeFile(path, JSON.stringify(raw))
      const cold = await runCli(['token', 'bob@example.test'], other.env)
      assert.equal(cold.code, 75, cold.stderr)
      assert.match(cold.stderr, /ECONNREFUSED/)
      assert.equal(cold.stdout, '')
    } finally {
      await other.cleanup()
    }
  })

  it('revoked grant: exit 77, the record is kept and marked, and status explains', async () => {
    const other = await makeTmpHome()
    try {
      const rec = await signIn(lab, other, 'carol@example.test')
      secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
      await lab.revokeGrant(rec.grant.refreshToken)
      const r = await runCli(['token', 'carol@example.test', '--force-refresh'], other.env)
      assert.equal(r.code, 77, r.stderr)
      assert.match(r.stderr, /carol@example\.test/)
      assert.match(r.stderr, /invalid_grant/)
      assert.match(r.stderr, /Run "mailkey add carol@example\.test"/)
      const after = await stored(other, 'carol@example.test')
      assert.equal(after.state, 'reauth')
      assert.equal(after.grant.refreshToken, rec.grant.refreshToken, 'nothing is deleted')
      const s = await runCli(['status', 'carol@example.test'], other.env)
      assert.match(s.stdout, /NEEDS SIGN-IN: run "mailkey add carol@example\.test"/)
      assert.match(s.stdout, /meaning/)
      // the last access token has time left, but it is not offered as valid beside NEEDS SIGN-IN
      assert.match(s.stdout, /access token\s+not usable: the server refused the grant/)
      assert.doesNotMatch(s.stdout, /valid for/)
      // Signing in again clears the state.
      const again = await signIn(lab, other, 'carol@example.test')
      secrets.push(again.grant.accessToken, again.grant.refreshToken)
      assert.equal(again.state, 'active')
      assert.equal((await runCli(['token', 'carol@example.test'], other.env)).code, 0)
      // --min-validity beyond half a token's life: a fresh token with less left, and a note saying so
      const long = await runCli(['token', 'carol@example.test', '--min-validity', '86400'], other.env)
      assert.equal(long.code, 0, long.stderr)
      assert.match(long.stderr, /valid for \d+ s, less than --min-validity 86400/)
      const fine = await runCli(['token', 'carol@example.test', '--min-validity', '10'], other.env)
      assert.doesNotMatch(fine.stderr, /less than --min-validity/)
      secrets.push(long.stdout.trim(), fine.stdout.trim())
    } finally {
      await other.cleanup()
    }
  })

  it('exit codes: usage 64, unknown account / config 78, corrupt store 74, interrupted 130', async () => {
    const usage = [
      await runCli(['add'], home.env),
      await runCli(['add', EMAIL, '--device', '--browser'], home.env),
      await runCli(['add', 'not-an-address'], home.env),
      await runCli(['token', EMAIL, '--bogus'], home.env),
      await runCli(['frobnicate'], home.env),
      await runCli(['add', EMAIL, '--provider', 'google', '--device'], home.env),
      await runCli(['add', 'x@example.test', '--issuer', lab.issuer, '--client-id', 'c'], home.env),
    ]
    for (const r of usage) {
      assert.equal(r.code, 64, r.stderr)
      assert.match(r.stderr, /^mailkey: /)
    }
    assert.match(usage[5]?.stderr ?? '', /Google does not allow mail scopes in the device flow/)
    assert.match(usage[6]?.stderr ?? '', /--scope/)
    const unknown = await runCli(['token', 'nobody@example.test'], home.env)
    assert.equal(unknown.code, 78)
    assert.match(unknown.stderr, /Run "mailkey add nobody@example\.test"/)
    const insecure = await runCli(
      [
        'add',
        'x@example.test',
        '--token-url',
        'http://login.example.com/token',
        '--device-url',
        'http://login.example.com/device',
        '--client-id',
        'c',
        '--scope',
        'mail',
      ],
      home.env,
    )
    assert.equal(insecure.code, 78, insecure.stderr)
    assert.match(insecure.stderr, /must use https/)

    const other = await makeTmpHome()
    try {
      const cfgDir = join(other.env.XDG_CONFIG_HOME as string, 'mailkey')
      await mkdir(cfgDir, { recursive: true })
      await writeFile(
        join(cfgDir, 'config.toml'),
        'refresh_margin_sec = 300\n[providers.lab]\nissuer = "http://127.0.0.1:9"\nflows = ["carrier-pigeon"]\n',
      )
      const cfg = await runCli(['add', 'x@example.test', '--provider', 'lab'], other.env)
      assert.equal(cfg.code, 78, cfg.stderr)
      assert.match(cfg.stderr, /config\.toml:4:1: unknown flow "carrier-pigeon"/)
      await writeFile(join(cfgDir, 'config.toml'), 'refresh_margin_sec = = 3\n')
      const syntax = await runCli(['add', 'x@example.test', '--provider', 'lab'], other.env)
      assert.equal(syntax.code, 78)
      assert.match(syntax.stderr, /config\.toml:1:\d+/)
      await rm(join(cfgDir, 'config.toml'))

      await mkdir(join(other.env.XDG_STATE_HOME as string, 'mailkey', 'accounts'), { recursive: true, mode: 0o700 })
      await writeFile(recordFile(other.env, 'zed@example.test'), '{ "v": 1, "settings": {', { mode: 0o600 })
      const corrupt = await runCli(['token', 'zed@example.test'], other.env)
      assert.equal(corrupt.code, 74, corrupt.stderr)
      assert.match(corrupt.stderr, /cannot be used: it is not valid JSON/)
      assert.match(corrupt.stderr, /left it untouched/)
      assert.equal(await readFile(recordFile(other.env, 'zed@example.test'), 'utf8'), '{ "v": 1, "settings": {')
      const list = await runCli(['list'], other.env)
      assert.equal(list.code, 0)
      assert.match(list.stderr, /zed@example\.test\.json/)

      const cli = spawnCli(['add', 'yan@example.test', '--device', '--json', ...labFlags(lab)], other.env)
      await cli.event('device_code')
      cli.child.kill('SIGINT')
      const r = await cli.done
      assert.equal(r.code, 130, r.stderr)
      await assert.rejects(readFile(recordFile(other.env, 'yan@example.test')))
    } finally {
      await other.cleanup()
    }
  })

  it('an account defined only by environment variables works, and keeps its rotated refresh token', async () => {
    const seedHome = await makeTmpHome()
    const box = await makeTmpHome() // the "container": no config, no prior sign-in
    try {
      const seed = await signIn(lab, seedHome, 'dan@example.test')
      secrets.push(seed.grant.accessToken, seed.grant.refreshToken)
      const env = {
        ...box.env,
        MAILKEY_EMAIL: 'dan@example.test',
        MAILKEY_ISSUER: lab.issuer,
        MAILKEY_CLIENT_ID: LAB_PUBLIC_CLIENT_ID,
        MAILKEY_SCOPE: SCOPE,
        MAILKEY_REFRESH_TOKEN: seed.grant.refreshToken,
      }
      lab.resetCounts()
      const first = await runCli(['token'], env)
      assert.equal(first.code, 0, first.stderr)
      assert.equal(lab.counts.refresh, 1)
      const rec = await stored(box, 'dan@example.test')
      secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
      await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
      assert.equal(first.stdout, rec.grant.accessToken + '\n')
      assert.notEqual(rec.grant.refreshToken, seed.grant.refreshToken, 'the rotated token is kept in the state dir')
      const second = await runCli(['token', 'dan@example.test', '--force-refresh'], env)
      assert.equal(second.code, 0, 'the consumed seed in the environment is not used again')
      secrets.push(second.stdout.trim())
      assert.equal(lab.counts.refresh, 2)
      // A new token in the environment (a rotated secret) replaces the stored grant.
      const seed2 = await signIn(lab, seedHome, 'dan@example.test')
      secrets.push(seed2.grant.accessToken, seed2.grant.refreshToken)
      const file = join(box.dir, 'rt-secret')
      await writeFile(file, seed2.grant.refreshToken + '\n', { mode: 0o600 })
      const env2 = { ...env, MAILKEY_REFRESH_TOKEN: '', MAILKEY_REFRESH_TOKEN_FILE: file }
      const third = await runCli(['token', '--force-refresh'], env2)
      assert.equal(third.code, 0, third.stderr)
      secrets.push(third.stdout.trim())
      const missing = await runCli(['token'], { ...box.env, MAILKEY_EMAIL: 'dan@example.test' })
      assert.equal(missing.code, 78)
      assert.match(missing.stderr, /MAILKEY_REFRESH_TOKEN/)
    } finally {
      await seedHome.cleanup()
      await box.cleanup()
    }
  })

  it('the fast path loads no OAuth, TOML or QR code (and the full path does)', async () => {
    const preload = fileURLToPath(new URL('../harness/module-log.mjs', import.meta.url))
    const loads = async (
      args: string[],
      name: string,
    ): Promise<{ code: number | null; out: string; loaded: string }> => {
      const log = join(home.dir, `${name}.log`)
      await writeFile(log, '')
      const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const c = spawn(process.execPath, ['--import', preload, BIN, ...args], {
          env: { ...home.env, MODULE_LOG: log },
        })
        let out = ''
        c.stdout.on('data', (d) => (out += d))
        c.once('close', (code) => resolve({ code, out }))
      })
      return { ...r, loaded: await readFile(log, 'utf8') }
    }
    const fast = await loads(['token', EMAIL], 'fast')
    assert.equal(fast.code, 0)
    secrets.push(fast.out.trim())
    assert.equal(fast.out, (await stored(home)).grant.accessToken + '\n')
    for (const heavy of ['oauth4webapi', 'smol-toml', 'uqr', '/oauth/', 'sign-in.js', 'dist/cli/main.js']) {
      assert.ok(!fast.loaded.includes(heavy), `${heavy} was loaded on the fast path`)
    }
    // a config.toml without refresh_margin_sec (the proxy's listeners) keeps the fast path; one that
    // sets it hands over to the full CLI, which parses it
    const cfgDir = join(home.env.XDG_CONFIG_HOME as string, 'mailkey')
    await mkdir(cfgDir, { recursive: true })
    await writeFile(join(cfgDir, 'config.toml'), '[proxy]\n[[proxy.listeners]]\nprotocol = "imap"\nport = 1143\n')
    const withCfg = await loads(['token', EMAIL], 'fast-config')
    assert.equal(withCfg.code, 0)
    assert.ok(!withCfg.loaded.includes('dist/cli/main.js'), 'fast path with a config.toml that sets no margin')
    for (const [i, text] of [
      'refresh_margin_sec = 120\n',
      '[providers.campus]\ntoken_url = "https://t.example/token"\ngrant_max_age_days = 7\n',
    ].entries()) {
      await writeFile(join(cfgDir, 'config.toml'), text)
      const full = await loads(['token', EMAIL], `full-config-${i}`)
      assert.equal(full.code, 0)
      assert.match(
        full.loaded,
        /dist\/cli\/main\.js/,
        "the full CLI reads the margin, or the providers' grant horizons",
      )
    }
    await rm(join(cfgDir, 'config.toml'))
    // The same logger sees the full CLI and the OAuth code when a refresh is needed.
    const slow = await loads(['token', EMAIL, '--force-refresh'], 'slow')
    assert.equal(slow.code, 0)
    secrets.push(slow.out.trim())
    assert.match(slow.loaded, /dist\/cli\/main\.js/)
    assert.match(slow.loaded, /dist\/cli\/commands\/token\.js/)
  })

  it('no secret appeared in any output of this suite', () => {
    const texts = transcript.flatMap((t) => (t.args[0] === 'token' ? [t.stderr] : [t.stdout, t.stderr]))
    assert.ok(secrets.length > 20)
    assert.deepEqual(findLeaks(texts, secrets), [])
  })
})
