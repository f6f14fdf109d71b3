// Issue 16, the pure parts of Graph submission: header recipients against the SMTP envelope
// (protocols/smtp/mime-recipients.ts), Graph's answers (upstream/graph.ts), and sendmail input
// (cli/commands/send.ts, proxy/send-message.ts).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  addressList,
  graphMessageFor,
  headerFields,
  headerRecipients,
  withoutFields,
} from '../../src/protocols/smtp/mime-recipients.js'
import {
  GRAPH_MAX_MIME_BYTES,
  GRAPH_MAX_REQUEST_BYTES,
  graphError,
  graphOutcome,
  sendCheckRequest,
  sendMailRequest,
} from '../../src/upstream/graph.js'
import { crlf, parseSendArgs } from '../../src/cli/commands/send.js'
import { parseRetryAfter } from '../../src/core/wait.js'
import { dotStuffed } from '../../src/upstream/dialogues.js'
import { UsageError } from '../../src/errors.js'

const NOW = Date.parse('2026-12-06T10:00:00Z')

describe('addressList (RFC 5322 §3.4)', () => {
  const cases: [string, string[] | undefined][] = [
    ['a@b.example', ['a@b.example']],
    [' a@b.example , c@d.example ', ['a@b.example', 'c@d.example']],
    ['"Doe, John" <j@x.example>, k@y.example', ['j@x.example', 'k@y.example']],
    ['undisclosed-recipients:;', []],
    ['team: a@x.example, b@y.example; c@z.example', ['a@x.example', 'b@y.example', 'c@z.example']],
    ['"john doe"@x.example', ['"john doe"@x.example']],
    ['(a comment, with a comma) Bob <bob@x.example> (more (nested))', ['bob@x.example']],
    ['<@relay.example,@r2.example:bob@x.example>', ['bob@x.example']],
    ['=?utf-8?q?J=C3=BCrgen?= <j@bücher.example>', ['j@bücher.example']],
    ['"quote \\" inside" <q@x.example>', ['q@x.example']],
    ['x <a@b.example', undefined],
    ['"unterminated <a@b.example>', undefined],
    ['(unclosed comment a@b.example', undefined],
    // a word that is no address: another reader may resolve it (an alias, an encoded word)
    ['a@x.example, victim', undefined],
    ['<boss>', undefined],
    ['=?utf-8?B?dmljdGltQGV2aWwuY29t?=', undefined],
  ]
  for (const [input, want] of cases) it(JSON.stringify(input), () => assert.deepEqual(addressList(input), want))
})

describe('graphMessageFor: the envelope against To/Cc/Bcc', () => {
  const msg = Buffer.from(
    'From: Alice <alice@example.test>\r\nTo: bob@example.test,\r\n Carol <carol@example.test>\r\nCc: dan@example.test\r\nSubject: hi\r\n\r\nTo: not-a-header@example.test\r\n',
  )
  it('reads folded To and Cc, and nothing from the body', () => {
    assert.deepEqual(headerRecipients(msg), ['bob@example.test', 'carol@example.test', 'dan@example.test'])
  })
  it('leaves the message byte for byte when the envelope is the header recipients', () => {
    const v = graphMessageFor(msg, ['BOB@example.test', 'carol@example.test', 'dan@example.test'])
    assert.equal(v.kind, 'ok')
    assert.ok(v.kind === 'ok' && v.mime === msg)
  })
  it('puts envelope-only recipients (Bcc) in one Bcc field before the untouched message', () => {
    const v = graphMessageFor(msg, [
      'bob@example.test',
      'carol@example.test',
      'dan@example.test',
      'eve@example.test',
      'fay@example.test',
    ])
    assert.equal(v.kind, 'ok')
    if (v.kind !== 'ok') return
    assert.deepEqual(v.addedBcc, ['eve@example.test', 'fay@example.test'])
    const head = Buffer.from('Bcc: eve@example.test,\r\n fay@example.test\r\n')
    assert.deepEqual(v.mime.subarray(0, head.length), head)
    assert.deepEqual(v.mime.subarray(head.length), msg)
    assert.deepEqual(
      headerRecipients(v.mime)?.sort(),
      ['bob', 'carol', 'dan', 'eve', 'fay'].map((n) => `${n}@example.test`),
    )
  })
  it('refuses header recipients the client did not ask for (Graph would send to them)', () => {
    const v = graphMessageFor(msg, ['bob@example.test'])
    assert.deepEqual(v, { kind: 'extra-header-recipients', addresses: ['carol@example.test', 'dan@example.test'] })
  })
  it('a message without To: every recipient goes in Bcc', () => {
    const v = graphMessageFor(Buffer.from('Subject: x\n\nbody\n'), ['bob@example.test'])
    assert.ok(v.kind === 'ok' && v.mime.toString().startsWith('Bcc: bob@example.test\nSubject: x\n'))
  })
  it('a header another reader could read differently is refused: bare CR, a line that is no field, "To :"', () => {
    assert.equal(
      headerFields(Buffer.from('Subject: hi\rBcc: victim@evil.example\r\nTo: a@b.example\r\n\r\nx')),
      undefined,
    )
    assert.equal(headerFields(Buffer.from('Subject: hi\r\nnot a field\r\nTo: a@b.example\r\n\r\nx')), undefined)
    assert.equal(headerFields(Buffer.from('To : a@b.example\r\n\r\nx')), undefined)
    assert.equal(graphMessageFor(Buffer.from('To : a@b.example\r\n\r\nx'), ['a@b.example']).kind, 'unreadable-header')
  })
  it('an envelope recipient that is no plain address never reaches the Bcc field (no header injection)', () => {
    assert.deepEqual(graphMessageFor(msg, ['bob@example.test', 'x@y.example\r\nTo: victim@evil.example']), {
      kind: 'bad-recipient',
      address: 'x@y.example\r\nTo: victim@evil.example',
    })
    assert.equal(graphMessageFor(msg, ['Postmaster']).kind, 'bad-recipient')
  })
  it("the added Bcc field takes the line end of the message's first line", () => {
    const m = Buffer.from('To: a@b.example\nSubject: s\n\r\nbody\r\n'.replace('\n\r\n', '\n\n'))
    const v = graphMessageFor(m, ['a@b.example', 'c@d.example'])
    assert.ok(v.kind === 'ok' && v.mime.toString().startsWith('Bcc: c@d.example\nTo:'))
  })
  it('an unreadable To field is refused, not guessed', () => {
    assert.equal(graphMessageFor(Buffer.from('To: x <a@b.example\r\n\r\nb'), ['a@b.example']).kind, 'unreadable-header')
  })
})

