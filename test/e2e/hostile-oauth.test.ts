// Issue 11, items 7-11: the built binary against OAuth servers that misbehave on purpose.
// - Login CSRF (7): another user finishes the sign-in (lab server, real login pages driven over
//   HTTP); the browser's argv (a recording $BROWSER); the OpenID Connect nonce.
// - A hostile scripted server (harness/hostile-oauth.ts): terminal escapes in every text (8), an
//   interval of 3e6 seconds (9), secrets echoed in errors (10), an empty 401 at revocation (11);
//   and a scripted IMAP server whose replies carry escapes and the token, for `mailkey test`.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { startOAuthServer, LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { runCli, spawnCli, transcript, findLeaks, noteSecrets } from '../harness/cli.js'
import { labFlags, rememberTokens, signIn as labSignIn } from '../harness/sign-in.js'
import { startHostileOAuth, type HostileOAuth } from '../harness/hostile-oauth.js'
import { startScriptedServer } from '../harness/scripted-server.js'
import { makeTestCA } from '../harness/certs.js'

const OIDC_SCOPE = [...MAIL_SCOPES, 'offline_access', 'openid', 'email'].join(' ')
const RECORDER = fileURLToPath(new URL('../harness/recording-browser.mjs', import.meta.url))
/** every control character but newline and tab: what must never reach a terminal */
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/

const b64u = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url')
const fakeIdToken = (claims: object): string =>
  `${b64u({ alg: 'RS256', typ: 'JWT' })}.${b64u({ iat: Math.floor(Date.now() / 1000), ...claims })}.c2ln`

interface Rec {
  settings: Record<string, unknown>
  grant: { accessToken: string; refreshToken: string; expiresAt: number }
  state: string
}
const stored = async (home: TmpHome, email: string): Promise<Rec> =>
  JSON.parse(await readFile(recordFile(home.env, email), 'utf8')) as Rec

