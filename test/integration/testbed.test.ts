// Tests of the mail-server testbed itself: real Dovecot (IMAP/POP3, oauth2 passdb introspecting at
// the lab OAuth server) and the smtp-server submission server, driven by real clients (imapflow,
// nodemailer, a raw TLS socket, python3 imaplib, curl) with tokens from the lab's device flow.
// Tokens never appear in output: they go to child processes through env vars or a 0600 file, and
// assertion messages only quote server lines.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as netConnect } from 'node:net'
import type { Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { after, before, test } from 'node:test'
import type { TestContext } from 'node:test'
import { ImapFlow } from 'imapflow'
import nodemailer from 'nodemailer'
import * as oauth from 'oauth4webapi'
import { makeTestCA } from '../harness/certs.js'
import { noteSecrets } from '../harness/cli.js'
import { DOVECOT_INSTALL_HINT, dovecotAvailable, startDovecot } from '../harness/dovecot.js'
import type { Dovecot } from '../harness/dovecot.js'
import { LAB_PUBLIC_CLIENT_ID, introspectionUrl, MAIL_SCOPES, startOAuthServer } from '../harness/oauth-server.js'
import type { LabServer } from '../harness/oauth-server.js'
import { XOAUTH2_SMTP_CHALLENGE, startSmtp } from '../harness/smtp-server.js'
import type { Smtp } from '../harness/smtp-server.js'

const insecure = { [oauth.allowInsecureRequests]: true } as const
const client: oauth.Client = { client_id: LAB_PUBLIC_CLIENT_ID }
const ALICE = 'alice@example.test'
const BOB = 'bob@example.test'
const SEEDED = 3
const BAD_TOKEN = 'not-a-token-the-lab-ever-issued-0123456789'

const isRoot = process.getuid?.() === 0
const haveDovecot = dovecotAvailable() && isRoot
const dovecotMissing = dovecotAvailable()
  ? 'Dovecot must be started as root (it drops privileges itself)'
  : `Dovecot is not installed (${DOVECOT_INSTALL_HINT})`
const havePython = spawnSync('python3', ['-c', 'import ssl, imaplib'], { stdio: 'ignore' }).status === 0
const haveCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0
if (!haveDovecot) {
  console.error(
    `\n*** testbed: ${dovecotMissing}: the IMAP/POP3 tests are ${process.env.CI ? 'FAILING (CI)' : 'SKIPPED'} ***\n`,
  )
}

let lab: LabServer
let dovecot: Dovecot | undefined
let smtp: Smtp
/** The test CA and server cert (Dovecot's; a standalone pair when Dovecot is missing). */
let pki: { caPem: string; certFile: string; keyFile: string }
let certDir: string | undefined
const tokens = new Map<string, string>()

function token(user: string): string {
  const value = tokens.get(user)
  assert.ok(value, `no access token for ${user}`)
  return value
}

async function deviceToken(as: oauth.AuthorizationServer, login: string): Promise<string> {
  const scope = ['offline_access', 'openid', 'email', ...MAIL_SCOPES].join(' ')
  const res = await oauth.deviceAuthorizationRequest(as, client, oauth.None(), { scope }, insecure)
  const da = await oauth.processDeviceAuthorizationResponse(as, client, res)
  await lab.approveDevice(da.user_code, { login })
  const tokenRes = await oauth.deviceCodeGrantRequest(as, client, oauth.None(), da.device_code, insecure)
  const result = await oauth.processDeviceCodeResponse(as, client, tokenRes)
  await noteSecrets(result.access_token, result.refresh_token)
  return result.access_token
}

before(async () => {
  lab = await startOAuthServer()
  const issuer = new URL(lab.issuer)
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure))
  for (const user of [ALICE, BOB]) tokens.set(user, await deviceToken(as, user))
  if (haveDovecot) {
    dovecot = await startDovecot({
      introspectionUrl: introspectionUrl(lab.issuer),
      users: [ALICE, BOB],
      seedMessages: SEEDED,
    })
  }
  if (dovecot) {
    pki = dovecot
  } else {
    certDir = await mkdtemp(join(tmpdir(), 'mailkey-certs-'))
    pki = await makeTestCA(certDir)
  }
  smtp = await startSmtp({
    introspect: (t, service) => lab.introspect(t, { service }),
    tls: pki,
    deliverTo: dovecot ? (user) => dovecot?.mailDir(user) : undefined,
  })
})