describe("Graph's answers (learn.microsoft.com/graph/errors, user-sendmail, throttling)", () => {
  const ans = (status: number, body = '', headers: Record<string, string> = {}) => ({ status, body, headers })
  const err = (code: string, message: string) => JSON.stringify({ error: { code, message, innerError: {} } })
  it("202 is accepted; 200 or 204 is not Graph's answer (a wrong URL, something in between)", () => {
    assert.deepEqual(graphOutcome(ans(202), NOW), { kind: 'accepted' })
    assert.equal(graphOutcome(ans(200, '<html>sign in</html>'), NOW).kind, 'unexpected')
    assert.equal(graphOutcome(ans(204), NOW).kind, 'unexpected')
  })
  it('401 is a refused token', () =>
    assert.equal(graphOutcome(ans(401, err('InvalidAuthenticationToken', 'x')), NOW).kind, 'token-refused'))
  it('403 ErrorSendAsDenied is send-as, other 403s are a missing permission', () => {
    assert.equal(graphOutcome(ans(403, err('ErrorSendAsDenied', 'no')), NOW).kind, 'send-as-denied')
    assert.equal(graphOutcome(ans(403, err('ErrorAccessDenied', 'Access is denied.')), NOW).kind, 'forbidden')
  })
  it('413 is too big', () => assert.equal(graphOutcome(ans(413), NOW).kind, 'too-big'))
  it('429 with Retry-After is throttled, with the wait', () => {
    assert.deepEqual(graphOutcome(ans(429, err('TooManyRequests', 'slow down'), { 'retry-after': '7' }), NOW), {
      kind: 'throttled',
      status: 429,
      retryAfterSec: 7,
      message: 'slow down',
    })
  })
  it('503 with Retry-After is throttled; 500, 502, 504 without are unavailable (maybe taken: never resent)', () => {
    assert.equal(graphOutcome(ans(503, '', { 'retry-after': '2' }), NOW).kind, 'throttled')
    for (const st of [500, 502, 503, 504]) assert.equal(graphOutcome(ans(st), NOW).kind, 'unavailable')
  })
  it('other 4xx are refusals with the code and a cleaned message', () => {
    const o = graphOutcome(ans(400, err('ErrorMimeContentInvalid', 'bad\u001b[31m mime\nsecond line')), NOW)
    assert.equal(o.kind, 'refused')
    assert.ok(o.kind === 'refused' && o.code === 'ErrorMimeContentInvalid' && !/\u001b|\n/.test(o.message))
  })
  it('never repeats the token Graph might echo', () => {
    const token = 'eyJ0eXAiOiJKV1QiLCJhbGciOi-secret-token-value'
    const e = graphError(err('X', `bad token ${token}`), [token])
    assert.ok(!e.message.includes(token))
  })
  it('Retry-After as seconds or as an HTTP date (RFC 9110 §10.2.3)', () => {
    assert.equal(parseRetryAfter('120', NOW), 120)
    assert.equal(parseRetryAfter(new Date(NOW + 30_000).toUTCString(), NOW), 30)
    assert.equal(parseRetryAfter('soon', NOW), undefined)
    assert.equal(parseRetryAfter(null, NOW), undefined)
  })
})

