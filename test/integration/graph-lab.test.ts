// The Graph test lab (issue 16): the lab OAuth server with Microsoft Graph as a second resource
// (Microsoft's one-resource-per-token rules, cumulative consent, refresh tokens not tied to a
// resource), the Graph sendMail emulator over real HTTPS with the test CA, and the SMTP testbed's
// 535 5.7.139. Real servers on loopback, real HTTP. Tokens never appear in assertion messages.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, mkdtemp, rm } from 'node:fs/promises'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { makeTestCA, type TestCA } from '../harness/certs.js'
import {
  GRAPH_ERRORS,
  GRAPH_REQUEST_LIMIT,
  GRAPH_WWW_AUTHENTICATE,
  startGraphServer,
  type GraphServer,
} from '../harness/graph-server.js'
import { LineClient } from '../harness/line-client.js'
import {
  DEVICE_CODE_GRANT,
  GRAPH_RESOURCE,
  GRAPH_SCOPES,
  GRAPH_USER_READ_SCOPE,
  LAB_PUBLIC_CLIENT_ID,
  MAIL_RESOURCE,
  MAIL_SCOPES,
  startOAuthServer,
  type LabServer,
} from '../harness/oauth-server.js'
import { SMTP_AUTH_DISABLED_REPLY, startSmtp, type Smtp } from '../harness/smtp-server.js'

const GRAPH_SEND = GRAPH_SCOPES[0]
const MAIL_SCOPE = ['offline_access', 'openid', 'email', ...MAIL_SCOPES].join(' ')
const BOTH_SCOPE = `${MAIL_SCOPE} ${GRAPH_SEND}`
const REDIRECT = 'http://127.0.0.1/callback'
const SHARED_MAILBOX = 'shared@example.test'

let lab: LabServer
let graph: GraphServer
let smtp: Smtp
let certDir: string
let pki: TestCA

before(async () => {
  lab = await startOAuthServer()
  certDir = await mkdtemp(join(tmpdir(), 'mailkey-graphlab-'))
  pki = await makeTestCA(certDir)
  graph = await startGraphServer({
    introspect: (t) => lab.introspectGraph(t),
    tls: pki,
    sendAs: (user, from) => user === 'alice@example.test' && from === SHARED_MAILBOX,
  })
  smtp = await startSmtp({
    introspect: (t, service) => lab.introspect(t, { service }),
    tls: pki,
    authDisabledFor: (user) => user === 'carol@example.test',
  })
})

after(async () => {
  await smtp?.stop()
  await graph?.close()
  await lab?.close()
  if (certDir) await rm(certDir, { recursive: true, force: true })
})

type Json = Record<string, unknown>

/** POSTs a form to the lab; the JSON answer and its status. */
async function form(path: string, fields: Record<string, string>): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${lab.issuer}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: LAB_PUBLIC_CLIENT_ID, ...fields }),
  })
  return { status: res.status, body: (await res.json()) as Json }
}

function tokens(answer: { status: number; body: Json }, what: string): { at: string; rt: string; scope: string } {
  assert.equal(answer.status, 200, `${what}: HTTP 200 (got ${answer.status} ${String(answer.body.error)})`)
  const { access_token: at, refresh_token: rt, scope } = answer.body
  assert.ok(typeof at === 'string' && typeof rt === 'string', `${what}: an access and a refresh token`)
  return { at, rt, scope: String(scope ?? '') }
}

