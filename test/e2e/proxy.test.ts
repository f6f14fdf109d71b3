// `mailkey proxy` end to end: LOGIN-only clients (Python imaplib/poplib/smtplib, curl --user, imapflow,
// nodemailer)
// log in to the proxy with a local password; the proxy signs in to the real testbed (Dovecot,
// SMTP submission) with OAuth and splices.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { startOAuthServer, introspectionUrl, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { runCli, spawnCli, transcript, findLeaks, noteSecrets, type LiveCli, have, runCommand } from '../harness/cli.js'
import { labFlags, signIn } from '../harness/sign-in.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'
import { startSmtp, type Smtp } from '../harness/smtp-server.js'

const EMAIL = 'alice@example.test'
const LOCAL_PW = 'local proxy pw 1'
const missing = [!dovecotAvailable() && 'dovecot', !have('curl') && 'curl', !have('python3') && 'python3'].filter(
  Boolean,
)
if (missing.length && process.env.CI)
  throw new Error(
    `the proxy tests need ${missing.join(', ')} in CI: apt-get install ${DOVECOT_INSTALL_HINT} curl python3`,
  )
if (missing.length) console.error(`\n*** SKIPPING proxy tests: ${missing.join(', ')} missing ***\n`)

describe('mailkey proxy', { skip: missing.length ? `${missing.join(', ')} not installed` : false }, () => {
  let lab: LabServer
  let dovecot: Dovecot
  let smtp: Smtp
  let home: TmpHome
  let proxy: LiveCli
  const ports: Record<string, number> = {}
  const secrets: string[] = [LOCAL_PW]

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer) })
    smtp = await startSmtp({
      introspect: (t, s) => lab.introspect(t, { service: s }),
      tls: { certFile: dovecot.certFile, keyFile: dovecot.keyFile },
    })
    home = await makeTmpHome()
    const p = dovecot.ports
    await signIn(lab, home.env, EMAIL, [
      ...labFlags(lab),
      '--imap-url',
      `imaps://localhost:${p.imaps}`,
      '--pop-url',
      `pop3://localhost:${p.pop3}`,
      '--smtp-url',
      `smtp://localhost:${smtp.ports.submission}`,
      '--ca',
      dovecot.caFile,
    ])
    const pw = await runCli(['proxy', 'password', EMAIL], home.env, { stdin: LOCAL_PW + '\n' })
    assert.equal(pw.code, 0, pw.stderr)
    proxy = spawnCli(
      ['proxy', '--imap-port', '0', '--pop-port', '0', '--smtp-port', '0', '--oauth-passthrough'],
      home.env,
    )
    const end = Date.now() + 15_000
    while (proxy.events('listening').length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
    for (const l of proxy.events('listening')) ports[String(l.protocol)] = Number(l.port)
  })
  after(async () => {
    proxy?.child.kill('SIGTERM')
    await proxy?.done
    await smtp?.stop()
    await dovecot?.stop()
    await lab?.close()
    await home?.cleanup()
  })

  it('stores only a scrypt hash of the local password, 0600', async () => {
    const path = join(home.env.XDG_STATE_HOME as string, 'mailkey', 'proxy-passwords.json')
    const text = await readFile(path, 'utf8')
    assert.ok(!text.includes(LOCAL_PW))
    assert.match(text, /"alg": "scrypt"/)
    assert.equal((await stat(path)).mode & 0o777, 0o600)
  })

  it('listens on 127.0.0.1 and prints its addresses', () => {
    const ls = proxy.events('listening')
    assert.deepEqual(
      ls.map((l) => l.host),
      ['127.0.0.1', '127.0.0.1', '127.0.0.1'],
      proxy.stderr(),
    )
    assert.deepEqual(Object.keys(ports).sort(), ['imap', 'pop3', 'smtp'])
  })

  const PY = `
import imaplib, poplib, smtplib, os, sys
u, pw, host = os.environ['U'], os.environ['PW'], '127.0.0.1'
out = []
try:
    m = imaplib.IMAP4(host, int(os.environ['IMAP']))
    m.login(u, pw)
    typ, data = m.select('INBOX')
    out.append(f'imap {typ} {data[0].decode()}')
    m.logout()
except Exception as e:
    out.append(f'imap FAIL {type(e).__name__}: {str(e)[:100]}')
try:
    p = poplib.POP3(host, int(os.environ['POP']))
    p.user(u)
    p.pass_(pw)
    out.append(f'pop {p.stat()[0]}')
    p.quit()
except Exception as e:
    out.append(f'pop FAIL {type(e).__name__}: {str(e)[:100]}')
try:
    s = smtplib.SMTP(host, int(os.environ['SMTP']))
    s.login(u, pw)
    s.sendmail(u, ['bob@example.test'], 'Subject: via proxy\\r\\n\\r\\nhello\\r\\n')
    out.append('smtp sent')
    s.quit()
except Exception as e:
    out.append(f'smtp FAIL {type(e).__name__}: {str(e)[:100]}')
print('\\n'.join(out))
`
  const python = (pw: string) =>
    runCommand('python3', ['-c', PY], {
      ...home.env,
      U: EMAIL,
      PW: pw,
      IMAP: String(ports.imap),
      POP: String(ports.pop3),
      SMTP: String(ports.smtp),
    })

  it('Python imaplib login(), poplib user/pass_, smtplib login() through the proxy', async () => {
    const before = smtp.received.length
    const r = await python(LOCAL_PW)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^imap OK 3$/m)
    assert.match(r.stdout, /^pop 3$/m)
    assert.match(r.stdout, /^smtp sent$/m)
    assert.equal(smtp.received.length, before + 1)
    assert.equal(smtp.received.at(-1)?.user, EMAIL, 'upstream saw the OAuth identity')
  })

  it('curl --user through the IMAP proxy', async () => {
    const r = await runCommand(
      'curl',
      ['-s', '-S', '-K', '-', `imap://127.0.0.1:${ports.imap}/INBOX`, '-X', 'EXAMINE INBOX'],
      home.env,
      `user = "${EMAIL}:${LOCAL_PW}"\n`,
    )
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /\* 3 EXISTS/)
  })

  it('curl --user through the POP3 and SMTP proxies; imapflow and nodemailer with a user name and the local password', async () => {
    const pop = await runCommand(
      'curl',
      ['-s', '-S', '-K', '-', `pop3://127.0.0.1:${ports.pop3}/`],
      home.env,
      `user = "${EMAIL}:${LOCAL_PW}"\n`,
    )
    assert.equal(pop.code, 0, pop.stderr)
    assert.match(pop.stdout, /^1 \d+\r?$/m, 'LIST through the proxy')
    const before = smtp.received.length
    // curl reads its config (with the password) from stdin, so the message goes in a file
    const { writeFile } = await import('node:fs/promises')
    const mailFile = join(home.dir, 'curl-mail.eml')
    await writeFile(mailFile, `From: ${EMAIL}\r\nTo: bob@example.test\r\nSubject: curl via proxy\r\n\r\nhello\r\n`)
    const sent = await runCommand(
      'curl',
      [
        '-s',
        '-S',
        '-K',
        '-',
        `smtp://127.0.0.1:${ports.smtp}`,
        '--mail-from',
        EMAIL,
        '--mail-rcpt',
        'bob@example.test',
        '-T',
        mailFile,
      ],
      home.env,
      `user = "${EMAIL}:${LOCAL_PW}"\n`,
    )
    assert.equal(sent.code, 0, sent.stderr)
    assert.equal(smtp.received.length, before + 1)
    const { ImapFlow } = await import('imapflow')
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: ports.imap as number,
      secure: false,
      doSTARTTLS: false,
      auth: { user: EMAIL, pass: LOCAL_PW },
      logger: false,
    })
    await client.connect()
    assert.ok((await client.mailboxOpen('INBOX')).exists >= 3)
    await client.logout()
    const nodemailer = (await import('nodemailer')).default
    const info = await nodemailer
      .createTransport({
        host: '127.0.0.1',
        port: ports.smtp as number,
        secure: false,
        ignoreTLS: true,
        auth: { user: EMAIL, pass: LOCAL_PW },
      })
      .sendMail({ from: EMAIL, to: 'bob@example.test', subject: 'nodemailer via proxy', text: 'hi' })
    assert.deepEqual(info.accepted, ['bob@example.test'])
    assert.equal(smtp.received.length, before + 2)
    assert.equal(smtp.received.at(-1)?.user, EMAIL, 'upstream saw the OAuth identity')
  })

  it('clients that speak XOAUTH2/OAUTHBEARER themselves are passed through (no local password)', async () => {
    const tok = (await runCli(['token', EMAIL], home.env)).stdout.trim()
    secrets.push(tok)
    const { ImapFlow } = await import('imapflow')
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: ports.imap as number,
      secure: false,
      doSTARTTLS: false,
      auth: { user: EMAIL, accessToken: tok },
      logger: false,
    })
    await client.connect()
    const box = await client.mailboxOpen('INBOX')
    assert.ok(box.exists >= 3)
    await client.logout()
    const bad = new ImapFlow({
      host: '127.0.0.1',
      port: ports.imap as number,
      secure: false,
      doSTARTTLS: false,
      auth: { user: EMAIL, accessToken: 'not-a-token-anyone-issued' },
      logger: false,
    })
    await assert.rejects(
      bad.connect(),
      (e: unknown) => (e as { authenticationFailed?: boolean }).authenticationFailed === true,
    )
    assert.match(proxy.stderr(), /"event":"passthrough".*"outcome":"ok"/)
  })

  it('POP3 and SMTP clients with their own token are passed through: curl --oauth2-bearer, nodemailer XOAUTH2', async () => {
    const tok = (await runCli(['token', EMAIL], home.env)).stdout.trim()
    secrets.push(tok)
    // curl picks OAUTHBEARER when the server offers it (RFC 7628), XOAUTH2 otherwise.
    const curlPop = (bearer: string) =>
      runCommand(
        'curl',
        ['-s', '-S', '-K', '-', `pop3://127.0.0.1:${ports.pop3}/`],
        home.env,
        `user = "${EMAIL}:"\noauth2-bearer = "${bearer}"\n`,
      )
    const ok = await curlPop(tok)
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /^1 \d+\r?$/m, 'LIST after the passed-through login')
    const bad = await curlPop('not-a-token-anyone-issued')
    assert.equal(bad.code, 67, `curl: login denied (${bad.stderr})`)

    const nodemailer = (await import('nodemailer')).default
    const before = smtp.received.length
    const send = (accessToken: string) =>
      nodemailer
        .createTransport({
          host: '127.0.0.1',
          port: ports.smtp as number,
          secure: false,
          ignoreTLS: true,
          auth: { type: 'OAuth2', user: EMAIL, accessToken },
        })
        .sendMail({ from: EMAIL, to: 'bob@example.test', subject: 'own token via proxy', text: 'hi' })
    const info = await send(tok)
    assert.deepEqual(info.accepted, ['bob@example.test'])
    assert.equal(smtp.received.length, before + 1)
    assert.equal(smtp.received.at(-1)?.user, EMAIL, "upstream saw the client's own token")
    await assert.rejects(
      send('not-a-token-anyone-issued'),
      (e: unknown) =>
        (e as { code?: string; responseCode?: number }).code === 'EAUTH' &&
        (e as { responseCode?: number }).responseCode === 535,
    )
    assert.equal(smtp.received.length, before + 1, 'nothing sent with a refused token')

    const events = proxy
      .stderr()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, string>)
      .filter((e) => e.event === 'passthrough')
    for (const proto of ['pop3', 'smtp']) {
      assert.ok(
        events.some((e) => e.proto === proto && e.outcome === 'ok'),
        `${proto} passthrough ok logged`,
      )
      assert.ok(
        events.some((e) => e.proto === proto && e.outcome === 'bad-credentials'),
        `${proto} refused token logged`,
      )
    }
    assert.ok(
      events.some((e) => e.proto === 'pop3' && e.mechanism === 'OAUTHBEARER'),
      'curl chose OAUTHBEARER',
    )
    assert.ok(
      events.some((e) => e.proto === 'smtp' && e.mechanism === 'XOAUTH2'),
      'nodemailer chose XOAUTH2',
    )
  })

  it('a wrong local password is refused without touching the server', async () => {
    lab.resetCounts()
    const r = await python('not the password')
    assert.match(r.stdout, /^imap FAIL error: .*AUTHENTICATIONFAILED/m)
    assert.match(r.stdout, /^pop FAIL error_proto: .*-ERR \[AUTH\]/m)
    assert.match(r.stdout, /^smtp FAIL SMTPAuthenticationError: \(535/m)
    assert.equal(lab.counts.introspection, 0, 'no upstream login was attempted')
    assert.equal(lab.counts.refresh, 0)
  })

  it('repeated wrong passwords wait longer each time (config: failed_login_delay_max_sec); the right one still gets in', async () => {
    const { writeFile, rm, mkdir } = await import('node:fs/promises')
    const { connect } = await import('node:net')
    const configFile = join(home.env.XDG_CONFIG_HOME as string, 'mailkey', 'config.toml')
    await mkdir(join(home.env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
    await writeFile(configFile, '[proxy]\nfailed_login_delay_max_sec = 2\n')
    const p2 = spawnCli(['proxy', '--imap-port', '0'], home.env)
    try {
      const port = Number((await p2.event('listening', 15_000)).port)
      /** one connection: greeting, LOGIN, the tagged reply and how long it took */
      const login = (pw: string) =>
        new Promise<{ line: string; ms: number }>((resolve, reject) => {
          const s = connect(port, '127.0.0.1')
          let buf = ''
          let t0 = 0
          s.setEncoding('utf8').on('data', (d: string) => {
            buf += d
            if (!t0 && buf.includes('\r\n')) {
              t0 = performance.now()
              s.write(`a1 LOGIN ${EMAIL} "${pw}"\r\n`)
            }
            const m = /^a1 .*$/m.exec(buf)
            if (m) {
              s.destroy()
              resolve({ line: m[0].trim(), ms: performance.now() - t0 })
            }
          })
          s.on('error', reject)
        })
      const tries = []
      for (let i = 0; i < 5; i++) tries.push(await login(`wrong ${i}`))
      for (const t of tries) assert.match(t.line, /^a1 NO \[AUTHENTICATIONFAILED\]/)
      // 3 free failures, then 1 s, then 2 s (the configured cap): lower bounds only, never upper.
      assert.ok((tries[3] as { ms: number }).ms >= 1000, `4th reply after ${tries[3]?.ms} ms`)
      assert.ok((tries[4] as { ms: number }).ms >= 2000, `5th reply after ${tries[4]?.ms} ms`)
      const right = await login(LOCAL_PW)
      assert.match(right.line, /^a1 OK/, 'the right password is never locked out')
      const events = p2
        .stderr()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((e) => e.event === 'login')
      assert.deepEqual(
        events.map((e) => [e.outcome, e.penaltyMs ?? 0]),
        [
          ['bad-credentials', 0],
          ['bad-credentials', 0],
          ['bad-credentials', 0],
          ['bad-credentials', 1000],
          ['bad-credentials', 2000],
          ['ok', 0],
        ],
      )
    } finally {
      p2.child.kill('SIGTERM')
      await p2.done
      await rm(configFile, { force: true })
    }
  })

  it('logs JSON lines with a connection id and no secrets', async () => {
    const log = proxy.stderr()
    const lines = log
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.ok(
      lines.some((l) => l.event === 'login' && l.outcome === 'ok' && l.proto === 'imap' && typeof l.cid === 'string'),
    )
    assert.ok(lines.some((l) => l.event === 'login' && l.outcome === 'bad-credentials'))
    const rec = JSON.parse(await readFile(recordFile(home.env, EMAIL), 'utf8')) as {
      grant: { accessToken: string; refreshToken: string }
    }
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken, LOCAL_PW)
    assert.deepEqual(
      findLeaks([log, ...transcript.filter((t) => t.args[0] !== 'token').map((t) => t.stdout + t.stderr)], secrets),
      [],
    )
  })
})