describe('the sendMail request (user-sendmail, MIME form)', () => {
  it('is the base64 of the exact bytes, as text/plain, with the bearer token', () => {
    const mime = Buffer.from([0x46, 0x72, 0x6f, 0x6d, 0x3a, 0x20, 0xc3, 0xa9, 0x0d, 0x0a, 0x0d, 0x0a, 0xff, 0x00])
    const r = sendMailRequest('https://graph.example/v1.0/', 'tok', mime)
    assert.equal(r.url, 'https://graph.example/v1.0/me/sendMail')
    assert.equal(r.headers['content-type'], 'text/plain')
    assert.equal(r.headers.authorization, 'Bearer tok')
    assert.deepEqual(Buffer.from(r.body.toString('ascii'), 'base64'), mime)
  })
  it('the largest MIME message fits the 4 MB request once in base64', () => {
    const r = sendMailRequest('https://g', 't', Buffer.alloc(GRAPH_MAX_MIME_BYTES, 0x41))
    assert.ok(r.body.length <= GRAPH_MAX_REQUEST_BYTES)
    assert.ok(
      sendMailRequest('https://g', 't', Buffer.alloc(GRAPH_MAX_MIME_BYTES + 3, 0x41)).body.length >
        GRAPH_MAX_REQUEST_BYTES,
    )
  })
  it('the check sends an empty JSON body (nothing to send)', () => {
    const r = sendCheckRequest('https://g/v1.0', 't')
    assert.equal(r.body.toString(), '{}')
    assert.equal(r.headers['content-type'], 'application/json')
  })
})

describe('mailkey send input (sendmail conventions)', () => {
  it('reads -fADDR, -f ADDR, -t, -i, -oi, -F NAME, --account and recipients', () => {
    const a = parseSendArgs([
      '-oi',
      '-fme@x.example',
      '-F',
      'My Name',
      '-t',
      '-i',
      '--account',
      'a@x.example',
      'b@y.example',
      '--',
      '-odd@z.example',
    ])
    assert.deepEqual(a, {
      headers: true,
      verbose: false,
      help: false,
      from: 'me@x.example',
      account: 'a@x.example',
      to: ['b@y.example', '-odd@z.example'],
    })
    assert.equal(parseSendArgs(['-f', 'x@y.example']).from, 'x@y.example')
  })
  it('refuses an unknown option and a missing value', () => {
    assert.throws(() => parseSendArgs(['-Q']), UsageError)
    assert.throws(() => parseSendArgs(['-f']), UsageError)
  })
  it('turns LF line ends into CRLF and keeps CRLF', () => {
    assert.equal(crlf(Buffer.from('a\nb\r\nc\n')).toString(), 'a\r\nb\r\nc\r\n')
  })
  it('removes Bcc fields, folded ones too, from the header only', () => {
    const m = Buffer.from('To: a@x\r\nBcc: b@x,\r\n c@x\r\nSubject: s\r\n\r\nBcc: in the body\r\n')
    assert.equal(withoutFields(m, 'bcc').toString(), 'To: a@x\r\nSubject: s\r\n\r\nBcc: in the body\r\n')
  })
  it('removes Bcc from a message that is all header, and the obsolete "Bcc :" form', () => {
    assert.equal(
      withoutFields(Buffer.from('To: a@x\r\nBcc: s@y\r\nSubject: hi\r\n'), 'bcc').toString(),
      'To: a@x\r\nSubject: hi\r\n',
    )
    assert.equal(withoutFields(Buffer.from('To: a@x\r\nBcc : s@y\r\n\r\nb'), 'bcc').toString(), 'To: a@x\r\n\r\nb')
  })
  it('refuses -bs, -bv and the other -b modes (only -bm sends)', () => {
    for (const b of ['-bs', '-bv', '-bp', '-bi', '-bt']) assert.throws(() => parseSendArgs([b]), UsageError, b)
    assert.deepEqual(parseSendArgs(['-bm', 'x@y.example']).to, ['x@y.example'])
  })
  it('dot-stuffs lines that start with a dot (RFC 5321 §4.5.2) and ends with CRLF', () => {
    assert.equal(dotStuffed(Buffer.from('.a\r\nb\r\n.\r\n..c')).toString(), '..a\r\nb\r\n..\r\n...c\r\n')
  })
})