after(async () => {
  // Dovecot's log has no tokens (auth_debug and auth_verbose are off).
  if (process.env.LAB_DOVECOT_LOG === '1') console.error(await dovecot?.readLog())
  await smtp?.stop()
  await dovecot?.stop()
  await lab?.close()
  if (certDir) await rm(certDir, { recursive: true, force: true })
})

/** The Dovecot of this run, or skips (fails in CI) with the install hint. */
function needDovecot(t: TestContext): Dovecot | undefined {
  if (dovecot) return dovecot
  if (process.env.CI) assert.fail(`CI must run the testbed: ${dovecotMissing}`)
  t.diagnostic(dovecotMissing)
  t.skip(dovecotMissing)
  return undefined
}

function needTool(t: TestContext, available: boolean, message: string): boolean {
  if (available) return true
  if (process.env.CI) assert.fail(`CI must have it: ${message}`)
  console.error(`\n*** testbed: SKIPPED: ${message} ***\n`)
  t.skip(message)
  return false
}

function xoauth2(user: string, bearer: string): string {
  return Buffer.from(`user=${user}\x01auth=Bearer ${bearer}\x01\x01`).toString('base64')
}

function oauthbearer(user: string, bearer: string, port: number): string {
  return Buffer.from(`n,a=${user},\x01host=127.0.0.1\x01port=${port}\x01auth=Bearer ${bearer}\x01\x01`).toString(
    'base64',
  )
}

/** A line-oriented TLS (or plain) conversation for raw protocol exchanges. */
class Conversation {
  private buffer = ''
  private waiting: ((line: string) => void) | undefined
  private lines: string[] = []
  private closed: Error | undefined

  readonly socket: Socket

  constructor(socket: Socket) {
    this.socket = socket
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      this.buffer += chunk
      let nl: number
      while ((nl = this.buffer.indexOf('\r\n')) >= 0) {
        this.lines.push(this.buffer.slice(0, nl))
        this.buffer = this.buffer.slice(nl + 2)
      }
      this.flush()
    })
    socket.on('error', (err) => {
      this.closed = err
    })
    socket.on('close', () => {
      this.closed ??= new Error('connection closed')
      this.flush()
    })
  }

  private flush(): void {
    if (!this.waiting) return
    const line = this.lines.shift()
    if (line !== undefined) {
      const resolve = this.waiting
      this.waiting = undefined
      resolve(line)
    }
  }

  /** Over TLS with `ca`, or plain TCP without. */
  static open(port: number, ca?: string): Promise<Conversation> {
    return new Promise((resolve, reject) => {
      const ready = (): void => resolve(new Conversation(socket))
      const socket = ca
        ? tlsConnect({ host: '127.0.0.1', port, ca }, ready)
        : netConnect({ host: '127.0.0.1', port }, ready)
      socket.once('error', reject)
    })
  }

  /** The next line from the server (5 s deadline). */
  read(): Promise<string> {
    const line = this.lines.shift()
    if (line !== undefined) return Promise.resolve(line)
    if (this.closed) return Promise.reject(this.closed)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer from the server within 5 s')), 5000)
      this.waiting = (l) => {
        clearTimeout(timer)
        resolve(l)
      }
    })
  }

  /** Reads until a line matches `done` (e.g. the tagged IMAP answer); returns all lines read. */
  async readUntil(done: RegExp): Promise<string[]> {
    const seen: string[] = []
    for (;;) {
      const line = await this.read()
      seen.push(line)
      if (done.test(line)) return seen
    }
  }

  send(line: string): void {
    this.socket.write(`${line}\r\n`)
  }

  close(): void {
    this.socket.destroy()
  }
}