/** Authorization code + PKCE through the lab's pages; the code redemption's answer. */
async function codeFlow(scope: string, login: string, redeem: Record<string, string> = {}) {
  const verifier = randomBytes(32).toString('base64url')
  const url = new URL(`${lab.issuer}/auth`)
  url.search = new URLSearchParams({
    client_id: LAB_PUBLIC_CLIENT_ID,
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope,
    state: 'st',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString()
  const location = new URL(await lab.completeAuthorization(url.href, { login }))
  const code = location.searchParams.get('code')
  assert.ok(code, `a code (got ${location.searchParams.get('error')})`)
  const fields = { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }
  return form('/token', { ...fields, ...redeem })
}

/** A device round for `login`; the device_code redemption's answer. */
async function deviceFlow(scope: string, login: string) {
  const start = await form('/device/auth', { scope })
  assert.equal(start.status, 200, `device authorization: HTTP 200 (got ${String(start.body.error)})`)
  await lab.approveDevice(String(start.body.user_code), { login })
  return form('/token', { grant_type: DEVICE_CODE_GRANT, device_code: String(start.body.device_code) })
}

function refresh(rt: string, scope?: string) {
  return form('/token', { grant_type: 'refresh_token', refresh_token: rt, ...(scope ? { scope } : {}) })
}

async function assertMailToken(at: string, what: string): Promise<void> {
  const mail = await lab.introspect(at)
  assert.equal(mail.active, true, `${what}: mail-rs sees an active token`)
  assert.deepEqual([mail.aud].flat(), [MAIL_RESOURCE], `${what}: audience ${MAIL_RESOURCE}`)
  assert.equal((await lab.introspectGraph(at)).active, false, `${what}: graph-rs refuses a mail token`)
}

async function assertGraphToken(at: string, what: string): Promise<void> {
  const info = await lab.introspectGraph(at)
  assert.equal(info.active, true, `${what}: graph-rs sees an active token`)
  assert.deepEqual([info.aud].flat(), [GRAPH_RESOURCE], `${what}: audience ${GRAPH_RESOURCE}`)
  assert.equal(info.scope, GRAPH_SEND, `${what}: scope Mail.Send only`)
  assert.equal((await lab.introspect(at)).active, false, `${what}: mail-rs refuses a Graph token`)
}

function assertAadError(answer: { status: number; body: Json }, error: string, code: number, what: string): void {
  assert.equal(answer.status, 400, `${what}: HTTP 400`)
  assert.equal(answer.body.error, error, `${what}: ${error}`)
  assert.match(String(answer.body.error_description), new RegExp(`^AADSTS${code}: `), `${what}: AADSTS${code}`)
  assert.deepEqual(answer.body.error_codes, [code], `${what}: error_codes`)
}

test('one sign-in for mail and Graph: a mail token first, a Graph token by refresh, never both at once', async () => {
  const first = tokens(await codeFlow(BOTH_SCOPE, 'alice@example.test'), 'code redemption')
  assert.deepEqual(first.scope.split(' ').sort(), [...MAIL_SCOPES].sort(), 'the code gives the first resource')
  await assertMailToken(first.at, 'code redemption')

  const both = await refresh(first.rt, `${GRAPH_SEND} ${MAIL_SCOPES[2]} offline_access`)
  assertAadError(both, 'invalid_scope', 28000, 'refresh for two resources')
  assert.ok(await lab.refreshTokenAlive(first.rt), 'the refused refresh spent nothing')
  const redeemBoth = await codeFlow(BOTH_SCOPE, 'alice@example.test', { scope: BOTH_SCOPE })
  assertAadError(redeemBoth, 'invalid_scope', 28000, 'code redemption for two resources')

  const g = tokens(await refresh(first.rt, `${GRAPH_SEND} offline_access`), 'refresh for Graph')
  assert.equal(g.scope, GRAPH_SEND, 'the answer names the Graph scope')
  await assertGraphToken(g.at, 'refresh for Graph')
  const m = tokens(await refresh(g.rt, MAIL_SCOPES.join(' ')), 'refresh for mail')
  await assertMailToken(m.at, 'refresh for mail')
  const plain = tokens(await refresh(m.rt), 'refresh without scope')
  await assertMailToken(plain.at, 'refresh without scope: the resource first issued for')

  const graphFirst = tokens(await codeFlow(BOTH_SCOPE, 'alice@example.test', { scope: GRAPH_SEND }), 'redeem for Graph')
  await assertGraphToken(graphFirst.at, 'code redeemed with the Graph scope')
  const graphNamedFirst = tokens(await codeFlow(`${GRAPH_SEND} ${MAIL_SCOPE}`, 'alice@example.test'), 'Graph first')
  await assertGraphToken(graphNamedFirst.at, 'code redeemed without scope, Graph named first')

  // Rotation and reuse detection as before: a spent token revokes the grant, the newest dies with it.
  const reuse = await refresh(first.rt, `${GRAPH_SEND} offline_access`)
  assert.equal(reuse.status, 400)
  assert.equal(reuse.body.error, 'invalid_grant', 'a spent refresh token is refused')
  assert.equal(await lab.refreshTokenAlive(plain.rt), false, 'reuse revoked the whole grant')
  assert.equal((await refresh(plain.rt, `${GRAPH_SEND}`)).body.error, 'invalid_grant')
})

test('device: two resources are refused; a Graph round adds consent to the same grant', async () => {
  const two = await form('/device/auth', { scope: BOTH_SCOPE })
  assertAadError(two, 'invalid_scope', 28000, 'device authorization for two resources')

  const mail = tokens(await deviceFlow(MAIL_SCOPE, 'bob@example.test'), 'device round for mail')
  await assertMailToken(mail.at, 'device round for mail')
  const notYet = await refresh(mail.rt, GRAPH_SEND)
  assertAadError(notYet, 'invalid_grant', 65001, 'Graph before consent')
  assert.equal(notYet.body.suberror, 'consent_required')
  assert.ok(await lab.refreshTokenAlive(mail.rt), 'the refused refresh spent nothing')

  const g = tokens(await deviceFlow(`${GRAPH_SEND} offline_access`, 'bob@example.test'), 'device round for Graph')
  await assertGraphToken(g.at, 'device round for Graph')
  // Consent is per user and app: the Graph round's refresh token now gets mail tokens, and the
  // mail round's gets Graph tokens, in one grant.
  const fromGraphRt = tokens(await refresh(g.rt, MAIL_SCOPES.join(' ')), 'Graph round refresh token, for mail')
  await assertMailToken(fromGraphRt.at, 'Graph round refresh token, for mail')
  const fromMailRt = tokens(await refresh(mail.rt, GRAPH_SEND), 'mail round refresh token, for Graph')
  await assertGraphToken(fromMailRt.at, 'mail round refresh token, for Graph')
  const grants = new Set(lab.refreshLog.slice(-2).map((e) => e.grantId))
  assert.equal(grants.size, 1, 'both refresh tokens belong to one grant')

  const newest = tokens(await refresh(fromMailRt.rt, MAIL_SCOPES[0]), 'newest refresh token, for mail')
  await assertMailToken(newest.at, 'newest refresh token, for mail')
  const newest2 = tokens(await refresh(newest.rt, GRAPH_SEND), 'newest refresh token, for Graph')
  await assertGraphToken(newest2.at, 'newest refresh token, for Graph')
  assert.equal(await lab.refreshTokenAlive(newest.rt), false, 'rotation spent the presented token')
})

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One HTTPS request to the emulator, trusting the test CA. Rejects when the connection drops. */
function graphRequest(
  path: string,
  opts: { method?: string; token?: string; type?: string; body?: string | Buffer } = {},
): Promise<Answer> {
  const url = new URL(`${graph.url}${path}`)
  const headers: Record<string, string> = {}
  if (opts.token) headers.authorization = `Bearer ${opts.token}`
  if (opts.type) headers['content-type'] = opts.type
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: opts.method ?? 'POST', headers, ca: pki.caPem, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
      )
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

/**
 * A chunked upload (no Content-Length) of `size` bytes of base64 text, written slowly enough that
 * the emulator's early answer arrives first; whether all of it was written.
 */
function graphChunked(token: string, size: number): Promise<{ answer: Answer; sentAll: boolean }> {
  const url = new URL(`${graph.url}/me/sendMail`)
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }
  return new Promise((resolve, reject) => {
    let sent = 0
    let answered = false
    const req = httpsRequest(url, { method: 'POST', headers, ca: pki.caPem, agent: false }, (res) => {
      answered = true
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const answer = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }
        resolve({ answer, sentAll: sent >= size })
        req.destroy()
      })
    })
    req.on('error', (err) => {
      if (!answered) reject(err)
    })
    const piece = Buffer.alloc(64 * 1024, 'QUFB')
    const pump = (): void => {
      while (!answered && sent < size) {
        sent += piece.length
        if (!req.write(piece)) {
          req.once('drain', pump)
          return
        }
      }
      if (!answered) req.end()
    }
    pump()
  })
}

