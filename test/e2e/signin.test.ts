// End to end: the built `mailkey` binary against a real OAuth server (oidc-provider) on loopback.
// Device code, browser (scripted HTTP and real Chromium), paste, import, token formats, status,
// list, remove, client-id fallback, file modes.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat, writeFile, mkdir, readdir } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import * as oauth from 'oauth4webapi'
import {
  startOAuthServer,
  LAB_PUBLIC_CLIENT_ID,
  LAB_SECRET_CLIENT_ID,
  LAB_CLIENT_SECRET,
  MAIL_SCOPES,
  type LabServer,
} from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { BIN, runCli, spawnCli, transcript, findLeaks, noteSecrets } from '../harness/cli.js'
import { chromiumAvailable, chromiumOpenCommand } from '../harness/chromium.js'
import { runInPty } from '../harness/pty.js'

const SCOPE = [...MAIL_SCOPES, 'offline_access'].join(' ')

interface Stored {
  settings: Record<string, unknown>
  grant: { accessToken: string; refreshToken: string; expiresAt: number; refreshedAt: number }
  state: string
}

async function stored(home: TmpHome, email: string): Promise<Stored> {
  return JSON.parse(await readFile(recordFile(home.env, email), 'utf8')) as Stored
}

/** Refresh directly with oauth4webapi, as another client holding this refresh token would. */
async function directRefresh(
  lab: LabServer,
  rt: string,
  clientId = LAB_PUBLIC_CLIENT_ID,
): Promise<oauth.TokenEndpointResponse> {
  const as: oauth.AuthorizationServer = { issuer: lab.issuer, token_endpoint: `${lab.issuer}/token` }
  const client = { client_id: clientId }
  const res = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), rt, {
    [oauth.allowInsecureRequests]: true,
  })
  return oauth.processRefreshTokenResponse(as, client, res)
}