describe(
  'mailkey proxy: TLS towards the client, and accounts that cannot log in',
  { skip: missing.length ? `${missing.join(', ')} not installed` : false },
  () => {
    let lab: LabServer
    let dovecot: Dovecot
    let home: TmpHome
    const procs: LiveCli[] = []
    const secrets: string[] = [LOCAL_PW]

    async function account(email: string, imapUrl: string): Promise<void> {
      await signIn(lab, home.env, email, [...labFlags(lab), '--imap-url', imapUrl, '--ca', dovecot.caFile], secrets)
      assert.equal((await runCli(['proxy', 'password', email], home.env, { stdin: LOCAL_PW + '\n' })).code, 0)
    }
    async function startProxy(args: string[]): Promise<number> {
      const p = spawnCli(['proxy', ...args], home.env)
      procs.push(p)
      const end = Date.now() + 15_000
      while (p.events('listening').length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
      return Number(p.events('listening')[0]?.port)
    }
    const PY = `
import imaplib, ssl, os
ctx = ssl.create_default_context(cafile=os.environ['CA'])
host, port, mode = 'localhost', int(os.environ['PORT']), os.environ['MODE']
try:
    m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx) if mode == 'implicit' else imaplib.IMAP4(host, port)
    if mode == 'starttls':
        m.starttls(ssl_context=ctx)
    m.login(os.environ['U'], os.environ['PW'])
    typ, data = m.select('INBOX')
    print('imap', typ, data[0].decode())
except Exception as e:
    print('imap FAIL', type(e).__name__, str(e)[:120])
`
    const py = (port: number, mode: string, user: string, ca = dovecot.caFile) =>
      runCommand('python3', ['-c', PY], { ...home.env, CA: ca, PORT: String(port), MODE: mode, U: user, PW: LOCAL_PW })

    before(async () => {
      lab = await startOAuthServer({ deviceInterval: 1 })
      dovecot = await startDovecot({
        introspectionUrl: introspectionUrl(lab.issuer),
        users: ['alice@example.test', 'bob@example.test', 'carol@example.test'],
      })
      home = await makeTmpHome()
      await account('alice@example.test', `imaps://localhost:${dovecot.ports.imaps}`)
      await account('bob@example.test', `imap://localhost:${dovecot.ports.imap}`)
      await account('carol@example.test', `imaps://localhost:${dovecot.ports.imaps}`)
    })
    after(async () => {
      for (const p of procs) p.child.kill('SIGTERM')
      await Promise.all(procs.map((p) => p.done))
      await dovecot?.stop()
      await lab?.close()
      await home?.cleanup()
    })

    it('implicit TLS and STARTTLS towards the client; STARTTLS upstream (bob) and implicit upstream (alice)', async () => {
      const implicit = await startProxy([
        '--imap-port',
        '0',
        '--tls-cert',
        dovecot.certFile,
        '--tls-key',
        dovecot.keyFile,
        '--tls',
        'implicit',
      ])
      const starttls = await startProxy([
        '--imap-port',
        '0',
        '--tls-cert',
        dovecot.certFile,
        '--tls-key',
        dovecot.keyFile,
      ])
      assert.match((await py(implicit, 'implicit', 'alice@example.test')).stdout, /^imap OK 3$/m)
      assert.match((await py(starttls, 'starttls', 'bob@example.test')).stdout, /^imap OK 3$/m)
    })

    it('--tls without a certificate: mailkey makes its own once (0600 key), prints file and fingerprint; clients that pin it log in', async () => {
      const first = spawnCli(['proxy', '--imap-port', '0', '--tls', 'implicit'], home.env)
      procs.push(first)
      const cert = await first.event('certificate', 15_000)
      const port = Number((await first.event('listening', 15_000)).port)
      assert.equal(cert.created, true)
      const file = String(cert.file)
      assert.equal(
        (await stat(join(home.env.XDG_STATE_HOME as string, 'mailkey', 'proxy-tls.key'))).mode & 0o777,
        0o600,
      )
      const { X509Certificate } = await import('node:crypto')
      assert.equal(new X509Certificate(await readFile(file)).fingerprint256, cert.fingerprint256)
      // Python pins the file (implicit TLS, host name localhost checked)
      assert.match((await py(port, 'implicit', 'alice@example.test', file)).stdout, /^imap OK 3$/m)
      // curl: STARTTLS on a second proxy, which reuses the same certificate
      const second = spawnCli(['proxy', '--imap-port', '0', '--tls', 'starttls'], home.env)
      procs.push(second)
      const again = await second.event('certificate', 15_000)
      const port2 = Number((await second.event('listening', 15_000)).port)
      assert.equal(again.created, false)
      assert.equal(again.fingerprint256, cert.fingerprint256)
      const r = await runCommand(
        'curl',
        [
          '-s',
          '-S',
          '--ssl-reqd',
          '--cacert',
          file,
          '-K',
          '-',
          `imap://127.0.0.1:${port2}/INBOX`,
          '-X',
          'EXAMINE INBOX',
        ],
        home.env,
        `user = "bob@example.test:${LOCAL_PW}"\n`,
      )
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /\* 3 EXISTS/)
      // and a client that does not trust it refuses (the certificate is not from a public CA)
      const untrusted = await runCommand(
        'curl',
        ['-s', '-S', '--ssl-reqd', `imap://localhost:${port2}/INBOX`, '-X', 'NOOP'],
        home.env,
      )
      assert.equal(untrusted.code, 60, untrusted.stderr)
    })

    it('STARTTLS command injection: plain-text bytes sent with STARTTLS are dropped, not run after the handshake', async () => {
      const port = await startProxy(['--imap-port', '0', '--tls-cert', dovecot.certFile, '--tls-key', dovecot.keyFile])
      const { connect } = await import('node:net')
      const tls = await import('node:tls')
      const sock = connect(port, '127.0.0.1')
      let plain = ''
      sock.setEncoding('utf8').on('data', (d: string) => (plain += d))
      await new Promise((r) => sock.once('connect', r))
      while (!plain.includes('ready')) await new Promise((r) => setTimeout(r, 20))
      sock.write(`a1 STARTTLS\r\na2 LOGIN alice@example.test "${LOCAL_PW}"\r\n`)
      while (!plain.includes('a1 OK')) await new Promise((r) => setTimeout(r, 20))
      sock.removeAllListeners('data')
      const secure = tls.connect({ socket: sock, servername: 'localhost', ca: dovecot.caPem })
      await new Promise((r, j) => {
        secure.once('secureConnect', r)
        secure.once('error', j)
      })
      let enc = ''
      secure.setEncoding('utf8').on('data', (d: string) => (enc += d))
      secure.write('a3 NOOP\r\n')
      while (!enc.includes('a3 ')) await new Promise((r) => setTimeout(r, 20))
      secure.end()
      assert.doesNotMatch(plain + enc, /a2 /, 'the injected LOGIN got no answer at all')
      assert.match(enc, /^a3 OK/m)
    })

    it('a revoked grant answers NO [AUTHENTICATIONFAILED] pointing at mailkey status', async () => {
      const port = await startProxy(['--imap-port', '0'])
      const rec = JSON.parse(await readFile(recordFile(home.env, 'carol@example.test'), 'utf8')) as {
        grant: { refreshToken: string }
      }
      await lab.revokeGrant(rec.grant.refreshToken)
      const r = await py(port, 'plain', 'carol@example.test')
      assert.match(r.stdout, /^imap FAIL error .*AUTHENTICATIONFAILED.*mailkey status/m)
    })

    it('the OAuth server down and the token expired: NO [UNAVAILABLE], nothing lost', async () => {
      const port = await startProxy(['--imap-port', '0'])
      const path = recordFile(home.env, 'alice@example.test')
      const raw = JSON.parse(await readFile(path, 'utf8')) as { grant: { expiresAt: number } }
      raw.grant.expiresAt = Date.now() - 1000
      const { writeFile } = await import('node:fs/promises')
      await writeFile(path, JSON.stringify(raw))
      lab.injectTokenFault({ grantType: 'refresh_token', status: 503, body: 'down', times: 3 })
      const r = await py(port, 'plain', 'alice@example.test')
      lab.clearFaults()
      assert.match(r.stdout, /^imap FAIL error .*UNAVAILABLE/m)
      const again = await py(port, 'plain', 'alice@example.test')
      assert.match(again.stdout, /^imap OK 3$/m, 'the grant survived the outage')
    })

    it('refuses to listen beyond loopback without TLS', async () => {
      const r = await runCli(['proxy', '--imap-port', '0', '--host', '0.0.0.0'], home.env)
      assert.equal(r.code, 64)
      assert.match(r.stderr, /without TLS/)
    })

    it('no secret in any output', () => {
      assert.deepEqual(
        findLeaks(
          [
            ...procs.map((p) => p.stderr()),
            ...transcript.filter((t) => t.args[0] !== 'token').map((t) => t.stdout + t.stderr),
          ],
          secrets,
        ),
        [],
      )
    })
  },
)
