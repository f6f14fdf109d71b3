// Real mail clients using tokens from `mailkey token` against the real testbed (Dovecot with its
// oauth2 passdb for IMAP/POP3, an XOAUTH2/OAUTHBEARER SMTP submission server, both validating by
// introspection at the real OAuth server): curl, msmtp, Python imaplib/poplib/smtplib, imapflow,
// nodemailer, and `mailkey test` itself. Each succeeds with a fresh token and fails clearly with a
// revoked one. Tokens never go on a command line: stdin, env or the credential command.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ImapFlow } from 'imapflow'
import nodemailer from 'nodemailer'
import { startOAuthServer, introspectionUrl, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { BIN, runCli, transcript, findLeaks, noteSecrets, have, runCommand } from '../harness/cli.js'
import { labFlags, signIn } from '../harness/sign-in.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'
import { startSmtp, type Smtp } from '../harness/smtp-server.js'

const EMAIL = 'alice@example.test'
const missing = [
  !dovecotAvailable() && 'dovecot',
  !have('curl') && 'curl',
  !have('msmtp') && 'msmtp',
  !have('python3') && 'python3',
].filter(Boolean)
const INSTALL = `${DOVECOT_INSTALL_HINT} curl msmtp python3`
if (missing.length && process.env.CI)
  throw new Error(`the client tests need ${missing.join(', ')} in CI: apt-get install ${INSTALL}`)
if (missing.length)
  console.error(`\n*** SKIPPING real-client tests: ${missing.join(', ')} missing (apt-get install ${INSTALL}) ***\n`)

describe(
  'real clients with tokens from `mailkey token`',
  { skip: missing.length ? `${missing.join(', ')} not installed (apt-get install ${INSTALL})` : false },
  () => {
    let lab: LabServer
    let dovecot: Dovecot
    let smtp: Smtp
    let home: TmpHome
    let token = ''
    const secrets: string[] = []
    const mailkeyToken = async (): Promise<string> => {
      const r = await runCli(['token', EMAIL], home.env)
      assert.equal(r.code, 0, r.stderr)
      const t = r.stdout.trim()
      secrets.push(t)
      await noteSecrets(t)
      return t
    }

    before(async () => {
      lab = await startOAuthServer({ deviceInterval: 1 })
      dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer) })
      smtp = await startSmtp({
        introspect: (t, s) => lab.introspect(t, { service: s }),
        tls: { certFile: dovecot.certFile, keyFile: dovecot.keyFile },
        deliverTo: (u) => dovecot.mailDir(u),
      })
      home = await makeTmpHome()
      const p = dovecot.ports
      await signIn(lab, home.env, EMAIL, [
        ...labFlags(lab),
        '--imap-url',
        `imaps://localhost:${p.imaps}`,
        '--pop-url',
        `pop3s://localhost:${p.pop3s}`,
        '--smtp-url',
        `smtp://localhost:${smtp.ports.submission}`,
        '--ca',
        dovecot.caFile,
      ])
      token = await mailkeyToken()
    })
    after(async () => {
      await smtp?.stop()
      await dovecot?.stop()
      await lab?.close()
      await home?.cleanup()
    })

    it('mailkey test: IMAP, POP3 and SMTP all pass', async () => {
      const r = await runCli(['test', EMAIL], home.env)
      assert.equal(r.code, 0, r.stdout + r.stderr)
      assert.match(r.stdout, /IMAP .* ok/)
      assert.match(r.stdout, /POP3 .* ok/)
      assert.match(
        r.stdout,
        /SMTP .* ok\n.*STARTTLS (?:→|->) EHLO \(AUTH [^)]*XOAUTH2[^)]*\) (?:→|->) AUTH XOAUTH2 (?:→|->) MAIL FROM (?:→|->) RSET \(nothing sent\)/,
      )
      assert.equal(smtp.received.length, 0, 'mailkey test sends nothing')
    })

    it('curl --oauth2-bearer: IMAP, POP3 and SMTP', async () => {
      const cfg = `oauth2-bearer = "${token}"\nuser = "${EMAIL}:"\ncacert = "${dovecot.caFile}"\nsilent\nshow-error\n`
      const imap = await runCommand(
        'curl',
        ['-K', '-', `imaps://localhost:${dovecot.ports.imaps}/INBOX`, '-X', 'EXAMINE INBOX'],
        home.env,
        cfg,
      )
      assert.equal(imap.code, 0, imap.stderr)
      assert.match(imap.stdout, /\* 3 EXISTS/)
      const pop = await runCommand('curl', ['-K', '-', `pop3s://localhost:${dovecot.ports.pop3s}/`], home.env, cfg)
      assert.equal(pop.code, 0, pop.stderr)
      assert.equal(pop.stdout.trim().split('\n').length, 3, 'LIST shows the 3 messages')
      const msgFile = join(home.dir, 'curl-mail.txt')
      await writeFile(msgFile, `From: ${EMAIL}\r\nTo: bob@example.test\r\nSubject: via curl\r\n\r\nhello from curl\r\n`)
      const before = smtp.received.length
      const send = await runCommand(
        'curl',
        [
          '-K',
          '-',
          `smtp://localhost:${smtp.ports.submission}`,
          '--ssl-reqd',
          '--mail-from',
          EMAIL,
          '--mail-rcpt',
          'bob@example.test',
          '-T',
          msgFile,
        ],
        home.env,
        cfg,
      )
      assert.equal(send.code, 0, send.stderr)
      assert.equal(smtp.received.length, before + 1)
      assert.equal(smtp.received.at(-1)?.user, EMAIL)
    })

    it('msmtp: auth xoauth2 and auth oauthbearer with passwordeval "mailkey token"', async () => {
      for (const mech of ['oauthbearer', 'xoauth2']) {
        const cfg = join(home.dir, 'msmtprc')
        await writeFile(
          cfg,
          [
            'defaults',
            'tls on',
            `tls_trust_file ${dovecot.caFile}`,
            '',
            'account default',
            'host localhost',
            `port ${smtp.ports.submission}`,
            'tls_starttls on',
            `auth ${mech}`,
            `user ${EMAIL}`,
            `from ${EMAIL}`,
            `passwordeval "${process.execPath} ${BIN} token ${EMAIL}"`,
            '',
          ].join('\n'),
          { mode: 0o600 },
        )
        const before = smtp.received.length
        const r = await runCommand(
          'msmtp',
          ['-C', cfg, '-a', 'default', 'bob@example.test'],
          home.env,
          `From: ${EMAIL}\nTo: bob@example.test\nSubject: via msmtp ${mech}\n\nhello from msmtp\n`,
        )
        assert.equal(r.code, 0, `${mech}: ${r.stderr}`)
        assert.equal(smtp.received.length, before + 1, mech)
        assert.deepEqual(smtp.received.at(-1)?.to, ['bob@example.test'])
      }
    })

    const PY = `
import imaplib, poplib, smtplib, ssl, subprocess, sys, os
tok = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True).stdout.strip()
user = os.environ['PY_USER']
ctx = ssl.create_default_context(cafile=os.environ['PY_CA'])
xo = lambda _=None: f'user={user}\\x01auth=Bearer {tok}\\x01\\x01'.encode()  # imaplib wants bytes
xs = lambda _=None: f'user={user}\\x01auth=Bearer {tok}\\x01\\x01'  # smtplib wants str
out = []
try:
    m = imaplib.IMAP4_SSL('localhost', int(os.environ['PY_IMAPS']), ssl_context=ctx)
    m.authenticate('XOAUTH2', xo)
    typ, data = m.select('INBOX')
    out.append(f'imap {typ} {data[0].decode()}')
    m.logout()
except Exception as e:
    out.append(f'imap FAIL {type(e).__name__}: {str(e)[:120]}')
try:
    s = smtplib.SMTP('localhost', int(os.environ['PY_SUBMISSION']))
    s.starttls(context=ctx)
    s.ehlo()
    code, _ = s.auth('XOAUTH2', xs, initial_response_ok=True)
    out.append(f'smtp {code}')
    s.quit()
except Exception as e:
    out.append(f'smtp FAIL {type(e).__name__}: {str(e)[:120]}')
print('\\n'.join(out))
`
    const python = () =>
      runCommand('python3', ['-c', PY, process.execPath, BIN, 'token', EMAIL], {
        ...home.env,
        PY_USER: EMAIL,
        PY_CA: dovecot.caFile,
        PY_IMAPS: String(dovecot.ports.imaps),
        PY_SUBMISSION: String(smtp.ports.submission),
      })

    it("Python imaplib and smtplib: authenticate('XOAUTH2') with the token from mailkey", async () => {
      const r = await python()
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /^imap OK \d+$/m)
      assert.match(r.stdout, /^smtp 235$/m)
    })

    it('imapflow and nodemailer (library users) with the token', async () => {
      const client = new ImapFlow({
        host: 'localhost',
        port: dovecot.ports.imaps,
        secure: true,
        tls: { ca: [dovecot.caPem] },
        auth: { user: EMAIL, accessToken: token },
        logger: false,
      })
      await client.connect()
      const box = await client.mailboxOpen('INBOX')
      assert.ok(box.exists >= 3)
      await client.logout()
      const transport = nodemailer.createTransport({
        host: 'localhost',
        port: smtp.ports.submission,
        secure: false,
        requireTLS: true,
        tls: { ca: [dovecot.caPem] },
        auth: { type: 'OAuth2', user: EMAIL, accessToken: token },
      })
      const info = await transport.sendMail({
        from: EMAIL,
        to: 'bob@example.test',
        subject: 'via nodemailer',
        text: 'hello',
      })
      assert.deepEqual(info.accepted, ['bob@example.test'])
    })

    it('with a revoked grant every client fails clearly, and mailkey says to sign in again', async () => {
      await lab.revokeGrant(token)
      // The cached token still looks fresh to mailkey, so the credential command hands it out:
      // the servers are what refuse it now.
      const cfg = `oauth2-bearer = "${token}"\nuser = "${EMAIL}:"\ncacert = "${dovecot.caFile}"\nsilent\nshow-error\n`
      const imap = await runCommand(
        'curl',
        ['-K', '-', `imaps://localhost:${dovecot.ports.imaps}/INBOX`, '-X', 'EXAMINE INBOX'],
        home.env,
        cfg,
      )
      assert.equal(imap.code, 67, `curl: login denied (67), got ${imap.code}: ${imap.stderr}`)
      const py = await python()
      assert.match(py.stdout, /^imap FAIL error: .*AUTHENTICATIONFAILED/m)
      assert.match(py.stdout, /^smtp FAIL SMTPAuthenticationError: \(535/m)
      const msmtp = await runCommand(
        'msmtp',
        ['-C', join(home.dir, 'msmtprc'), '-a', 'default', 'bob@example.test'],
        home.env,
        'Subject: x\n\nx\n',
      )
      assert.notEqual(msmtp.code, 0)
      assert.match(msmtp.stderr, /authentication failed|535/i)
      const transport = nodemailer.createTransport({
        host: 'localhost',
        port: smtp.ports.submission,
        requireTLS: true,
        tls: { ca: [dovecot.caPem] },
        auth: { type: 'OAuth2', user: EMAIL, accessToken: token },
      })
      await assert.rejects(
        transport.sendMail({ from: EMAIL, to: 'bob@example.test', text: 'x' }),
        (e: unknown) =>
          (e as { code?: string; responseCode?: number }).code === 'EAUTH' &&
          (e as { responseCode?: number }).responseCode === 535,
      )
      // mailkey test refreshes once on the refusal, the refresh is refused too: sign in again.
      const t = await runCli(['test', EMAIL, '--protocol', 'imap'], home.env)
      assert.equal(t.code, 77, t.stdout + t.stderr)
      assert.match(t.stdout, /mailkey add alice@example\.test/)
      assert.equal((await runCli(['token', EMAIL], home.env)).code, 77)
    })

    it('no secret appeared in any output', async () => {
      const texts = transcript.filter((t) => t.args[0] !== 'token').flatMap((t) => [t.stdout, t.stderr])
      const rec = JSON.parse(await readFile(recordFile(home.env, EMAIL), 'utf8')) as { grant: { refreshToken: string } }
      secrets.push(rec.grant.refreshToken)
      assert.deepEqual(findLeaks(texts, secrets), [])
    })
  },
)
