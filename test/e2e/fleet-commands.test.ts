// The commands the fleet suite does not run yet, on a shared PostgreSQL store (issue 13: "every
// command works unchanged on a shared store"): `mailkey import` on one host used from another,
// `mailkey test` against real Dovecot on a host that never signed in, and `mailkey proxy` on that
// host serving a LOGIN client through to Dovecot, also after the token expired (one refresh).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { startOAuthServer, introspectionUrl, MAIL_SCOPES, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile } from '../harness/tmp-home.js'
import { findLeaks, noteSecrets, spawnCli, transcript, type LiveCli } from '../harness/cli.js'
import { labFlags, signIn } from '../harness/sign-in.js'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT, type PgServer } from '../harness/postgres.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'
import { checkFleet, makeFleet, type FleetStore, type Host } from '../harness/fleet.js'

const SCOPE = [...MAIL_SCOPES, 'offline_access', 'openid', 'email'].join(' ')
const EMAIL = 'alice@example.test'
const IMPORTED = 'bob@example.test'
const LOCAL_PW = 'fleet proxy pw 1'

const missing = [!postgresAvailable() && 'PostgreSQL', !dovecotAvailable() && 'Dovecot'].filter(Boolean)
if (missing.length && process.env.CI)
  throw new Error(
    `the fleet command tests need ${missing.join(', ')}: ${POSTGRES_INSTALL_HINT}; ${DOVECOT_INSTALL_HINT}`,
  )
if (missing.length) console.error(`\n*** SKIPPING fleet command tests: ${missing.join(', ')} missing ***\n`)

/** One IMAP session: LOGIN (a quoted password), SELECT INBOX, LOGOUT; the lines the server sent. */
function imapLogin(port: number, user: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: '127.0.0.1' })
    let text = ''
    let step = 0
    const steps: [RegExp, string | undefined][] = [
      [/^\* OK.*\r\n/m, `a1 LOGIN "${user}" "${password}"\r\n`],
      [/^a1 (OK|NO|BAD).*\r\n/m, 'a2 SELECT INBOX\r\n'],
      [/^a2 (OK|NO|BAD).*\r\n/m, 'a3 LOGOUT\r\n'],
      [/^a3 (OK|NO|BAD).*\r\n/m, undefined],
    ]
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new Error(`IMAP session stalled at step ${step}:\n${text}`))
    }, 30_000)
    sock.setEncoding('latin1')
    sock.on('data', (d: string) => {
      text += d
      for (;;) {
        const st = steps[step]
        if (!st || !st[0].test(text)) return
        if (step === 1 && !/^a1 OK/m.test(text)) return finish() // refused: no SELECT
        step++
        if (!st[1]) return finish()
        sock.write(st[1])
      }
    })
    sock.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    sock.on('close', finish)
    function finish(): void {
      clearTimeout(timer)
      sock.destroy()
      resolve(text)
    }
  })
}

