// End to end: which redirect a sign-in uses, and what happens when it cannot work (issue 15,
// items 0 and 8). The built `mailkey` binary against the lab OAuth server (oidc-provider) and, for
// Microsoft's own error bodies, a scripted device endpoint at the edge (harness/hostile-oauth.ts).
// - a registered http://localhost:<port>/ redirect reaches mailkey over ::1 and over 127.0.0.1;
// - a registered redirect no listener can receive (https://127.0.0.1) is the paste flow, chosen
//   by itself and said why (Yahoo, AOL);
// - --browser without a display is refused at once, naming --device and --paste;
// - Microsoft's next built-in client id is tried on AADSTS7000112 at the device endpoint, and not
//   on other errors.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  startOAuthServer,
  LAB_FIXED_REDIRECT_CLIENT_ID,
  LAB_PUBLIC_CLIENT_ID,
  MAIL_SCOPES,
  type LabServer,
} from '../harness/oauth-server.js'
import { startHostileOAuth, type HostileOAuth } from '../harness/hostile-oauth.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { runCli, spawnCli, noteSecrets, findLeaks, transcript } from '../harness/cli.js'

const SCOPE = [...MAIL_SCOPES, 'offline_access'].join(' ')
const THUNDERBIRD = '9e5f94bc-e8a4-4e73-b8be-63364c29d753'
const KDE = '18da2bc3-146a-4581-8c92-27dc7b9954a0'

/** Does this machine have an IPv6 loopback (`ip -6 addr show lo` lists ::1)? */
function haveIpv6Loopback(): boolean {
  try {
    return /inet6 ::1\//.test(execFileSync('ip', ['-6', 'addr', 'show', 'lo'], { encoding: 'utf8' }))
  } catch {
    return false
  }
}

interface Stored {
  settings: Record<string, unknown>
  grant: { accessToken: string; refreshToken: string }
}

async function stored(home: TmpHome, email: string): Promise<Stored> {
  return JSON.parse(await readFile(recordFile(home.env, email), 'utf8')) as Stored
}