test('testbed: Dovecot is up on four loopback ports, OAuth only', async (t) => {
  const d = needDovecot(t)
  if (!d) return
  const ports = Object.values(d.ports)
  assert.equal(new Set(ports).size, 4, 'four distinct ports')
  assert.match(d.caPem, /^-----BEGIN CERTIFICATE-----/)
  const imap = await Conversation.open(d.ports.imaps, d.caPem)
  try {
    const greeting = await imap.read()
    assert.match(greeting, /^\* OK /)
    imap.send('c1 CAPABILITY')
    const caps = (await imap.readUntil(/^c1 /)).join(' ')
    assert.match(caps, /AUTH=XOAUTH2/)
    assert.match(caps, /AUTH=OAUTHBEARER/)
    assert.match(caps, /SASL-IR/)
    assert.doesNotMatch(caps, /AUTH=PLAIN|AUTH=LOGIN/, 'no password mechanisms')
    imap.send('c2 LOGIN alice@example.test some-password')
    const login = await imap.readUntil(/^c2 /)
    assert.match(login.at(-1) ?? '', /^c2 (NO|BAD) /, 'IMAP LOGIN is refused')
  } finally {
    imap.close()
  }

  // The plain ports want STARTTLS/STLS before any token (no AUTH= before it, PRIVACYREQUIRED).
  const plain = await Conversation.open(d.ports.imap)
  try {
    const greeting = await plain.read()
    assert.match(greeting, /STARTTLS/)
    assert.match(greeting, /LOGINDISABLED/)
    assert.doesNotMatch(greeting, /AUTH=/)
    plain.send(`p1 AUTHENTICATE XOAUTH2 ${xoauth2(ALICE, BAD_TOKEN)}`)
    assert.match((await plain.readUntil(/^p1 /)).at(-1) ?? '', /^p1 NO \[PRIVACYREQUIRED\]/)
  } finally {
    plain.close()
  }
  const pop = await Conversation.open(d.ports.pop3)
  try {
    assert.match(await pop.read(), /^\+OK/)
    pop.send('CAPA')
    const capa = await pop.readUntil(/^\.$/)
    assert.ok(capa.includes('STLS'), capa.join(' | '))
    assert.ok(!capa.some((l) => /^SASL \S/.test(l)), `no SASL mechanism before STLS: ${capa.join(' | ')}`)
    pop.send(`AUTH XOAUTH2 ${xoauth2(ALICE, BAD_TOKEN)}`)
    assert.match(await pop.read(), /^-ERR/)
  } finally {
    pop.close()
  }
})

test('imapflow over implicit TLS (imaps): signs in with the access token and sees the seeded INBOX', async (t) => {
  const d = needDovecot(t)
  if (!d) return
  const imap = new ImapFlow({
    host: d.host,
    port: d.ports.imaps,
    secure: true,
    tls: { ca: d.caPem },
    auth: { user: ALICE, accessToken: token(ALICE) },
    logger: false,
  })
  await imap.connect()
  try {
    assert.equal(imap.authenticated !== false, true, 'authenticated')
    const box = await imap.mailboxOpen('INBOX', { readOnly: true })
    assert.equal(box.exists, SEEDED)
    const subjects: string[] = []
    for await (const msg of imap.fetch('1:*', { envelope: true })) subjects.push(msg.envelope?.subject ?? '')
    assert.deepEqual(subjects, ['Seed message 1', 'Seed message 2', 'Seed message 3'])
  } finally {
    await imap.logout()
  }
})

test('imapflow over IMAP + STARTTLS: same mailbox; a bad token is refused', async (t) => {
  const d = needDovecot(t)
  if (!d) return
  const imap = new ImapFlow({
    host: d.host,
    port: d.ports.imap,
    secure: false,
    doSTARTTLS: true,
    tls: { ca: d.caPem },
    auth: { user: ALICE, accessToken: token(ALICE) },
    logger: false,
  })
  await imap.connect()
  try {
    assert.equal(imap.secureConnection, true, 'upgraded to TLS')
    const box = await imap.mailboxOpen('INBOX', { readOnly: true })
    assert.equal(box.exists, SEEDED)
  } finally {
    await imap.logout()
  }

  const bad = new ImapFlow({
    host: d.host,
    port: d.ports.imap,
    secure: false,
    doSTARTTLS: true,
    tls: { ca: d.caPem },
    auth: { user: ALICE, accessToken: BAD_TOKEN },
    logger: false,
  })
  await assert.rejects(bad.connect(), (err: Error & { authenticationFailed?: boolean }) => {
    assert.equal(err.authenticationFailed, true, `authentication failure expected, got: ${err.message}`)
    return true
  })
  bad.close()
})