describe('login CSRF: who finished the sign-in, and what other users can see (item 7)', () => {
  let lab: LabServer
  let home: TmpHome
  const secrets: string[] = []
  const flags = (): string[] => labFlags(lab, OIDC_SCOPE)

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    home = await makeTmpHome()
  })
  after(async () => {
    await lab?.close()
    await home?.cleanup()
  })

  it("the browser's argv holds no state, PKCE challenge or port: it gets a private page that forwards to the URL, removed afterwards", async () => {
    const log = join(home.dir, 'browser.log')
    const env = { ...home.env, MAILKEY_BROWSER: `${process.execPath} ${RECORDER}`, RECORDING_BROWSER_LOG: log }
    const cli = spawnCli(['add', 'pat@example.test', '--browser', '--json', ...flags()], env)
    const ev = await cli.event('authorization_url')
    let line = ''
    for (let i = 0; i < 200 && !line; i++) {
      line = existsSync(log) ? (await readFile(log, 'utf8')).trim() : ''
      if (!line) await sleep(50)
    }
    const seen = JSON.parse(line) as { argv: string[]; page: string; pageMode: number; dirMode: number; url: string }
    const url = new URL(String(ev.url))
    const state = url.searchParams.get('state') as string
    const challenge = url.searchParams.get('code_challenge') as string
    const port = new URL(String(ev.redirect_uri)).port
    assert.ok(state && challenge && port)
    for (const arg of seen.argv) {
      for (const s of [
        state,
        challenge,
        encodeURIComponent(challenge),
        'state=',
        'code_challenge',
        `:${port}`,
        lab.issuer,
      ]) {
        assert.ok(!arg.includes(s), `the browser's argv shows ${s.slice(0, 16)}`)
      }
    }
    assert.equal(seen.pageMode, 0o600)
    assert.equal(seen.dirMode, 0o700)
    assert.equal(seen.url, url.href, 'the page forwards to the sign-in URL')
    const redirect = await lab.completeAuthorization(seen.url, { login: 'pat@example.test' })
    await fetch(redirect)
    const r = await cli.done
    assert.equal(r.code, 0, r.stderr)
    await rememberTokens(home.env, 'pat@example.test', secrets)
    assert.ok(!existsSync(seen.page) && !existsSync(dirname(seen.page)), 'the page and its directory are gone')
  })

  it('a nonce goes with openid, and an id_token without it is refused with nothing stored', async () => {
    const env = { ...home.env, MAILKEY_BROWSER: 'true' }
    const cli = spawnCli(['add', 'quinn@example.test', '--browser', '--json', ...flags()], env)
    const url = new URL(String((await cli.event('authorization_url')).url))
    const nonce = url.searchParams.get('nonce')
    assert.ok(nonce && nonce.length >= 32, 'OIDC Core §3.1.2.1: nonce with openid')
    await fetch(await lab.completeAuthorization(url.href, { login: 'quinn@example.test' }))
    const r = await cli.done
    assert.equal(r.code, 0, r.stderr + ' (the real server echoes the nonce in its id_token)')
    await rememberTokens(home.env, 'quinn@example.test', secrets)

    // An id_token minted for another request (its nonce is not ours), naming the right user.
    const fake = {
      access_token: 'nonce-test-fake-access-token-0001',
      refresh_token: 'nonce-test-fake-refresh-token-0001',
      token_type: 'Bearer',
      expires_in: 3600,
      id_token: fakeIdToken({
        iss: lab.issuer,
        aud: LAB_PUBLIC_CLIENT_ID,
        sub: 'rita@example.test',
        email: 'rita@example.test',
        nonce: 'a-nonce-from-another-sign-in',
      }),
    }
    secrets.push(fake.access_token, fake.refresh_token)
    lab.injectTokenFault({ grantType: 'authorization_code', status: 200, body: fake })
    const cli2 = spawnCli(['add', 'rita@example.test', '--browser', '--json', ...flags()], env)
    await fetch(
      await lab.completeAuthorization(String((await cli2.event('authorization_url')).url), {
        login: 'rita@example.test',
      }),
    )
    const r2 = await cli2.done
    lab.clearFaults()
    assert.equal(r2.code, 76, r2.stderr)
    assert.match(r2.stderr, /does not carry the nonce of this sign-in/)
    await assert.rejects(stored(home, 'rita@example.test'), 'nothing stored')
  })

  it('browser: a sign-in finished by another user is refused and stores nothing; --sign-in-as lets a real alias through', async () => {
    const env = { ...home.env, MAILKEY_BROWSER: 'true' }
    const cli = spawnCli(['add', 'victim@example.test', '--browser', '--json', ...flags()], env)
    await fetch(
      await lab.completeAuthorization(String((await cli.event('authorization_url')).url), {
        login: 'mallory@example.test',
      }),
    )
    const r = await cli.done
    assert.equal(r.code, 77, r.stderr)
    assert.match(r.stderr, /the server signed in mallory@example\.test, not victim@example\.test; nothing was stored/)
    assert.match(r.stderr, /"mailkey add victim@example\.test" again/)
    assert.match(r.stderr, /"mailkey add victim@example\.test --sign-in-as mallory@example\.test"/)
    assert.equal(((await cli.event('error')).error as { code: string }).code, 'ERR_MAILKEY_OAUTH_IDENTITY_MISMATCH')
    await assert.rejects(stored(home, 'victim@example.test'), 'nothing stored')

    const ok = spawnCli(
      ['add', 'victim@example.test', '--browser', '--json', '--sign-in-as', 'mallory@example.test', ...flags()],
      env,
    )
    const url = new URL(String((await ok.event('authorization_url')).url))
    assert.equal(url.searchParams.get('login_hint'), 'mallory@example.test')
    await fetch(await lab.completeAuthorization(url.href, { login: 'mallory@example.test' }))
    const r2 = await ok.done
    assert.equal(r2.code, 0, r2.stderr)
    assert.match(r2.stderr, /signed in as mallory@example\.test\)/)
    const rec = await stored(home, 'victim@example.test')
    await rememberTokens(home.env, 'victim@example.test', secrets)
    assert.equal(rec.settings.signInAs, 'mallory@example.test')
  })

  it('device flow: a code approved by another user is refused, and an existing grant is left as it was', async () => {
    await labSignIn(lab, home.env, 'uma@example.test', flags(), secrets)
    const before = await stored(home, 'uma@example.test')
    const cli = spawnCli(['add', 'uma@example.test', '--device', '--json', ...flags()], home.env)
    await lab.approveDevice(String((await cli.event('device_code')).user_code), { login: 'mallory@example.test' })
    const r = await cli.done
    assert.equal(r.code, 77, r.stderr)
    assert.match(r.stderr, /signed in mallory@example\.test, not uma@example\.test/)
    const after = await stored(home, 'uma@example.test')
    assert.deepEqual(after.grant, before.grant, 'the old grant is untouched')
  })

  it("paste flow: the pasted address of another user's sign-in is refused", async () => {
    const cli = spawnCli(['add', 'sam@example.test', '--paste', '--json', ...flags()], home.env)
    const redirect = await lab.completeAuthorization(String((await cli.event('authorization_url')).url), {
      login: 'mallory@example.test',
    })
    cli.child.stdin.write(redirect + '\n')
    const r = await cli.done
    assert.equal(r.code, 77, r.stderr)
    assert.match(r.stderr, /signed in mallory@example\.test, not sam@example\.test/)
    await assert.rejects(stored(home, 'sam@example.test'))
  })

  it('no token appeared in any output above', () => {
    assert.deepEqual(
      findLeaks(
        transcript.map((t) => t.stdout + t.stderr),
        secrets,
      ),
      [],
    )
  })
})