describe('sign-in redirects against the lab OAuth server', () => {
  let lab: LabServer
  let home: TmpHome
  const secrets: string[] = []

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    home = await makeTmpHome()
    const cfgDir = join(home.env.XDG_CONFIG_HOME as string, 'mailkey')
    await mkdir(cfgDir, { recursive: true })
    // Two providers of the lab: one registered with http://localhost (as Thunderbird is at
    // Microsoft), one with https://127.0.0.1 (as at Yahoo and AOL).
    const common = [`issuer = "${lab.issuer}"`, `scopes = ${JSON.stringify(SCOPE.split(' '))}`]
    await writeFile(
      join(cfgDir, 'config.toml'),
      [
        '[providers.lab-localhost]',
        ...common,
        `client_id = "${LAB_PUBLIC_CLIENT_ID}"`,
        'redirect_host = "localhost"',
        '',
        '[providers.lab-fixed]',
        ...common,
        `client_id = "${LAB_FIXED_REDIRECT_CLIENT_ID}"`,
        'redirect_uri = "https://127.0.0.1"',
        '',
      ].join('\n'),
    )
  })
  after(async () => {
    await lab.close()
    await home.cleanup()
  })

  /** a browser sign-in with the localhost redirect, finished by a request to `address` */
  async function localhostSignIn(email: string, address: string): Promise<void> {
    const env = { ...home.env, MAILKEY_BROWSER: 'true' } // a browser that opens nothing; the test plays it
    const cli = spawnCli(['add', email, '--provider', 'lab-localhost', '--browser', '--json'], env)
    const ev = await cli.event('authorization_url')
    const redirectUri = new URL(String(ev.redirect_uri))
    assert.equal(redirectUri.hostname, 'localhost')
    assert.equal(redirectUri.pathname, '/')
    assert.equal(new URL(String(ev.url)).searchParams.get('redirect_uri'), redirectUri.href)
    const back = new URL(await lab.completeAuthorization(String(ev.url), { login: email }))
    assert.equal(back.host, redirectUri.host, 'the server sends the browser to the registered localhost form')
    // the browser resolved "localhost" to `address`
    back.hostname = address
    const page = await fetch(back)
    assert.equal(page.status, 200)
    const r = await cli.done
    assert.equal(r.code, 0, r.stderr)
    const rec = await stored(home, email)
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
    assert.equal(rec.settings.flow, 'browser')
    assert.equal((await lab.introspect(rec.grant.accessToken)).email, email)
  }

  it(
    'a localhost redirect reaches mailkey over ::1',
    { skip: !haveIpv6Loopback() && !process.env.CI ? 'this machine has no IPv6 loopback (::1)' : false },
    async () => {
      assert.ok(haveIpv6Loopback(), 'CI must have an IPv6 loopback')
      await localhostSignIn('six@example.test', '[::1]')
    },
  )

  it('a localhost redirect reaches mailkey over 127.0.0.1', async () => {
    await localhostSignIn('four@example.test', '127.0.0.1')
  })

  it('a registered redirect no listener can receive: paste chosen by itself, said why, and it signs in', async () => {
    const env = { ...home.env, MAILKEY_BROWSER: 'true' } // a browser could open: paste all the same
    const cli = spawnCli(['add', 'fixed@example.test', '--provider', 'lab-fixed', '--timeout', '60', '--json'], env)
    const plan = await cli.event('plan')
    assert.equal(plan.flow, 'paste')
    const ev = await cli.event('authorization_url')
    assert.equal(ev.redirect_uri, 'https://127.0.0.1')
    assert.equal(ev.browser_opened, false)
    assert.equal(new URL(String(ev.url)).searchParams.get('redirect_uri'), 'https://127.0.0.1')
    const back = await lab.completeAuthorization(String(ev.url), { login: 'fixed@example.test' })
    assert.match(back, /^https:\/\/127\.0\.0\.1\/?\?/)
    cli.child.stdin.write(back + '\n')
    const r = await cli.done
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /signing in with --paste: .*https:\/\/127\.0\.0\.1, which mailkey cannot listen on/)
    const rec = await stored(home, 'fixed@example.test')
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    assert.equal(rec.settings.flow, 'paste')
  })

  it('--browser with no display is refused at once, naming --device and --paste', async () => {
    // makeTmpHome's environment has no DISPLAY, WAYLAND_DISPLAY, BROWSER or MAILKEY_BROWSER
    assert.equal(home.env.DISPLAY, undefined)
    const r = await runCli(
      [
        'add',
        'nodisplay@example.test',
        '--browser',
        '--issuer',
        lab.issuer,
        '--client-id',
        LAB_PUBLIC_CLIENT_ID,
        '--scope',
        SCOPE,
      ],
      { ...home.env },
      { timeoutMs: 20_000 },
    )
    assert.equal(r.code, 64, r.stderr)
    assert.match(
      r.stderr,
      /--browser cannot show a browser here: there is no display \(neither DISPLAY nor WAYLAND_DISPLAY/,
    )
    assert.match(r.stderr, /"mailkey add nodisplay@example\.test --device"/)
    assert.match(r.stderr, /"mailkey add nodisplay@example\.test --paste"/)
    assert.doesNotMatch(r.stderr, /should have opened/)
    await assert.rejects(stored(home, 'nodisplay@example.test'))
  })

  it('no token appeared in any output above', () => {
    assert.ok(secrets.length >= 6)
    assert.deepEqual(
      findLeaks(
        transcript.flatMap((t) => [t.stdout, t.stderr]),
        secrets,
      ),
      [],
    )
  })
})

describe('Yahoo and AOL: registered with https://127.0.0.1, so paste', () => {
  let home: TmpHome
  before(async () => {
    home = await makeTmpHome()
  })
  after(async () => {
    await home.cleanup()
  })

  for (const [name, email, host] of [
    ['Yahoo', 'someone@yahoo.com', 'api.login.yahoo.com'],
    ['AOL', 'someone@aol.com', 'api.login.aol.com'],
  ] as const) {
    it(`${name}: add chooses paste by itself and says why in one line (nothing is sent to ${name})`, async () => {
      const env = { ...home.env, MAILKEY_BROWSER: 'true' }
      const cli = spawnCli(['add', email, '--json'], env)
      const plan = await cli.event('plan')
      assert.equal(plan.flow, 'paste')
      const ev = await cli.event('authorization_url')
      const url = new URL(String(ev.url))
      assert.equal(url.host, host)
      assert.equal(url.searchParams.get('redirect_uri'), 'https://127.0.0.1')
      assert.equal(ev.redirect_uri, 'https://127.0.0.1')
      cli.child.kill('SIGINT')
      const r = await cli.done
      const why = r.stderr.split('\n').filter((l) => l.startsWith('mailkey: signing in with --paste'))
      assert.equal(why.length, 1, r.stderr)
      assert.match(why[0] ?? '', new RegExp(`${name} accepts only the redirect https://127\\.0\\.0\\.1 \\(no port\\)`))
    })

    it(`${name}: --browser is refused with the reason and the --paste command`, async () => {
      const r = await runCli(['add', email, '--browser'], { ...home.env, MAILKEY_BROWSER: 'true' })
      assert.equal(r.code, 64, r.stderr)
      assert.match(r.stderr, /https:\/\/127\.0\.0\.1 \(no port\), which mailkey cannot listen on/)
      assert.match(r.stderr, new RegExp(`"mailkey add ${email.replace('.', '\\.')} --paste"`))
    })
  }
})

