// The `mailkey test` dialogues against a scripted peer (no sockets), and the failure diagnoses.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Secret } from '../../src/core/secret.js'
import {
  ProbeFailure,
  imapDialogue,
  pop3Dialogue,
  smtpDialogue,
  type DialogueOptions,
} from '../../src/upstream/dialogues.js'
import { diagnose, type DiagnoseContext } from '../../src/upstream/diagnose.js'
import { ProbeNetworkError, type LineTransport } from '../../src/upstream/transport.js'
import { encodeSasl } from '../../src/sasl/index.js'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

type Step = { expect: RegExp; reply: string[] }

/** A scripted server: greeting lines, then for each client line the expected pattern and the reply. */
function peer(greeting: string[], steps: Step[], opts: { injectAfterStarttls?: boolean } = {}) {
  const queue = [...greeting]
  const sent: string[] = []
  let secure = false
  let injected = false
  const t: LineTransport = {
    get secure() {
      return secure
    },
    async readLine() {
      const l = queue.shift()
      if (l === undefined) throw new ProbeNetworkError('peer closed', 'ECONNRESET')
      return l
    },
    async write(line) {
      sent.push(line)
      const step = steps.shift()
      assert.ok(step, `unexpected client line: ${line.slice(0, 40)}`)
      assert.match(line, step.expect)
      queue.push(...step.reply)
      if (opts.injectAfterStarttls && /STARTTLS|STLS/.test(line)) {
        queue.push('* OK injected')
        injected = true
      }
    },
    async startTls() {
      secure = true
    },
    buffered: () => (injected ? queue.length : 0),
    close() {},
    detach() {
      throw new Error('not used by the dialogues')
    },
    async writeBytes() {
      throw new Error('not used by the dialogues')
    },
  }
  return { t, sent, secure: () => secure }
}

const TOKEN = new Secret('token-value-for-unit-tests-0123456789')
const opts = (over: Partial<DialogueOptions> = {}): DialogueOptions => ({
  starttls: false,
  mechanisms: ['XOAUTH2', 'OAUTHBEARER'],
  saslResponse: (m) => encodeSasl(m, { user: 'a@example.test', token: TOKEN, host: 'h', port: 1 }),
  from: 'a@example.test',
  ...over,
})
const b64json = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64')