describe("a hostile OAuth server's words and numbers (items 8-11)", () => {
  let home: TmpHome
  const servers: HostileOAuth[] = []
  const hostile = async (...a: Parameters<typeof startHostileOAuth>): Promise<HostileOAuth> => {
    const s = await startHostileOAuth(...a)
    servers.push(s)
    return s
  }
  const DC = 'hostile-device-code-0123456789abcdef'
  const device =
    (over: object = {}) =>
    () => ({
      body: {
        device_code: DC,
        user_code: 'WXYZ-1234',
        verification_uri: 'https://login.example.test/device',
        expires_in: 60,
        interval: 1,
        ...over,
      },
    })
  const clean = (label: string, ...texts: string[]): void => {
    for (const t of texts) assert.doesNotMatch(t, CONTROLS, `${label}: ${JSON.stringify(t)}`)
  }

  before(async () => {
    home = await makeTmpHome()
    await noteSecrets(DC)
  })
  after(async () => {
    for (const s of servers) await s.close()
    await home?.cleanup()
  })

  it('device flow: escapes in user_code, verification_uri, message and the error reach neither the terminal nor the JSON events', async () => {
    const s = await hostile({
      device: device({
        user_code: 'WXYZ\x1b]0;pwned\x07-1234',
        verification_uri: 'https://login.example.test/dev\x1b[2Jice',
        message: '\x1b[2J\x1b[HOpen the page\rmailkey: Signed in boss@example.test',
      }),
      token: () => ({
        status: 400,
        body: { error: 'access_denied', error_description: `\x1b]0;owned\x07denied\r\nmailkey: all good ${DC}` },
      }),
    })
    const r = await runCli(['add', 'esc@example.test', '--device', '--json', ...s.flags()], home.env)
    assert.equal(r.code, 77, r.stderr)
    clean('add', r.stdout, r.stderr)
    assert.ok(!(r.stdout + r.stderr).includes(DC), 'the device code never shows')
    const ev = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((e) => e.event === 'device_code')
    assert.equal(ev?.user_code, 'WXYZ]0;pwned-1234')
    assert.equal(ev?.verification_uri, 'https://login.example.test/dev[2Jice')
  })

  it("browser flow: escapes in the redirect's error_description do not reach the terminal", async () => {
    const s = await hostile({})
    const env = { ...home.env, MAILKEY_BROWSER: 'true' }
    const cli = spawnCli(
      ['add', 'redir@example.test', '--browser', '--json', '--authorize-url', `${s.url}/auth`, ...s.flags()],
      env,
    )
    const ev = await cli.event('authorization_url')
    const state = new URL(String(ev.url)).searchParams.get('state') as string
    const back = new URL(String(ev.redirect_uri))
    back.search = new URLSearchParams({
      state,
      error: 'access_denied',
      error_description: '\x1b]0;pwned\x07denied\r\nmailkey: Signed in redir@example.test',
    }).toString()
    await fetch(back)
    const r = await cli.done
    assert.equal(r.code, 77, r.stderr)
    assert.match(r.stderr, /access_denied \(\]0;pwneddenied\)/)
    clean('add', r.stdout, r.stderr)
  })

  it('a verification_uri that is not http(s) is refused and never shown', async () => {
    const s = await hostile({
      device: device({ verification_uri: 'javascript:alert(document.cookie)' }),
      token: () => ({ status: 400, body: { error: 'authorization_pending' } }),
    })
    const r = await runCli(['add', 'js@example.test', '--device', '--json', ...s.flags()], home.env)
    assert.equal(r.code, 76, r.stderr)
    assert.match(r.stderr, /verification_uri .* is not a web address/)
    assert.doesNotMatch(r.stdout + r.stderr, /alert|cookie/)
    assert.equal(s.counts.token, 0, 'no polling for a sign-in nobody can complete')
  })

  it('interval 3e6: a bounded 3 s run makes at most one poll a second (it made thousands)', async () => {
    const s = await hostile({
      device: device({ interval: 3e6, expires_in: 600 }),
      token: () => ({ status: 400, body: { error: 'authorization_pending' } }),
    })
    const cli = spawnCli(['add', 'flood@example.test', '--device', '--json', ...s.flags()], home.env)
    await cli.event('device_code')
    const atPrompt = s.counts.token
    await sleep(3000)
    const polls = s.counts.token - atPrompt
    cli.child.kill('SIGTERM')
    await cli.done
    assert.ok(polls <= 3, `${polls} token requests in a 3 s window`)
  })

  it('refresh: an error that echoes the tokens, in JSON or in an HTML page, is printed and stored without them or any escape', async () => {
    const AT = 'hostile-access-token-0123456789abcdefghijklmnop'
    const RT = 'hostile-refresh-token-0123456789abcdefghijklmnop'
    await noteSecrets(AT, RT)
    let mode: 'ok' | 'html' | 'json' = 'ok'
    const s = await hostile({
      device: device(),
      token: () =>
        mode === 'ok'
          ? { body: { access_token: AT, refresh_token: RT, token_type: 'Bearer', expires_in: 3600 } }
          : mode === 'html'
            ? {
                status: 400,
                body: `<html><body><h1>Bad Request</h1><pre>refresh_token ${RT} access ${AT} \x1b[2J</pre></body></html>`,
                contentType: 'text/html',
              }
            : {
                status: 400,
                body: {
                  error: 'invalid_grant',
                  error_description: `\x1b[2J\x1b[HThe refresh token ${RT} was revoked (was ${AT.slice(0, 30)})\r\nmailkey: token refreshed OK`,
                },
              },
    })
    const add = await runCli(['add', 'echo@example.test', '--device', '--json', ...s.flags()], home.env)
    assert.equal(add.code, 0, add.stderr)
    const expire = async (): Promise<void> => {
      const raw = await stored(home, 'echo@example.test')
      raw.grant.expiresAt = Date.now() - 1000
      await writeFile(recordFile(home.env, 'echo@example.test'), JSON.stringify(raw), { mode: 0o600 })
    }
    const check = async (label: string, t: { stdout: string; stderr: string }): Promise<void> => {
      const st = await runCli(['status', 'echo@example.test', '--json'], home.env)
      const text = await runCli(['status', 'echo@example.test'], home.env)
      const all = [t.stdout, t.stderr, st.stdout, text.stdout, text.stderr]
      clean(label, ...all)
      for (const v of [RT, AT, RT.slice(0, 24), AT.slice(0, 24)])
        assert.ok(!all.some((x) => x.includes(v)), `${label}: a token shows`)
    }
    mode = 'html'
    await expire()
    const html = await runCli(['token', 'echo@example.test'], home.env)
    assert.equal(html.code, 76, html.stderr)
    await check('html', html)
    mode = 'json'
    await expire()
    const json = await runCli(['token', 'echo@example.test'], home.env)
    assert.equal(json.code, 77, json.stderr)
    assert.match(json.stderr, /The refresh token \[redacted\] was revoked/)
    await check('json', json)
    const st = JSON.parse((await runCli(['status', 'echo@example.test', '--json'], home.env)).stdout) as {
      last_error: { message: string }
    }
    assert.match(st.last_error.message, /invalid_grant/)
  })

  it('remove: a revocation refused with an empty 401 is said in plain words', async () => {
    const s = await hostile({
      device: device(),
      token: () => ({
        body: {
          access_token: 'revoke-test-access-token-0123456789',
          refresh_token: 'revoke-test-refresh-token-0123456789',
          token_type: 'Bearer',
          expires_in: 3600,
        },
      }),
      revoke: () => ({ status: 401 }),
    })
    await noteSecrets('revoke-test-access-token-0123456789', 'revoke-test-refresh-token-0123456789')
    assert.equal((await runCli(['add', 'rev@example.test', '--device', ...s.flags()], home.env)).code, 0)
    const r = await runCli(['remove', 'rev@example.test'], home.env)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(s.counts.revoke, 1)
    assert.match(
      r.stderr,
      /not revoked at the provider \(127\.0\.0\.1:\d+ refused the revocation for "rev@example\.test": HTTP 401, it may need client authentication/,
    )
    assert.doesNotMatch(r.stderr, /"response"|content-type|application\/json|conform/)
  })

  it("discovery and device answers oauth4webapi cannot use are said in mailkey's words", async () => {
    const s = await hostile({
      device: () => ({
        body: { device_code: DC, verification_uri: 'https://login.example.test/device', expires_in: 60 },
      }),
    })
    const disco = await runCli(
      ['add', 'disco@example.test', '--device', '--issuer', s.url, '--client-id', 'c', '--scope', 'mail'],
      home.env,
    )
    assert.equal(disco.code, 78, disco.stderr)
    assert.match(disco.stderr, /refused the metadata request for "disco@example\.test": HTTP 404/)
    const dev = await runCli(['add', 'dev@example.test', '--device', ...s.flags()], home.env)
    assert.equal(dev.code, 76, dev.stderr)
    assert.match(dev.stderr, /whose "user_code" is missing or malformed/)
    for (const r of [disco, dev]) assert.doesNotMatch(r.stderr, /"response"|conform|must be/)
  })

  it('mailkey test: a mail server whose replies carry escapes and echo the token is reported without either', async () => {
    const AT = 'probe-access-token-0123456789abcdefghijklmnop'
    await noteSecrets(AT)
    const s = await hostile({
      device: device(),
      token: () => ({
        body: {
          access_token: AT,
          refresh_token: 'probe-refresh-token-0123456789abcdefghij',
          token_type: 'Bearer',
          expires_in: 3600,
        },
      }),
    })
    const dir = await mkdtemp(join(home.dir, 'ca-'))
    const ca = await makeTestCA(dir)
    const tokenOf = (b64: string): string =>
      /auth=Bearer ([^\x01]+)/.exec(Buffer.from(b64, 'base64').toString('latin1'))?.[1] ?? ''
    const imap = await startScriptedServer({
      tls: { certFile: ca.certFile, keyFile: ca.keyFile, implicit: true },
      script: () => [
        { send: '* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] \x1b]0;pwned\x07ready\r\n' },
        { expect: /^(\S+) AUTHENTICATE XOAUTH2 (\S+)$/ },
        { send: (m) => `${m?.[1]} NO [AUTHENTICATIONFAILED] \x1b[2J\x1b[Hbad token ${tokenOf(m?.[2] ?? '')}\r\n` },
        { close: 'end' },
      ],
    })
    try {
      assert.equal(
        (
          await runCli(
            [
              'add',
              'probe@example.test',
              '--device',
              '--imap-url',
              `imaps://localhost:${imap.port}`,
              '--ca',
              ca.caFile,
              ...s.flags(),
            ],
            home.env,
          )
        ).code,
        0,
      )
      const t = await runCli(['test', 'probe@example.test', '--protocol', 'imap'], home.env)
      const j = await runCli(['test', 'probe@example.test', '--protocol', 'imap', '--json'], home.env)
      assert.notEqual(t.code, 0)
      assert.match(t.stdout, /bad token \[redacted\]/)
      for (const out of [t, j]) {
        clean('test', out.stdout, out.stderr)
        assert.ok(!(out.stdout + out.stderr).includes(AT.slice(0, 20)), 'the token shows')
      }
    } finally {
      await imap.close()
    }
  })
})