test('raw IMAP over TLS: AUTHENTICATE XOAUTH2 with SASL-IR; a bad token gets the JSON challenge, then NO', async (t) => {
  const d = needDovecot(t)
  if (!d) return
  const good = await Conversation.open(d.ports.imaps, d.caPem)
  try {
    await good.read()
    good.send(`a1 AUTHENTICATE XOAUTH2 ${xoauth2(ALICE, token(ALICE))}`)
    const answer = await good.readUntil(/^a1 /)
    assert.match(answer.at(-1) ?? '', /^a1 OK /)
    good.send('a2 STATUS INBOX (MESSAGES)')
    const status = await good.readUntil(/^a2 /)
    assert.ok(
      status.some((l) => l === `* STATUS INBOX (MESSAGES ${SEEDED})`),
      status.join(' | '),
    )
  } finally {
    good.close()
  }

  const bad = await Conversation.open(d.ports.imaps, d.caPem)
  try {
    await bad.read()
    bad.send(`b1 AUTHENTICATE XOAUTH2 ${xoauth2(ALICE, BAD_TOKEN)}`)
    const challenge = await bad.read()
    assert.match(challenge, /^\+ [A-Za-z0-9+/=]+$/)
    const json = JSON.parse(Buffer.from(challenge.slice(2), 'base64').toString('utf8')) as Record<string, unknown>
    assert.equal(json.status, '401')
    assert.equal(json.schemes, 'bearer')
    bad.send('')
    const final = await bad.readUntil(/^b1 /)
    assert.match(final.at(-1) ?? '', /^b1 NO \[AUTHENTICATIONFAILED\]/)

    // A valid token of another user is refused too (the SASL user must be the token's email).
    bad.send(`b2 AUTHENTICATE XOAUTH2 ${xoauth2(ALICE, token(BOB))}`)
    assert.match(await bad.read(), /^\+ /)
    bad.send('')
    assert.match((await bad.readUntil(/^b2 /)).at(-1) ?? '', /^b2 NO \[AUTHENTICATIONFAILED\]/)
  } finally {
    bad.close()
  }
})

test('raw POP3 over TLS (pop3s): AUTH XOAUTH2 then STAT shows the seeded count; OAUTHBEARER works too', async (t) => {
  const d = needDovecot(t)
  if (!d) return
  const pop = await Conversation.open(d.ports.pop3s, d.caPem)
  try {
    assert.match(await pop.read(), /^\+OK/)
    pop.send(`AUTH XOAUTH2 ${xoauth2(ALICE, token(ALICE))}`)
    assert.match(await pop.read(), /^\+OK/)
    pop.send('STAT')
    const stat = await pop.read()
    assert.match(stat, new RegExp(`^\\+OK ${SEEDED} \\d+$`))
    pop.send('QUIT')
    assert.match(await pop.read(), /^\+OK/)
  } finally {
    pop.close()
  }

  const bearer = await Conversation.open(d.ports.pop3s, d.caPem)
  try {
    await bearer.read()
    bearer.send('CAPA')
    const capa = await bearer.readUntil(/^\.$/)
    assert.ok(capa.includes('SASL XOAUTH2 OAUTHBEARER'), capa.join(' | '))
    bearer.send(`AUTH OAUTHBEARER ${oauthbearer(BOB, token(BOB), d.ports.pop3s)}`)
    assert.match(await bearer.read(), /^\+OK/)
    bearer.send('STAT')
    assert.match(await bearer.read(), /^\+OK \d+ \d+$/)
  } finally {
    bearer.close()
  }
})