describe('IMAP dialogue', () => {
  it('AUTHENTICATE with SASL-IR, then SELECT INBOX counts the messages', async () => {
    const p = peer(
      ['* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] ready'],
      [
        {
          expect: /^mk1 AUTHENTICATE XOAUTH2 [A-Za-z0-9+/=]{20,}$/,
          reply: ['mk1 OK [CAPABILITY IMAP4rev1] Logged in'],
        },
        {
          expect: /^mk2 SELECT INBOX$/,
          reply: ['* FLAGS (\\Seen)', '* 3 EXISTS', '* 0 RECENT', 'mk2 OK [READ-WRITE] Select completed'],
        },
        { expect: /^mk3 LOGOUT$/, reply: ['* BYE', 'mk3 OK'] },
      ],
    )
    const r = await imapDialogue(p.t, opts())
    assert.equal(r.mechanism, 'XOAUTH2')
    assert.equal(r.messages, 3)
    assert.deepEqual(r.steps.at(-1), 'SELECT INBOX (3 messages)')
  })

  it('without SASL-IR waits for the continuation; STARTTLS first, capabilities asked again', async () => {
    const p = peer(
      ['* OK ready'],
      [
        { expect: /^mk1 CAPABILITY$/, reply: ['* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED', 'mk1 OK'] },
        { expect: /^mk2 STARTTLS$/, reply: ['mk2 OK Begin TLS'] },
        { expect: /^mk3 CAPABILITY$/, reply: ['* CAPABILITY IMAP4rev1 AUTH=OAUTHBEARER', 'mk3 OK'] },
        { expect: /^mk4 AUTHENTICATE OAUTHBEARER$/, reply: ['+ '] },
        { expect: /^[A-Za-z0-9+/=]{20,}$/, reply: ['mk4 OK done'] },
        { expect: /^mk5 SELECT INBOX$/, reply: ['* 0 EXISTS', 'mk5 OK'] },
        { expect: /^mk6 LOGOUT$/, reply: ['mk6 OK'] },
      ],
    )
    const r = await imapDialogue(p.t, opts({ starttls: true }))
    assert.equal(p.secure(), true)
    assert.equal(r.mechanism, 'OAUTHBEARER')
    assert.equal(r.messages, 0)
    assert.ok(r.steps.includes('STARTTLS'))
  })

  it('a refused token: decodes the error challenge, answers it, reports the tagged NO', async () => {
    const p = peer(
      ['* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready'],
      [
        {
          expect: /^mk1 AUTHENTICATE XOAUTH2 /,
          reply: [`+ ${b64json({ status: '401', schemes: 'bearer', scope: 'mail' })}`],
        },
        { expect: /^$/, reply: ['mk1 NO [AUTHENTICATIONFAILED] Authentication failed.'] },
      ],
    )
    await assert.rejects(imapDialogue(p.t, opts()), (e: unknown) => {
      assert.ok(e instanceof ProbeFailure)
      assert.equal(e.stage, 'auth')
      assert.deepEqual(e.challenge, { status: '401', schemes: 'bearer', scope: 'mail' })
      assert.match(e.message, /AUTHENTICATIONFAILED/)
      assert.ok(!e.message.includes(TOKEN.reveal()))
      return true
    })
  })

  it('OAUTHBEARER error challenges are answered with the dummy response (RFC 7628 §3.2.3)', async () => {
    const p = peer(
      ['* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] ready'],
      [
        { expect: /^mk1 AUTHENTICATE OAUTHBEARER /, reply: [`+ ${b64json({ status: 'invalid_token' })}`] },
        { expect: /^AQ==$/, reply: ['mk1 NO [AUTHENTICATIONFAILED] Authentication failed.'] },
      ],
    )
    await assert.rejects(
      imapDialogue(p.t, opts()),
      (e: unknown) => e instanceof ProbeFailure && e.challenge?.status === 'invalid_token',
    )
  })

  it('"authenticated but not connected" is a mailbox-stage failure', async () => {
    const p = peer(
      ['* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready'],
      [
        { expect: /^mk1 AUTHENTICATE/, reply: ['mk1 OK AUTHENTICATE completed.'] },
        { expect: /^mk2 SELECT INBOX$/, reply: ['mk2 BAD User is authenticated but not connected.'] },
      ],
    )
    await assert.rejects(imapDialogue(p.t, opts()), (e: unknown) => e instanceof ProbeFailure && e.stage === 'mailbox')
  })

  it('refuses to log in when STARTTLS is missing, and detects STARTTLS injection', async () => {
    const p1 = peer(['* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready'], [])
    await assert.rejects(
      imapDialogue(p1.t, opts({ starttls: true })),
      (e: unknown) => e instanceof ProbeFailure && e.stage === 'starttls' && /without TLS/.test(e.message),
    )
    const p2 = peer(
      ['* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=XOAUTH2] ready'],
      [{ expect: /^mk1 STARTTLS$/, reply: ['mk1 OK go'] }],
      { injectAfterStarttls: true },
    )
    await assert.rejects(
      imapDialogue(p2.t, opts({ starttls: true })),
      (e: unknown) => e instanceof ProbeFailure && /injection/.test(e.message),
    )
    assert.equal(p2.secure(), false, 'no TLS handshake after an injection')
  })

  it('no OAuth mechanism offered is a capability failure', async () => {
    const p = peer(['* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready'], [])
    await assert.rejects(
      imapDialogue(p.t, opts()),
      (e: unknown) => e instanceof ProbeFailure && e.stage === 'capability' && /offers: PLAIN/.test(e.message),
    )
  })
})

describe('POP3 dialogue', () => {
  it('STLS, CAPA, AUTH with a long response sent after "+" (RFC 5034 §4), STAT', async () => {
    const long = new Secret('x'.repeat(400))
    const p = peer(
      ['+OK Dovecot ready.'],
      [
        { expect: /^CAPA$/, reply: ['+OK', 'STLS', 'SASL PLAIN', '.'] },
        { expect: /^STLS$/, reply: ['+OK Begin TLS'] },
        { expect: /^CAPA$/, reply: ['+OK', 'SASL XOAUTH2 OAUTHBEARER', 'RESP-CODES', '.'] },
        { expect: /^AUTH XOAUTH2$/, reply: ['+ '] },
        { expect: /^[A-Za-z0-9+/=]{300,}$/, reply: ['+OK Logged in.'] },
        { expect: /^STAT$/, reply: ['+OK 2 1234'] },
        { expect: /^QUIT$/, reply: ['+OK bye'] },
      ],
    )
    const r = await pop3Dialogue(
      p.t,
      opts({ starttls: true, saslResponse: (m) => encodeSasl(m, { user: 'a@example.test', token: long }) }),
    )
    assert.equal(r.messages, 2)
    assert.equal(r.octets, 1234)
    assert.equal(p.secure(), true)
  })

  it('a short response goes inline; -ERR [AUTH] after the challenge fails at auth', async () => {
    const p = peer(
      ['+OK ready'],
      [
        { expect: /^CAPA$/, reply: ['+OK', 'SASL XOAUTH2', '.'] },
        { expect: /^AUTH XOAUTH2 \S+$/, reply: [`+ ${b64json({ status: '401', schemes: 'bearer' })}`] },
        { expect: /^$/, reply: ['-ERR [AUTH] Authentication failed.'] },
      ],
    )
    await assert.rejects(
      pop3Dialogue(p.t, opts({ saslResponse: () => new Secret('c2hvcnQ=') })),
      (e: unknown) => e instanceof ProbeFailure && e.stage === 'auth' && e.challenge?.status === '401',
    )
  })
})