function sendMime(token: string, mime: Buffer | string, path = '/me/sendMail'): Promise<Answer> {
  return graphRequest(path, { token, type: 'text/plain', body: Buffer.from(mime).toString('base64') })
}

function assertGraphError(answer: Answer, which: keyof typeof GRAPH_ERRORS, what: string): void {
  const { status, code, message } = GRAPH_ERRORS[which]
  assert.equal(answer.status, status, `${what}: HTTP ${status}`)
  const body = JSON.parse(answer.body) as { error: { code: string; message: string; innerError: Json } }
  assert.equal(body.error.code, code, `${what}: ${code}`)
  assert.equal(body.error.message, message, `${what}: the message`)
  assert.deepEqual(Object.keys(body.error.innerError).sort(), ['client-request-id', 'date', 'request-id'])
}

function mimeMessage(headers: string[], body = 'Hello.\r\n'): Buffer {
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body}`, 'utf8')
}

/** Graph (Mail.Send), Graph without Mail.Send, and mail tokens of alice. */
async function aliceTokens(): Promise<{ send: string; userRead: string; mail: string }> {
  const send = tokens(await deviceFlow(`${GRAPH_SEND} offline_access`, 'alice@example.test'), 'Graph').at
  const userRead = tokens(
    await deviceFlow(`${GRAPH_USER_READ_SCOPE} offline_access`, 'alice@example.test'),
    'User.Read',
  )
  const mail = tokens(await deviceFlow(MAIL_SCOPE, 'alice@example.test'), 'mail').at
  return { send, userRead: userRead.at, mail }
}

test('Graph emulator: MIME and JSON sends are recorded exactly; authentication and permission errors', async () => {
  const t = await aliceTokens()
  const before = graph.received.length
  const mime = mimeMessage(
    [
      'From: "Alice, A." <alice@example.test>',
      'To: Bob (the builder) <bob@example.test>, team: carol@example.test, "Dan Q" <dan@example.test>;',
      'Cc:',
      ' erin@example.test, "Jörg" <jörg@example.test>',
      'Bcc: hidden@example.test',
      'Subject: =?UTF-8?B?w6nDqcOp?= Grüße 8-bit',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"',
    ],
    '--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhé\r\n--b\r\nContent-Type: application/octet-stream\r\n' +
      'Content-Transfer-Encoding: base64\r\n\r\nAAEC/w==\r\n--b--\r\n',
  )
  const ok = await sendMime(t.send, mime)
  assert.equal(ok.status, 202, `MIME send: 202 (got ${ok.status} ${ok.body})`)
  assert.equal(ok.body, '', 'an empty 202 body')
  const got = graph.received[before]
  assert.ok(got, 'the message was recorded')
  assert.ok(got.mime?.equals(mime), 'the exact MIME bytes arrived')
  assert.equal(got.from, 'alice@example.test')
  assert.deepEqual(got.to, ['bob@example.test', 'carol@example.test', 'dan@example.test'])
  assert.deepEqual([got.cc, got.bcc], [['erin@example.test', 'jörg@example.test'], ['hidden@example.test']])
  assert.equal(got.user, 'alice@example.test')
  assert.equal(got.savedToSentItems, true)
  assert.equal(got.tokenHash, createHash('sha256').update(t.send).digest('hex'))

  const byUpn = await sendMime(t.send, mime, '/users/ALICE%40example.test/sendMail')
  assert.equal(byUpn.status, 202, '/users/{upn}/sendMail for the signed-in user')
  assertGraphError(await sendMime(t.send, mime, '/users/bob@example.test/sendMail'), 'accessDenied', 'another user')

  const json = { message: { subject: 'x', toRecipients: [{ emailAddress: { address: 'bob@example.test' } }] } }
  const jsonSend = await graphRequest('/me/sendMail', {
    token: t.send,
    type: 'application/json',
    body: JSON.stringify({ ...json, saveToSentItems: false }),
  })
  assert.equal(jsonSend.status, 202, 'JSON send: 202')
  const last = graph.received[graph.received.length - 1]
  assert.equal(last?.mime, undefined)
  assert.deepEqual([last?.to, last?.savedToSentItems], [['bob@example.test'], false])

  const count = graph.received.length
  for (const body of ['', '{}']) {
    const probe = await graphRequest('/me/sendMail', { token: t.send, type: 'application/json', body })
    assertGraphError(probe, 'emptyPayload', `JSON ${JSON.stringify(body)}`)
  }
  const bad64 = await graphRequest('/me/sendMail', { token: t.send, type: 'text/plain', body: 'not base64!' })
  assertGraphError(bad64, 'invalidBase64', 'invalid base64')
  const noRcpt = await sendMime(t.send, mimeMessage(['From: alice@example.test', 'To: undisclosed-recipients:;']))
  assertGraphError(noRcpt, 'noRecipients', 'no recipients')
  const other = await sendMime(t.send, mimeMessage(['From: mallory@example.test', 'To: bob@example.test']))
  assertGraphError(other, 'sendAsDenied', 'From another mailbox')
  assert.equal(graph.received.length, count, 'nothing refused was recorded')
  const shared = await sendMime(t.send, mimeMessage([`From: <${SHARED_MAILBOX}>`, 'To: bob@example.test']))
  assert.equal(shared.status, 202, 'From a mailbox sendAs allows')

  const none = await graphRequest('/me/sendMail', { type: 'text/plain', body: mime.toString('base64') })
  assertGraphError(none, 'tokenEmpty', 'no token')
  assert.equal(none.headers['www-authenticate'], GRAPH_WWW_AUTHENTICATE, 'the 401 challenge')
  for (const [token, what] of [
    [t.mail, 'a mail token'],
    ['not-a-token', 'a made-up token'],
  ] as const) {
    const refused = await sendMime(token, mime)
    assertGraphError(refused, 'tokenInvalid', what)
    assert.equal(refused.headers['www-authenticate'], GRAPH_WWW_AUTHENTICATE, `${what}: the 401 challenge`)
  }
  assertGraphError(await sendMime(t.userRead, mime), 'accessDenied', 'a Graph token without Mail.Send')
  assertGraphError(await graphRequest('/me/sendMail', { method: 'GET', token: t.send }), 'methodNotAllowed', 'GET')
  assertGraphError(await graphRequest('/me/messages', { token: t.send }), 'notFound', 'another path')
  const log = JSON.stringify(graph.requests)
  assert.ok(!log.includes(t.send) && !log.includes('Hello'), 'the request log holds no token or body')
})

test('Graph emulator: the 4 MB request limit, throttling and scripted faults', async () => {
  const token = tokens(await deviceFlow(`${GRAPH_SEND} offline_access`, 'alice@example.test'), 'Graph').at
  const head = 'From: alice@example.test\r\nTo: bob@example.test\r\nSubject: big\r\n\r\n'
  // base64 of 3 bytes is 4 characters: a message of 3/4 of the limit fills the request exactly.
  const atLimit = Buffer.alloc((GRAPH_REQUEST_LIMIT / 4) * 3, 'x')
  atLimit.write(head)
  const full = await sendMime(token, atLimit)
  assert.equal(full.status, 202, 'a request of exactly 4 MB is accepted')
  const count = graph.received.length
  const over = Buffer.concat([atLimit, Buffer.from('xxx')])
  assertGraphError(await sendMime(token, over), 'tooLarge', '4 MB + 4 bytes')
  assert.equal(graph.received.length, count, 'the oversized message was not recorded')

  const chunked = await graphChunked(token, 16 * GRAPH_REQUEST_LIMIT)
  assertGraphError(chunked.answer, 'tooLarge', 'a chunked body over 4 MB')
  assert.ok(!chunked.sentAll, 'the emulator answered before the client could send it all')

  const small = mimeMessage(['From: alice@example.test', 'To: bob@example.test'])
  graph.script({ status: 429, headers: { 'Retry-After': '3' }, body: { error: { code: 'TooManyRequests' } } })
  const throttled = await sendMime(token, small)
  assert.equal(throttled.status, 429)
  assert.equal(throttled.headers['retry-after'], '3', 'Retry-After')
  graph.script({ status: 503, times: 2, delayMs: 50 })
  assert.deepEqual([(await sendMime(token, small)).status, (await sendMime(token, small)).status], [503, 503])
  assert.equal(graph.received.length, count, 'faulted requests record nothing')
  graph.script({ destroySocket: true })
  await assert.rejects(sendMime(token, small), 'a dropped connection before the answer')
  assert.equal(graph.received.length, count, 'nothing recorded for a connection dropped first')
  graph.script({ afterAccept: true })
  await assert.rejects(sendMime(token, small), 'the answer is lost')
  assert.equal(graph.received.length, count + 1, 'the message was accepted before the drop')
  graph.script({ status: 500, times: 5 })
  graph.clearFaults()
  assert.equal((await sendMime(token, small)).status, 202, 'cleared faults')

  const statuses = graph.requests.slice(-8).map((r) => r.status)
  assert.deepEqual(statuses, [413, 413, 429, 503, 503, 0, 0, 202], 'the request log')
  assert.ok(graph.requests.every((r) => r.path.startsWith('/v1.0/')))
})

test('SMTP testbed: a valid token for a mailbox with SMTP AUTH disabled gets 535 5.7.139', async () => {
  const carol = tokens(await deviceFlow(MAIL_SCOPE, 'carol@example.test'), 'carol').at
  const alice = tokens(await deviceFlow(MAIL_SCOPE, 'alice@example.test'), 'alice').at
  const auth = async (user: string, token: string): Promise<string> => {
    const c = await LineClient.open(smtp.ports.submission)
    try {
      await c.until(/^220 .*\r\n/m)
      c.send('EHLO client.test')
      await c.until(/^250 .*\r\n/m)
      c.send('STARTTLS')
      await c.until(/^220 Ready to start TLS\r\n/m)
      await c.starttls()
      c.send('EHLO client.test')
      await c.until(/^250 .*\r\n/m)
      c.send(`AUTH XOAUTH2 ${Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString('base64')}`)
      return await c.until(/^(?:235|535|334) .*\r\n/m)
    } finally {
      c.close()
    }
  }
  const before = smtp.counts.authDisabled
  assert.equal(await auth('carol@example.test', carol), `535 ${SMTP_AUTH_DISABLED_REPLY}\r\n`)
  assert.equal(smtp.counts.authDisabled, before + 1, 'the refusal was counted')
  assert.match(await auth('alice@example.test', alice), /^235 /, 'other mailboxes still authenticate')
  assert.equal(smtp.counts.authDisabled, before + 1)
})

test('fixtures: every Graph error body the emulator sends is in test/fixtures/graph', async () => {
  const dir = join(import.meta.dirname, '..', 'fixtures', 'graph')
  for (const [name, { status, code, message }] of Object.entries(GRAPH_ERRORS)) {
    const fixture = JSON.parse(await readFile(join(dir, `${name}.json`), 'utf8')) as Json
    assert.equal(fixture.status, status, `${name}.json: status`)
    const body = fixture.body as { error: { code: string; message: string; innerError: Json } }
    assert.deepEqual([body.error.code, body.error.message], [code, message], `${name}.json: code and message`)
    assert.ok(body.error.innerError['request-id'], `${name}.json: innerError`)
  }
})