test('SMTP submission: nodemailer with STARTTLS + XOAUTH2 sends; a bad token gets 535', async () => {
  const transport = nodemailer.createTransport({
    host: smtp.host,
    port: smtp.ports.submission,
    secure: false,
    requireTLS: true,
    tls: { ca: pki.caPem },
    auth: { type: 'OAuth2', user: ALICE, accessToken: token(ALICE) },
    logger: false,
  })
  try {
    const info = await transport.sendMail({
      from: ALICE,
      to: BOB,
      subject: 'Testbed hello',
      text: 'Sent through the testbed.',
    })
    assert.deepEqual(info.accepted, [BOB])
  } finally {
    transport.close()
  }
  const last = smtp.received.at(-1)
  assert.equal(last?.user, ALICE)
  assert.equal(last?.from, ALICE)
  assert.deepEqual(last?.to, [BOB])
  assert.ok((last?.size ?? 0) > 50)
  if (dovecot) assert.deepEqual(last?.delivered, [BOB], "delivered into bob's Maildir")

  const bad = nodemailer.createTransport({
    host: smtp.host,
    port: smtp.ports.submission,
    secure: false,
    requireTLS: true,
    tls: { ca: pki.caPem },
    auth: { type: 'OAuth2', user: ALICE, accessToken: BAD_TOKEN },
    logger: false,
  })
  try {
    await assert.rejects(
      bad.sendMail({ from: ALICE, to: BOB, text: 'x' }),
      (err: Error & { responseCode?: number }) => {
        assert.equal(err.responseCode, 535, err.message)
        return true
      },
    )
  } finally {
    bad.close()
  }
  assert.equal(smtp.received.length, 1, 'the refused message was not accepted')
})

test('SMTP raw: AUTH needs STARTTLS (538); XOAUTH2 challenge JSON; OAUTHBEARER; 454 when introspection fails', async () => {
  const ca = pki.caPem
  // Implicit TLS port: the XOAUTH2 error challenge is the Microsoft-shaped JSON, then 535.
  const s = await Conversation.open(smtp.ports.smtps, ca)
  try {
    assert.match(await s.read(), /^220 /)
    s.send('EHLO client.test')
    const ehlo = await s.readUntil(/^250 /)
    const auth = ehlo.find((l) => /^250[- ]AUTH /.test(l)) ?? ''
    assert.deepEqual(smtp.authMethods, ['XOAUTH2', 'OAUTHBEARER'])
    assert.equal(auth.slice(4), 'AUTH XOAUTH2 OAUTHBEARER', 'no PLAIN/LOGIN')
    s.send(`AUTH XOAUTH2 ${xoauth2(ALICE, BAD_TOKEN)}`)
    const challenge = await s.read()
    assert.match(challenge, /^334 /)
    assert.deepEqual(JSON.parse(Buffer.from(challenge.slice(4), 'base64').toString('utf8')), XOAUTH2_SMTP_CHALLENGE)
    s.send('')
    assert.match(await s.read(), /^535 /)
    // OAUTHBEARER (RFC 7628): the error challenge, the client's %x01, then 535.
    s.send('AUTH OAUTHBEARER')
    assert.match(await s.read(), /^334 ?$/)
    s.send(oauthbearer(ALICE, BAD_TOKEN, smtp.ports.smtps))
    const bearerChallenge = await s.read()
    assert.match(bearerChallenge, /^334 /)
    assert.equal(JSON.parse(Buffer.from(bearerChallenge.slice(4), 'base64').toString('utf8')).status, 'invalid_token')
    s.send('AQ==')
    assert.match(await s.read(), /^535 /)
    s.send(`AUTH OAUTHBEARER ${oauthbearer(ALICE, token(ALICE), smtp.ports.smtps)}`)
    assert.match(await s.read(), /^235 /)
    s.send(`MAIL FROM:<${ALICE}>`)
    assert.match(await s.read(), /^250 /)
  } finally {
    s.close()
  }

  // Submission port before STARTTLS: no AUTH.
  const c = await Conversation.open(smtp.ports.submission)
  try {
    assert.match(await c.read(), /^220 /)
    c.send('EHLO client.test')
    const ehlo = await c.readUntil(/^250 /)
    assert.ok(
      ehlo.some((l) => /^250[- ]STARTTLS$/.test(l)),
      'STARTTLS offered',
    )
    c.send(`AUTH XOAUTH2 ${xoauth2(ALICE, BAD_TOKEN)}`)
    assert.match(await c.read(), /^538 /)
  } finally {
    c.close()
  }

  // The authorization server can't be reached: a temporary failure (454), not a bad token.
  const down = await startSmtp({
    introspect: () => Promise.reject(new Error('connect ECONNREFUSED')),
    tls: pki,
  })
  try {
    const tmp = await Conversation.open(down.ports.smtps, ca)
    try {
      await tmp.read()
      tmp.send('EHLO client.test')
      await tmp.readUntil(/^250 /)
      tmp.send(`AUTH XOAUTH2 ${xoauth2(ALICE, token(ALICE))}`)
      assert.match(await tmp.read(), /^454 /)
    } finally {
      tmp.close()
    }
  } finally {
    await down.stop()
  }
})