describe('SMTP dialogue', () => {
  it('EHLO, STARTTLS, EHLO again, AUTH, MAIL FROM, RSET', async () => {
    const p = peer(
      ['220 smtp.example ESMTP'],
      [
        { expect: /^EHLO /, reply: ['250-smtp.example', '250-STARTTLS', '250 8BITMIME'] },
        { expect: /^STARTTLS$/, reply: ['220 2.0.0 Ready'] },
        { expect: /^EHLO /, reply: ['250-smtp.example', '250-AUTH LOGIN XOAUTH2', '250 8BITMIME'] },
        { expect: /^AUTH XOAUTH2$/, reply: ['334 '] },
        { expect: /^[A-Za-z0-9+/=]{600,}$/, reply: ['235 2.7.0 Authentication successful'] },
        { expect: /^MAIL FROM:<a@example\.test>$/, reply: ['250 2.1.0 Sender OK'] },
        { expect: /^RSET$/, reply: ['250 2.0.0 Resetting'] },
        { expect: /^QUIT$/, reply: ['221 bye'] },
      ],
    )
    const long = new Secret('y'.repeat(500)) // an Entra token is long: the response goes after 334
    const r = await smtpDialogue(
      p.t,
      opts({ starttls: true, saslResponse: (m) => encodeSasl(m, { user: 'a@example.test', token: long }) }),
    )
    assert.deepEqual(r.steps, [
      'greeting',
      'STARTTLS',
      'EHLO (AUTH LOGIN XOAUTH2)',
      'AUTH XOAUTH2',
      'MAIL FROM',
      'RSET (nothing sent)',
    ])
  })

  it("Microsoft's 535 5.7.139 is an auth-stage failure with the server's words", async () => {
    const p = peer(
      ['220 ready'],
      [
        { expect: /^EHLO /, reply: ['250-x', '250 AUTH XOAUTH2'] },
        {
          expect: /^AUTH XOAUTH2 /,
          reply: ['535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.'],
        },
      ],
    )
    await assert.rejects(smtpDialogue(p.t, opts({ saslResponse: () => new Secret('c2hvcnQ=') })), (e: unknown) => {
      assert.ok(e instanceof ProbeFailure)
      const d = diagnose(e, ctx({ protocol: 'smtp', freshTokenRefused: true }))
      assert.equal(d.kind, 'config')
      assert.match(d.cause, /SMTP AUTH is switched off/)
      assert.match(d.fix, /Authenticated SMTP/)
      return true
    })
  })
})

function ctx(over: Partial<DiagnoseContext> = {}): DiagnoseContext {
  return {
    protocol: 'imap',
    account: 'a@example.test',
    mailbox: 'a@example.test',
    server: 'imaps://h:993',
    freshTokenRefused: false,
    provider: 'microsoft',
    ...over,
  }
}