describe('mailkey add / token / status against a real OAuth server', () => {
  let lab: LabServer
  let home: TmpHome
  const secrets: string[] = [LAB_CLIENT_SECRET]
  const labFlags = (): string[] => ['--issuer', lab.issuer, '--client-id', LAB_PUBLIC_CLIENT_ID, '--scope', SCOPE]

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    home = await makeTmpHome()
  })
  after(async () => {
    await lab.close()
    await home.cleanup()
  })

  it('device flow: prints the code as a JSON event, polls, stores the grant, exits 0', async () => {
    // a PATH with no mailkey on it, as after "npx mailkey add" in a clone
    const cli = spawnCli(['add', 'alice@example.test', '--device', '--json', ...labFlags()], {
      ...home.env,
      PATH: join(home.dir, 'no-such-dir'),
    })
    const ev = await cli.event('device_code')
    assert.match(String(ev.user_code), /^[A-Z]{4}-[A-Z]{4}$/)
    assert.equal(ev.verification_uri, `${lab.issuer}/device`)
    assert.equal(typeof ev.expires_in, 'number')
    assert.equal(ev.interval, 1)
    assert.equal(ev.device_code, undefined, 'the device code is a secret and is never printed')
    await lab.approveDevice(String(ev.user_code), { login: 'alice@example.test' })
    const r = await cli.done
    assert.equal(r.code, 0, r.stderr)
    const signed = await cli.event('signed_in')
    assert.equal(signed.account, 'alice@example.test')
    assert.match(r.stderr, /Signed in alice@example\.test/)
    // a custom provider is named by its server, not as "custom"
    assert.match(r.stderr, /Signed in alice@example\.test with the OAuth server at 127\.0\.0\.1:\d+\./)
    // no mailkey on PATH: the next commands name this one in full, and say how to put it there
    assert.match(r.stderr, /Next: "(\S+ )?\S*mailkey\.cjs token alice@example\.test"[^]*Note: no "mailkey" is on PATH/)
    assert.match(r.stderr, /enter the code/)
    assert.match(r.stderr, /warning: this server is reached over plain http/)
    const rec = await stored(home, 'alice@example.test')
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
    assert.equal(rec.state, 'active')
    assert.equal(rec.settings.flow, 'device')
    assert.ok(rec.grant.refreshToken.length > 20)
    const intro = await lab.introspect(rec.grant.accessToken)
    assert.equal(intro.active, true)
    assert.equal(intro.email, 'alice@example.test')
  })

  it(
    'device flow on a terminal: QR code and a countdown (run under a pty with script(1))',
    {
      skip:
        !existsSync('/usr/bin/script') && !process.env.CI
          ? 'script(1) is not installed (apt-get install bsdutils)'
          : false,
    },
    async () => {
      const tty = runInPty([process.execPath, BIN, 'add', 'tty@example.test', '--device', ...labFlags()], {
        ...home.env,
        TERM: 'xterm',
      })
      await tty.waitFor(/enter the code\s+[A-Z]{4}-[A-Z]{4}[\s\S]*Waiting for you to approve/)
      const out0 = tty.screen()
      const code = /enter the code\s+([A-Z]{4}-[A-Z]{4})/.exec(out0)?.[1] as string
      assert.match(out0, /[▀▄█]{6}/, 'a QR code drawn with block characters')
      assert.match(out0, /the code expires in (\d+ min \d\d s|\d+ s)/)
      await lab.approveDevice(code, { login: 'tty@example.test' })
      const exit = await tty.end(30_000)
      const out = tty.screen()
      transcript.push({ args: ['add', '(tty)'], stdout: out, stderr: '' })
      assert.equal(exit, 0, out)
      assert.match(out, /Signed in tty@example\.test/)
      const rec = await stored(home, 'tty@example.test')
      secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    },
  )

  it("an id_token whose issuer names the user's tenant (Microsoft /common style) is accepted; another identity is refused unless --sign-in-as names it", async () => {
    const now = Math.floor(Date.now() / 1000)
    const b64u = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
    const tid = '9188040d-6c67-4c5b-b112-36a304b66dad'
    const idToken = `${b64u({ alg: 'RS256', typ: 'JWT' })}.${b64u({ iss: `https://login.microsoftonline.com/${tid}/v2.0`, tid, aud: LAB_PUBLIC_CLIENT_ID, sub: 'x', email: 'someone.else@example.test', iat: now, exp: now + 3600 })}.c2ln`
    const fake = {
      access_token: 'tenant-style-fake-access-token-0001',
      refresh_token: 'tenant-style-fake-refresh-token-0001',
      token_type: 'Bearer',
      expires_in: 3600,
      scope: MAIL_SCOPES.join(' '),
      id_token: idToken,
    }
    secrets.push(fake.access_token, fake.refresh_token)
    // issue 11 item 7: a grant for someone else is not stored with a warning any more
    lab.injectTokenFault({ grantType: 'urn:ietf:params:oauth:grant-type:device_code', status: 200, body: fake })
    const refused = spawnCli(['add', 'tenant@example.test', '--device', '--json', ...labFlags()], home.env)
    const no = await refused.done
    lab.clearFaults()
    assert.equal(no.code, 77, no.stderr)
    assert.match(
      no.stderr,
      /the server signed in someone\.else@example\.test, not tenant@example\.test; nothing was stored/,
    )
    await assert.rejects(stored(home, 'tenant@example.test'))
    lab.injectTokenFault({ grantType: 'urn:ietf:params:oauth:grant-type:device_code', status: 200, body: fake })
    const cli = spawnCli(
      ['add', 'tenant@example.test', '--device', '--json', '--sign-in-as', 'someone.else@example.test', ...labFlags()],
      home.env,
    )
    const r = await cli.done
    lab.clearFaults()
    assert.equal(r.code, 0, r.stderr)
    const signed = (await cli.event('signed_in')) as {
      status: { identity: { email: string; tid: string; iss: string } }
    }
    assert.equal(signed.status.identity.email, 'someone.else@example.test')
    assert.equal(signed.status.identity.tid, tid)
    assert.match(r.stderr, /Signed in tenant@example\.test \(signed in as someone\.else@example\.test\)/)
    const st = await runCli(['status', 'tenant@example.test'], home.env)
    assert.match(st.stdout, /via device as someone\.else@example\.test/)
    assert.equal((await runCli(['remove', 'tenant@example.test', '--no-revoke'], home.env)).code, 0)
  })

  it('keeps the state directory 0700 and the record 0600', async () => {
    const state = join(home.env.XDG_STATE_HOME as string, 'mailkey')
    assert.equal((await stat(state)).mode & 0o777, 0o700)
    assert.equal((await stat(join(state, 'accounts'))).mode & 0o777, 0o700)
    for (const f of await readdir(join(state, 'accounts'))) {
      assert.equal((await stat(join(state, 'accounts', f))).mode & 0o777, 0o600, f)
    }
  })

  it('token prints only the access token and a newline, from the cache, without a request', async () => {
    lab.resetCounts()
    const r = await runCli(['token', 'alice@example.test'], home.env)
    assert.equal(r.code, 0, r.stderr)
    const rec = await stored(home, 'alice@example.test')
    assert.equal(r.stdout, rec.grant.accessToken + '\n')
    assert.equal(r.stderr, '')
    assert.equal(lab.counts.refresh, 0)
  })

  it('token --sasl xoauth2 and oauthbearer print the base64 initial responses', async () => {
    const rec = await stored(home, 'alice@example.test')
    const x = await runCli(['token', 'alice@example.test', '--sasl', 'xoauth2'], home.env)
    assert.equal(x.code, 0, x.stderr)
    assert.equal(
      Buffer.from(x.stdout.trim(), 'base64').toString(),
      `user=alice@example.test\x01auth=Bearer ${rec.grant.accessToken}\x01\x01`,
    )
    const o = await runCli(
      ['token', 'alice@example.test', '--sasl', 'OAUTHBEARER', '--host', 'imap.example.test', '--port', '993'],
      home.env,
    )
    assert.equal(o.code, 0, o.stderr)
    assert.equal(
      Buffer.from(o.stdout.trim(), 'base64').toString(),
      `n,a=alice@example.test,\x01host=imap.example.test\x01port=993\x01auth=Bearer ${rec.grant.accessToken}\x01\x01`,
    )
    const bad = await runCli(['token', 'alice@example.test', '--sasl', 'plain'], home.env)
    assert.equal(bad.code, 64)
    assert.equal(bad.stdout, '')
  })

  it('token --json gives token, expiry and scopes', async () => {
    const r = await runCli(['token', 'alice@example.test', '--json'], home.env)
    assert.equal(r.code, 0, r.stderr)
    const j = JSON.parse(r.stdout) as Record<string, unknown>
    const rec = await stored(home, 'alice@example.test')
    assert.equal(j.access_token, rec.grant.accessToken)
    assert.equal(j.token_type, 'Bearer')
    assert.equal(j.expires_at, new Date(rec.grant.expiresAt).toISOString())
    assert.ok(typeof j.expires_in === 'number' && j.expires_in > 3000)
    for (const s of MAIL_SCOPES) assert.ok(String(j.scope).includes(s), s)
  })

  it('--force-refresh rotates the refresh token; the old one is then refused by the server', async () => {
    const before = await stored(home, 'alice@example.test')
    lab.resetCounts()
    const r = await runCli(['token', 'alice@example.test', '--force-refresh'], home.env)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(lab.counts.refresh, 1)
    const after = await stored(home, 'alice@example.test')
    secrets.push(after.grant.accessToken, after.grant.refreshToken)
    await noteSecrets(after.grant.accessToken, after.grant.refreshToken)
    assert.notEqual(after.grant.refreshToken, before.grant.refreshToken, 'rotated')
    assert.equal(r.stdout, after.grant.accessToken + '\n')
    // The old refresh token is consumed. Reusing it makes oidc-provider revoke the whole grant,
    // so check it with a throw-away second sign-in instead of alice's live grant: see import test.
  })

  it('status and list describe the account without printing a token', async () => {
    const s = await runCli(['status', 'alice@example.test'], home.env)
    assert.equal(s.code, 0, s.stderr)
    assert.match(s.stdout, /alice@example\.test/)
    assert.match(s.stdout, /client id\s+mailkey-lab/)
    assert.match(s.stdout, /access token\s+valid for/)
    assert.match(s.stdout, /refresh token\s+received 0 days ago/)
    assert.match(s.stdout, /not encrypted/)
    const j = JSON.parse((await runCli(['status', 'alice@example.test', '--json'], home.env)).stdout) as Record<
      string,
      any
    >
    assert.equal(j.provider, 'custom')
    assert.equal(j.state, 'active')
    assert.equal(j.access_token.valid, true)
    assert.equal(j.refresh_token.present, true)
    assert.equal(j.storage.encrypted, false)
    const l = await runCli(['list'], home.env)
    assert.match(l.stdout, /^alice@example\.test\tcustom\ttoken valid/m)
    for (const out of [s.stdout, JSON.stringify(j), l.stdout]) assert.deepEqual(findLeaks([out], secrets), [])
  })

  it('browser flow: loopback redirect with PKCE and state; the "browser" is scripted HTTP', async () => {
    const env = { ...home.env, MAILKEY_BROWSER: 'true' } // a browser that opens nothing; the test plays the user
    const cli = spawnCli(['add', 'bob@example.test', '--browser', '--json', ...labFlags()], env)
    const ev = await cli.event('authorization_url')
    const url = new URL(String(ev.url))
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256')
    assert.ok((url.searchParams.get('code_challenge') ?? '').length >= 43)
    assert.ok((url.searchParams.get('state') ?? '').length >= 20)
    assert.match(url.searchParams.get('redirect_uri') ?? '', /^http:\/\/127\.0\.0\.1:\d+\/$/)
    assert.equal(url.searchParams.get('login_hint'), 'bob@example.test')
    assert.equal(ev.browser_opened, true)
    const redirect = await lab.completeAuthorization(url.href, { login: 'bob@example.test' })
    // a stray request without the right state must not end the sign-in
    const stray = await fetch(new URL('/?code=forged&state=wrong', redirect))
    assert.equal(stray.status, 400)
    const page = await fetch(redirect)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /You can close this tab/)
    const r = await cli.done
    assert.equal(r.code, 0, r.stderr)
    const rec = await stored(home, 'bob@example.test')
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
    assert.equal(rec.settings.flow, 'browser')
    assert.equal((await lab.introspect(rec.grant.accessToken)).email, 'bob@example.test')
  })

  it('browser flow: a declined consent exits 77 and stores nothing', async () => {
    const env = { ...home.env, MAILKEY_BROWSER: 'true' }
    const cli = spawnCli(['add', 'carol@example.test', '--browser', '--json', ...labFlags()], env)
    const ev = await cli.event('authorization_url')
    const redirect = await lab.completeAuthorization(String(ev.url), { login: 'carol@example.test', deny: true })
    await fetch(redirect)
    const r = await cli.done
    assert.equal(r.code, 77, r.stderr)
    assert.match(r.stderr, /access_denied/)
    assert.match(r.stderr, /mailkey add carol@example\.test/)
    await assert.rejects(stored(home, 'carol@example.test'))
  })

  it('paste flow: the user pastes the final address back', async () => {
    const cli = spawnCli(['add', 'dave@example.test', '--paste', '--timeout', '60', '--json', ...labFlags()], home.env)
    const ev = await cli.event('authorization_url')
    assert.equal(ev.browser_opened, false)
    const redirect = await lab.completeAuthorization(String(ev.url), { login: 'dave@example.test' })
    // Both lines in one chunk, as a terminal paste delivers them: the second must not be lost.
    cli.child.stdin.write('this is not it\n' + redirect + '\n')
    const r = await cli.done
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /paste/i)
    const rec = await stored(home, 'dave@example.test')
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    assert.equal(rec.settings.flow, 'paste')
  })

  it('picks the device flow by itself when there is no browser (headless, SSH)', async () => {
    const env = { ...home.env, SSH_CONNECTION: '10.0.0.1 5000 10.0.0.2 22' }
    const cli = spawnCli(['add', 'erin@example.test', '--json', ...labFlags()], env)
    const plan = await cli.event('plan')
    assert.equal(plan.flow, 'device')
    const ev = await cli.event('device_code')
    await lab.approveDevice(String(ev.user_code), { login: 'erin@example.test' })
    assert.equal((await cli.done).code, 0)
    const rec = await stored(home, 'erin@example.test')
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
  })

  it('device flow: a denied request exits 77 with the next command', async () => {
    const cli = spawnCli(['add', 'frank@example.test', '--device', '--json', ...labFlags()], home.env)
    const ev = await cli.event('device_code')
    await lab.approveDevice(String(ev.user_code), { login: 'frank@example.test', deny: true })
    const r = await cli.done
    assert.equal(r.code, 77, r.stderr)
    assert.match(r.stderr, /declined|access_denied/)
    assert.match(r.stderr, /mailkey add frank@example\.test/)
    const err = await cli.event('error')
    assert.equal((err.error as { exit_code: number }).exit_code, 77)
  })

  it('import: validates a refresh token with one refresh and stores the rotated one', async () => {
    // Get a grant that belongs to no mailkey account (as if from another client).
    const other = await makeTmpHome()
    try {
      const cli = spawnCli(['add', 'grace@example.test', '--device', '--json', ...labFlags()], other.env)
      await lab.approveDevice(String((await cli.event('device_code')).user_code), { login: 'grace@example.test' })
      assert.equal((await cli.done).code, 0)
      const foreign = await stored(other, 'grace@example.test')
      secrets.push(foreign.grant.accessToken, foreign.grant.refreshToken)
      const file = join(home.dir, 'rt.txt')
      await writeFile(file, foreign.grant.refreshToken + '\n', { mode: 0o600 })
      lab.resetCounts()
      const r = await runCli(['import', 'grace@example.test', '--refresh-token-file', file, ...labFlags()], home.env)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(lab.counts.refresh, 1)
      const mine = await stored(home, 'grace@example.test')
      secrets.push(mine.grant.accessToken, mine.grant.refreshToken)
      assert.notEqual(mine.grant.refreshToken, foreign.grant.refreshToken, 'the rotated token is stored')
      assert.equal(mine.settings.flow, 'import')
      // Rotation: the imported (old) token is now refused by the server.
      await assert.rejects(
        directRefresh(lab, foreign.grant.refreshToken),
        (e: unknown) => e instanceof oauth.ResponseBodyError && e.error === 'invalid_grant',
      )
      // ...and oidc-provider's reuse detection revoked the grant: mailkey says sign in again (77).
      const t = await runCli(['token', 'grace@example.test', '--force-refresh'], home.env)
      assert.equal(t.code, 77, t.stderr)
      assert.match(t.stderr, /invalid_grant/)
      assert.match(t.stderr, /mailkey add grace@example\.test/)
      assert.equal(t.stdout, '')
      const st = JSON.parse((await runCli(['status', 'grace@example.test', '--json'], home.env)).stdout) as Record<
        string,
        any
      >
      assert.equal(st.state, 'reauth')
      assert.equal(st.last_error.oauth_error, 'invalid_grant')
      assert.ok(st.last_error.meaning)
      // the token it still holds is no longer handed out: JSON must not call it valid (issue 15, item 7)
      assert.equal(st.access_token.valid, false)
      assert.equal(st.next, 'mailkey add grace@example.test')
      // A plain `token` now fails fast without asking the server again.
      lab.resetCounts()
      assert.equal((await runCli(['token', 'grace@example.test'], home.env)).code, 77)
      assert.equal(lab.counts.refresh, 0)
    } finally {
      await other.cleanup()
    }
  })

  it('import refuses a bad refresh token and stores nothing', async () => {
    const file = join(home.dir, 'bad-rt.txt')
    await writeFile(file, 'not-a-real-refresh-token-value\n')
    const r = await runCli(['import', 'henry@example.test', '--refresh-token-file', file, ...labFlags()], home.env)
    assert.equal(r.code, 77, r.stderr)
    await assert.rejects(stored(home, 'henry@example.test'))
  })

  it('confidential client: --client-secret is sent to the token endpoint and never printed', async () => {
    const cli = spawnCli(
      [
        'add',
        'ivy@example.test',
        '--device',
        '--json',
        '--issuer',
        lab.issuer,
        '--client-id',
        LAB_SECRET_CLIENT_ID,
        '--client-secret',
        LAB_CLIENT_SECRET,
        '--scope',
        SCOPE,
      ],
      home.env,
    )
    await lab.approveDevice(String((await cli.event('device_code')).user_code), { login: 'ivy@example.test' })
    const r = await cli.done
    assert.equal(r.code, 0, r.stderr)
    const t = await runCli(['token', 'ivy@example.test', '--force-refresh'], home.env)
    assert.equal(t.code, 0, t.stderr)
    const rec = await stored(home, 'ivy@example.test')
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    const st = await runCli(['status', 'ivy@example.test', '--json'], home.env)
    assert.ok(!st.stdout.includes(LAB_CLIENT_SECRET))
  })

  it('tries the next client id when the first is refused (AADSTS7000112-style)', async () => {
    const cfgDir = join(home.env.XDG_CONFIG_HOME as string, 'mailkey')
    await mkdir(cfgDir, { recursive: true })
    await writeFile(
      join(cfgDir, 'config.toml'),
      [
        '[providers.lab]',
        `issuer = "${lab.issuer}"`,
        'client_ids = ["retired-client", "mailkey-lab"]',
        `scopes = ${JSON.stringify([...MAIL_SCOPES, 'offline_access'])}`,
        'flows = ["device", "browser", "paste"]',
        'imap_url = "imaps://127.0.0.1:9993"',
        '',
      ].join('\n'),
    )
    lab.deny('retired-client')
    try {
      const cli = spawnCli(['add', 'judy@example.test', '--provider', 'lab', '--device', '--json'], home.env)
      const rejected = await cli.event('client_rejected')
      assert.equal(rejected.client_id, 'retired-client')
      assert.equal(rejected.next_client_id, 'mailkey-lab')
      await lab.approveDevice(String((await cli.event('device_code')).user_code), { login: 'judy@example.test' })
      const r = await cli.done
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stderr, /retired-client was refused/)
      const rec = await stored(home, 'judy@example.test')
      secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
      assert.equal(rec.settings.clientId, 'mailkey-lab')
      assert.equal(rec.settings.provider, 'lab')
      assert.deepEqual(rec.settings.servers, { imap: 'imaps://127.0.0.1:9993' })
    } finally {
      lab.allow('retired-client')
    }
  })

  it('browser flow: gives up cleanly when nobody signs in before --timeout', async () => {
    const env = { ...home.env, MAILKEY_BROWSER: 'true' }
    const r = await runCli(['add', 'lou@example.test', '--browser', '--timeout', '5', ...labFlags()], env, {
      timeoutMs: 30_000,
    })
    assert.equal(r.code, 77, r.stderr)
    assert.match(r.stderr, /no sign-in for "lou@example\.test" arrived within 5 s/)
    assert.match(r.stderr, /mailkey add lou@example\.test/)
    // the server may have refused the redirect in the browser: the other ways, and a fixed port
    assert.match(r.stderr, /may not have accepted the redirect http:\/\/127\.0\.0\.1:\d+\//)
    assert.match(r.stderr, /"mailkey add lou@example\.test --device"/)
    assert.match(r.stderr, /"mailkey add lou@example\.test --paste"/)
    assert.match(r.stderr, /"mailkey add lou@example\.test --port PORT"/)
    await assert.rejects(stored(home, 'lou@example.test'))
  })

  it('Microsoft accounts get XOAUTH2 only: --sasl oauthbearer is refused', async () => {
    // A Microsoft record as `mailkey add` writes it (no real Microsoft is contacted: the token is fresh).
    const path = recordFile(home.env, 'ms@example.test')
    const now = Date.now()
    await writeFile(
      path,
      JSON.stringify({
        v: 1,
        settings: {
          email: 'ms@example.test',
          provider: 'microsoft',
          tenant: 'common',
          clientId: '9e5f94bc-e8a4-4e73-b8be-63364c29d753',
          scopes: ['https://outlook.office.com/IMAP.AccessAsUser.All', 'offline_access'],
          endpoints: { token: 'https://login.microsoftonline.com/common/oauth2/v2.0/token' },
          servers: { imap: 'imaps://outlook.office365.com:993' },
          sasl: 'XOAUTH2',
          flow: 'device',
        },
        grant: {
          accessToken: 'ms-fake-access-token-for-the-test',
          expiresAt: now + 3600_000,
          refreshedAt: now,
          grantedAt: now,
          refreshToken: 'ms-fake-refresh-token-for-the-test',
        },
        state: 'active',
        updatedAt: now,
      }),
      { mode: 0o600 },
    )
    secrets.push('ms-fake-access-token-for-the-test', 'ms-fake-refresh-token-for-the-test')
    const bad = await runCli(['token', 'ms@example.test', '--sasl', 'oauthbearer'], home.env)
    assert.equal(bad.code, 64, bad.stderr)
    assert.match(bad.stderr, /accept only XOAUTH2/)
    assert.equal(bad.stdout, '')
    const good = await runCli(['token', 'ms@example.test', '--sasl', 'xoauth2'], home.env)
    assert.equal(good.code, 0, good.stderr)
    assert.equal(
      Buffer.from(good.stdout.trim(), 'base64').toString(),
      'user=ms@example.test\x01auth=Bearer ms-fake-access-token-for-the-test\x01\x01',
    )
    const st = await runCli(['status', 'ms@example.test'], home.env)
    assert.match(st.stdout, /provider\s+microsoft \(tenant common\)/)
    assert.match(st.stdout, /drops it after 90 days unused/)
  })

  it(
    'real browser: headless Chromium follows the loopback redirect',
    { skip: !chromiumAvailable() && !process.env.CI ? 'chromium is not installed (apt-get install chromium)' : false },
    async () => {
      assert.ok(chromiumAvailable(), 'CI must have chromium installed (.ci/run installs it)')
      const env = {
        ...home.env,
        MAILKEY_BROWSER: chromiumOpenCommand(),
        LAB_LOGIN: 'kim@example.test',
        LAB_ISSUER: lab.issuer,
      }
      const r = await runCli(['add', 'kim@example.test', '--browser', '--timeout', '60', ...labFlags()], env, {
        timeoutMs: 90_000,
      })
      assert.equal(r.code, 0, r.stderr)
      const rec = await stored(home, 'kim@example.test')
      secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
      assert.equal((await lab.introspect(rec.grant.accessToken)).email, 'kim@example.test')
    },
  )

  it('remove revokes at the server and deletes the record', async () => {
    const rec = await stored(home, 'dave@example.test')
    const r = await runCli(['remove', 'dave@example.test'], home.env)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /revoked at the provider/)
    await assert.rejects(stored(home, 'dave@example.test'))
    assert.equal((await lab.introspect(rec.grant.accessToken)).active, false)
    assert.equal((await runCli(['token', 'dave@example.test'], home.env)).code, 78)
  })

  it('no token, refresh token, client secret or SASL blob appeared in any output above', async () => {
    assert.ok(secrets.length > 10)
    const texts = transcript.flatMap((t) => (t.args[0] === 'token' ? [t.stderr] : [t.stdout, t.stderr]))
    assert.deepEqual(findLeaks(texts, secrets), [])
  })
})