describe('fleet commands on a shared PostgreSQL store', { skip: missing.length ? missing.join(', ') : false }, () => {
  let srv: PgServer
  let lab: LabServer
  let dovecot: Dovecot
  let fleet: FleetStore
  let a: Host
  let b: Host
  let proxy: LiveCli | undefined
  const secrets: string[] = [LOCAL_PW]

  before(async () => {
    ;[srv, lab] = await Promise.all([startPostgres(), startOAuthServer({ accessTokenTtlSec: 600, deviceInterval: 1 })])
    dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer) })
    fleet = await makeFleet({ url: srv.url, env: () => srv.env() })
    secrets.push(srv.password)
    a = await fleet.host('a')
    b = await fleet.host('b')
    const init = await a.cli(['store', 'init'])
    assert.equal(init.code, 0, init.stderr)
  })
  after(async () => {
    proxy?.child.kill('SIGTERM')
    await proxy?.done
    await fleet?.cleanup()
    await Promise.all([srv?.close(), lab?.close(), dovecot?.stop()])
  })

  const servers = (): string[] => [
    '--imap-url',
    `imaps://127.0.0.1:${dovecot.ports.imaps}`,
    '--pop-url',
    `pop3://localhost:${dovecot.ports.pop3}`,
    '--ca',
    dovecot.caFile,
  ]

  it('mailkey add on host A puts the account in the shared store only', async () => {
    const cli = spawnCli(['add', EMAIL, '--device', '--json', ...labFlags(lab, SCOPE), ...servers()], a.env)
    await lab.approveDevice(String((await cli.event('device_code')).user_code), { login: EMAIL })
    const r = await cli.done
    assert.equal(r.code, 0, r.stderr)
    const rec = await fleet.record(EMAIL)
    assert.ok(rec?.grant?.accessToken && rec.grant.refreshToken)
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    await assert.rejects(readFile(recordFile(a.env, EMAIL)), 'no local record file')
  })

  it('mailkey import on host B stores the rotated grant for every host', async () => {
    // a grant from elsewhere: a host on the file store
    const other = await makeTmpHome()
    let foreign: string
    try {
      foreign = (await signIn(lab, other.env, IMPORTED, labFlags(lab, SCOPE), secrets)).refreshToken
    } finally {
      await other.cleanup()
    }
    const file = join(b.home.dir, 'rt.txt')
    await writeFile(file, foreign + '\n', { mode: 0o600 })
    lab.resetCounts()
    const r = await b.cli(['import', IMPORTED, '--refresh-token-file', file, ...labFlags(lab, SCOPE), ...servers()])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(lab.counts.refresh, 1, 'checked with one refresh')
    const rec = await fleet.record(IMPORTED)
    assert.ok(rec?.grant?.refreshToken && rec.grant.accessToken)
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    assert.equal(rec.settings.flow, 'import')
    assert.notEqual(rec.grant.refreshToken, foreign, 'the rotated refresh token is stored')
    await assert.rejects(readFile(recordFile(b.env, IMPORTED)), 'no local record file')
    const t = await a.cli(['token', IMPORTED])
    assert.equal(t.code, 0, t.stderr)
    assert.equal(t.stdout.trim(), rec.grant.accessToken, 'host A hands out the imported grant')
    assert.equal(lab.counts.refresh, 1, 'no second refresh')
    const st = await a.cli(['status', IMPORTED, '--json'])
    assert.equal(st.code, 0, st.stderr)
    assert.equal((JSON.parse(st.stdout) as { flow: string }).flow, 'import')
  })

  it('mailkey test on host B logs in to Dovecot with the grant host A signed in', async () => {
    const r = await b.cli(['test', EMAIL, '--protocol', 'imap', '--protocol', 'pop', '--json'])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    const j = JSON.parse(r.stdout) as { ok: boolean; results: { protocol: string; ok: boolean; messages: number }[] }
    assert.equal(j.ok, true)
    assert.deepEqual(
      j.results.map((x) => [x.protocol, x.ok, x.messages]),
      [
        ['imap', true, 3],
        ['pop', true, 3],
      ],
    )
  })

  it('mailkey proxy on host B serves a LOGIN client through to Dovecot, also after expiry', async () => {
    const pw = await b.cli(['proxy', 'password', EMAIL], LOCAL_PW + '\n')
    assert.equal(pw.code, 0, pw.stderr)
    proxy = spawnCli(['proxy', '--imap-port', '0'], b.env)
    const port = Number((await proxy.event('listening')).port)
    assert.ok(port > 0, proxy.stderr())
    const first = await imapLogin(port, EMAIL, LOCAL_PW)
    assert.match(first, /^a1 OK/m, first)
    assert.match(first, /^\* 3 EXISTS/m, first)
    assert.match(first, /^a2 OK/m, first)
    // the proxy refreshes through the shared store like any host: once
    await fleet.expire(EMAIL)
    const from = lab.refreshLog.length
    const again = await imapLogin(port, EMAIL, LOCAL_PW)
    assert.match(again, /^a1 OK/m, again)
    assert.match(again, /^a2 OK/m, again)
    const rec = await fleet.record(EMAIL)
    await noteSecrets(rec?.grant?.accessToken, rec?.grant?.refreshToken)
    secrets.push(rec?.grant?.accessToken as string, rec?.grant?.refreshToken as string)
    const report = await checkFleet(lab, fleet, EMAIL, from)
    assert.equal(report.refreshes, 1)
    assert.deepEqual(report.reused, [])
    assert.ok(report.storedIsLatest)
    const wrong = await imapLogin(port, EMAIL, 'not the local password')
    assert.match(wrong, /^a1 NO/m, 'a wrong local password is refused')
  })

  it('database down: a proxy keeps serving its cached token; one that holds none says [UNAVAILABLE]', async () => {
    assert.ok(proxy, 'the proxy of the case above runs')
    const c = await fleet.host('c')
    const pw = await c.cli(['proxy', 'password', EMAIL], LOCAL_PW + '\n')
    assert.equal(pw.code, 0, pw.stderr)
    const proxyC = spawnCli(['proxy', '--imap-port', '0'], c.env)
    try {
      const portB = Number((await proxy.event('listening')).port)
      const portC = Number((await proxyC.event('listening')).port)
      const from = lab.refreshLog.length
      await srv.kill()
      const cached = await imapLogin(portB, EMAIL, LOCAL_PW)
      assert.match(cached, /^a1 OK/m, cached)
      const none = await imapLogin(portC, EMAIL, LOCAL_PW)
      assert.match(none, /^a1 NO \[UNAVAILABLE\]/m, none)
      assert.equal(lab.refreshLog.length, from, 'no refresh while the store is down')
      await srv.start()
      // the proxy's first tries may still meet its dead connections or its fail-fast window (2 s):
      // a client tries again, as it does on [UNAVAILABLE]
      let back = ''
      for (let i = 0; i < 20 && !/^a1 OK/m.test(back); i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 500))
        back = await imapLogin(portC, EMAIL, LOCAL_PW)
        assert.match(back, /^a1 (OK|NO \[UNAVAILABLE\])/m, back)
      }
      assert.match(back, /^a1 OK/m, back)
    } finally {
      proxyC.child.kill('SIGTERM')
      await proxyC.done
    }
  })

  it('prints no secret', () => {
    const leaks = findLeaks(
      transcript.flatMap((t) => (t.args[0] === 'token' ? [t.stderr] : [t.stdout, t.stderr])),
      secrets.filter(Boolean),
    )
    assert.deepEqual(leaks, [])
  })
})