describe('a hostile error challenge', () => {
  it('its decoded strings are cleaned, and the suggested command quotes its scope for sh', async () => {
    const canary = join(tmpdir(), `mailkey-probe-canary-${process.pid}`)
    const evil = `https://mail.example.com/ x' ; touch ${canary} ; echo '\u001b]0;TITLE\u0007\u001b[2J`
    const p = peer(
      ['* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready'],
      [
        {
          expect: /^mk1 AUTHENTICATE XOAUTH2 /,
          reply: [`+ ${b64json({ status: '401', schemes: 'bearer', scope: evil })}`],
        },
        { expect: /^$/, reply: ['mk1 NO [AUTHENTICATIONFAILED] Authentication failed.'] },
      ],
    )
    const e = await imapDialogue(p.t, opts()).then(
      () => undefined,
      (x: unknown) => x,
    )
    assert.ok(e instanceof ProbeFailure)
    const scope = String(e.challenge?.scope)
    assert.doesNotMatch(scope, /[\u0000-\u001f\u007f-\u009f]/, 'no control character survives decoding')
    const d = diagnose(
      e,
      ctx({ provider: 'custom', freshTokenRefused: true, grantedScope: 'https://other.example/ offline_access' }),
    )
    assert.doesNotMatch(d.cause + d.fix, /[\u0000-\u001f\u007f-\u009f]/)
    // the command a user would paste: run it with a stand-in mailkey that prints its arguments
    const cmd = /"(mailkey add .*)"\.$/.exec(d.fix)?.[1]
    assert.ok(cmd, d.fix)
    const r = spawnSync('sh', ['-c', `mailkey() { printf '%s\\n' "$@"; }; ${cmd}`], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    assert.deepEqual(r.stdout.split('\n').slice(0, 4), ['add', 'a@example.test', '--scope', `${scope} offline_access`])
    assert.equal(existsSync(canary), false, 'nothing else ran')
  })
})

describe('diagnose', () => {
  it('a first refusal asks for a retry with a fresh token (reauth); a fresh one refused is config', () => {
    const f = new ProbeFailure('auth', 'AUTHENTICATE XOAUTH2 failed: NO', 'mk1 NO [AUTHENTICATIONFAILED]')
    assert.equal(diagnose(f, ctx()).kind, 'reauth')
    assert.equal(
      diagnose(f, ctx({ freshTokenRefused: true, grantedScope: 'https://outlook.office.com/IMAP.AccessAsUser.All' }))
        .kind,
      'config',
    )
  })
  it('Graph-audience tokens and missing service scopes are named', () => {
    const f = new ProbeFailure('auth', 'AUTHENTICATE failed', 'mk1 NO AUTHENTICATE failed.')
    assert.match(
      diagnose(f, ctx({ freshTokenRefused: true, grantedScope: 'https://graph.microsoft.com/User.Read' })).cause,
      /Microsoft Graph/,
    )
    assert.match(
      diagnose(
        f,
        ctx({
          protocol: 'pop',
          freshTokenRefused: true,
          grantedScope: 'https://outlook.office.com/IMAP.AccessAsUser.All',
        }),
      ).cause,
      /POP\.AccessAsUser\.All/,
    )
  })
  it('signed in as someone else', () => {
    const f = new ProbeFailure('auth', 'AUTHENTICATE failed', 'mk1 NO')
    const d = diagnose(
      f,
      ctx({
        freshTokenRefused: true,
        signedInAs: 'b@example.test',
        grantedScope: 'https://outlook.office.com/IMAP.AccessAsUser.All',
      }),
    )
    assert.match(d.cause, /signed in as b@example\.test/)
  })
  it('"authenticated but not connected"', () => {
    const f = new ProbeFailure('mailbox', 'SELECT INBOX failed', 'mk2 BAD User is authenticated but not connected.')
    const d = diagnose(f, ctx({ signedInAs: 'b@example.test' }))
    assert.equal(d.kind, 'config')
    assert.match(d.cause, /cannot open the mailbox a@example\.test/)
    assert.match(d.fix, /mailkey add a@example\.test/)
  })
  it('TLS and network failures', () => {
    assert.match(diagnose(new ProbeNetworkError('x', 'DEPTH_ZERO_SELF_SIGNED_CERT'), ctx()).fix, /--ca/)
    assert.equal(diagnose(new ProbeNetworkError('x', 'ECONNREFUSED'), ctx()).kind, 'transient')
    assert.match(diagnose(new ProbeNetworkError('x', 'ERR_SSL_WRONG_VERSION_NUMBER'), ctx()).fix, /STARTTLS/)
    assert.match(
      diagnose(new ProbeNetworkError('x', 'ERR_TLS_CERT_ALTNAME_INVALID'), ctx()).cause,
      /not for that host name/,
    )
    assert.equal(diagnose(new ProbeNetworkError('x', 'ETIMEDOUT'), ctx()).kind, 'transient')
  })
  it('a CA file that went missing is a configuration problem, named, with the fix', async () => {
    const { openTransport } = await import('../../src/upstream/transport.js')
    const err = await openTransport(
      { host: '127.0.0.1', port: 1, implicitTls: true },
      { caFile: '/nonexistent/mailkey-ca.pem' },
    ).then(
      () => undefined,
      (e: unknown) => e,
    )
    assert.ok(err instanceof ProbeNetworkError)
    assert.match(err.message, /cannot read the CA file "\/nonexistent\/mailkey-ca\.pem" \(ENOENT\)/)
    const d = diagnose(err, ctx())
    assert.equal(d.kind, 'config')
    assert.match(d.fix, /--ca ca\.pem/)
  })
  it('temporary unavailability is transient', () => {
    const f = new ProbeFailure('auth', 'failed', 'mk1 NO [UNAVAILABLE] Temporary authentication failure.')
    assert.equal(diagnose(f, ctx()).kind, 'transient')
  })
})