describe("Microsoft's fallback client ids, tried where mailkey can see the failure", () => {
  let home: TmpHome
  const servers: HostileOAuth[] = []
  const AT = 'ms-fallback-access-token-0123456789abcdef'
  const RT = 'ms-fallback-refresh-token-0123456789abcdef'
  const deviceAnswer = {
    body: {
      device_code: 'ms-fallback-device-code-0123456789',
      user_code: 'ABCD-EFGH',
      verification_uri: 'https://microsoft.com/devicelogin',
      expires_in: 60,
      interval: 1,
    },
  }
  /** a scripted Microsoft: the device endpoint answers `first` for Thunderbird's id */
  async function microsoftAt(first: object): Promise<HostileOAuth> {
    const s = await startHostileOAuth({
      device: (_n, form) => (form.get('client_id') === THUNDERBIRD ? { status: 400, body: first } : deviceAnswer),
      token: () => ({ body: { access_token: AT, token_type: 'Bearer', expires_in: 3600, refresh_token: RT } }),
    })
    servers.push(s)
    return s
  }
  const flags = (s: HostileOAuth): string[] => [
    '--provider',
    'microsoft',
    '--device-url',
    `${s.url}/device`,
    '--token-url',
    `${s.url}/token`,
  ]
  const asked = (s: HostileOAuth): string[] => s.requests.filter((q) => q.path === '/device').map((q) => q.clientId)

  before(async () => {
    home = await makeTmpHome()
    await noteSecrets(AT, RT)
  })
  after(async () => {
    for (const s of servers) await s.close()
    await home.cleanup()
  })

  it('AADSTS7000112 (application disabled) at the device endpoint: the next id is tried and signs in', async () => {
    const s = await microsoftAt({
      error: 'invalid_client',
      error_description: "AADSTS7000112: Application '9e5f94bc-e8a4-4e73-b8be-63364c29d753'(Thunderbird) is disabled.",
      error_codes: [7000112],
    })
    const r = await runCli(['add', 'fallback@outlook.com', '--device', '--json', ...flags(s)], home.env)
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(asked(s), [THUNDERBIRD, KDE])
    const events = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    const rejected = events.find((e) => e.event === 'client_rejected')
    assert.equal(rejected?.client_id, THUNDERBIRD)
    assert.equal(rejected?.next_client_id, KDE)
    assert.match(r.stderr, /the Thunderbird client id .* was refused .*AADSTS7000112.*trying the next one/)
    const rec = await stored(home, 'fallback@outlook.com')
    assert.equal(rec.settings.clientId, KDE)
    assert.equal(rec.settings.provider, 'microsoft')
    assert.deepEqual(findLeaks([r.stdout, r.stderr], [AT, RT]), [])
  })

  it("AADSTS7000218 (this registration's public client flows are off): the next built-in id is tried", async () => {
    const s = await microsoftAt({
      error: 'invalid_client',
      error_description:
        "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      error_codes: [7000218],
    })
    const r = await runCli(['add', 'registration@outlook.com', '--device', '--json', ...flags(s)], home.env)
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(asked(s), [THUNDERBIRD, KDE])
    assert.equal((await stored(home, 'registration@outlook.com')).settings.clientId, KDE)
    assert.match(r.stdout, /client_rejected/)
    assert.match(r.stderr, /AADSTS7000218.*trying the next one/)
  })

  for (const [what, body, exit, email] of [
    [
      'AADSTS53003 (Conditional Access blocks the device code)',
      {
        error: 'invalid_request',
        error_description: 'AADSTS53003: Access has been blocked by Conditional Access policies.',
        error_codes: [53003],
      },
      77,
      'blocked@outlook.com',
    ],
  ] as const) {
    it(`${what}: no other id is tried`, async () => {
      const s = await microsoftAt(body)
      const r = await runCli(['add', email, '--device', '--json', ...flags(s)], home.env)
      assert.equal(r.code, exit, r.stderr)
      assert.deepEqual(asked(s), [THUNDERBIRD])
      assert.doesNotMatch(r.stdout, /client_rejected/)
      assert.doesNotMatch(r.stderr, /trying the next one/)
      await assert.rejects(stored(home, email))
    })
  }
})