test("the message sent over SMTP arrives in bob's INBOX over IMAP", async (t) => {
  const d = needDovecot(t)
  if (!d) return
  const maildir = d.mailDir(BOB)
  const files = [...(await readdir(join(maildir, 'new'))), ...(await readdir(join(maildir, 'cur')))]
  assert.equal(files.length, SEEDED + 1, "the delivered file is in bob's Maildir")
  const imap = new ImapFlow({
    host: d.host,
    port: d.ports.imaps,
    secure: true,
    tls: { ca: d.caPem },
    auth: { user: BOB, accessToken: token(BOB) },
    logger: false,
  })
  await imap.connect()
  try {
    const box = await imap.mailboxOpen('INBOX', { readOnly: true })
    assert.equal(box.exists, SEEDED + 1)
    const msg = await imap.fetchOne(String(box.exists), { envelope: true })
    assert.equal(msg && msg.envelope?.subject, 'Testbed hello')
  } finally {
    await imap.logout()
  }
})

test("python3 imaplib: IMAP4_SSL with the test CA, authenticate('XOAUTH2') and SELECT", async (t) => {
  const d = needDovecot(t)
  if (!d) return
  if (!needTool(t, havePython, 'python3 is not installed (apt-get install python3)')) return
  const script = [
    'import imaplib, os, ssl',
    "ctx = ssl.create_default_context(cafile=os.environ['MK_CA'])",
    "m = imaplib.IMAP4_SSL('127.0.0.1', int(os.environ['MK_PORT']), ssl_context=ctx)",
    "blob = ('user=%s\\x01auth=Bearer %s\\x01\\x01' % (os.environ['MK_USER'], os.environ['MK_TOKEN'])).encode()",
    "typ, _ = m.authenticate('XOAUTH2', lambda _challenge: blob)",
    "typ2, data = m.select('INBOX', readonly=True)",
    'print(typ, typ2, data[0].decode())',
    'm.logout()',
  ].join('\n')
  const r = await run('python3', ['-c', script], {
    MK_CA: d.caFile,
    MK_PORT: String(d.ports.imaps),
    MK_USER: ALICE,
    MK_TOKEN: token(ALICE),
  })
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), `OK OK ${SEEDED}`)
})

test('curl --oauth2-bearer (token from a 0600 -K file) fetches imaps://127.0.0.1:<port>/INBOX', async (t) => {
  const d = needDovecot(t)
  if (!d) return
  if (!needTool(t, haveCurl, 'curl is not installed (apt-get install curl)')) return
  const dir = await mkdtemp(join(tmpdir(), 'mailkey-curl-'))
  try {
    const config = join(dir, 'curl.conf')
    await writeFile(config, `user = "${ALICE}:"\noauth2-bearer = "${token(ALICE)}"\n`, { mode: 0o600 })
    const base = `imaps://127.0.0.1:${d.ports.imaps}/INBOX`
    const list = await run('curl', ['-sS', '--cacert', d.caFile, '-K', config, base], {})
    assert.equal(list.code, 0, list.stderr)
    const one = await run('curl', ['-sS', '--cacert', d.caFile, '-K', config, `${base};UID=1`], {})
    assert.equal(one.code, 0, one.stderr)
    assert.match(one.stdout, /Subject: Seed message 1/)

    await writeFile(config, `user = "${ALICE}:"\noauth2-bearer = "${BAD_TOKEN}"\n`, { mode: 0o600 })
    const bad = await run('curl', ['-sS', '--cacert', d.caFile, '-K', config, base], {})
    assert.equal(bad.code, 67, `curl: login denied (exit 67), got ${bad.code}: ${bad.stderr}`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

function run(
  cmd: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c
    })
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}
