/**
 * POP3 pre-auth session: transcripts (client bytes -> rendered server actions) for CAPA, USER/PASS,
 * AUTH PLAIN/LOGIN, STLS, every login outcome and the limits; input split at every byte; and no
 * password in any reply.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { createPop3Session, pop3LineIsSensitive } from '../../src/protocols/pop3/session.js'
import { LineReader, commandText, findControlByte, readLine } from '../../src/protocols/shared/line-reader.js'
import type { ClientAction, SessionOptions } from '../../src/protocols/shared/session.js'
import { transcripts, type Step } from '../harness/session-transcript.js'

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')

// Distinctive, so that a leak is found wherever it lands.
const PASSWORD = 'pw-SeCrEt 42 ünï'
const PLAIN_IR = b64(`\0alice\0${PASSWORD}`)

const BASE: SessionOptions = {
  secure: false,
  starttlsAvailable: false,
  requireTls: false,
  oauthPassthrough: true,
  hostname: 'localhost',
}

const { serverOutput: allServerOutput, render, transcript, drive: driveSession } = transcripts()

const CAPA_FULL =
  '+OK Capability list follows\r\nUSER\r\nSASL PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nIMPLEMENTATION mailkey\r\n.\r\n'

interface Case {
  name: string
  opts?: Partial<SessionOptions>
  steps: Step[]
}

const cases: Case[] = [
  { name: 'CAPA without STLS', steps: [['CAPA\r\n', CAPA_FULL]] },
  {
    name: 'CAPA offers STLS when available and not yet secure',
    opts: { starttlsAvailable: true },
    steps: [
      [
        'capa\r\n',
        '+OK Capability list follows\r\nUSER\r\nSASL PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nSTLS\r\nIMPLEMENTATION mailkey\r\n.\r\n',
      ],
    ],
  },
  {
    name: 'CAPA on a TLS connection has no STLS',
    opts: { secure: true, starttlsAvailable: true },
    steps: [['CAPA\r\n', CAPA_FULL]],
  },
  {
    name: 'USER/PASS login',
    steps: [
      ['USER alice\r\n', '+OK send PASS\r\n'],
      [`PASS ${PASSWORD}\r\n`, `[login alice ${PASSWORD}]`],
      [{ result: 'ok' }, '+OK Logged in.\r\n[done]'],
    ],
  },
  {
    name: 'PASS keeps the whole rest of the line, leading and trailing spaces included (RFC 1939 §7)',
    steps: [
      ['USER  alice \r\n', '+OK send PASS\r\n'],
      ['PASS  a b  \r\n', '[login alice  a b  ]'],
    ],
  },
  { name: 'keywords are case-insensitive', steps: [['user alice\r\npAsS x\r\n', '+OK send PASS\r\n[login alice x]']] },
  {
    name: 'PASS without USER, and PASS after another command, need USER again',
    steps: [
      ['PASS x\r\n', '-ERR send USER first\r\n'],
      ['USER alice\r\nCAPA\r\nPASS x\r\n', `+OK send PASS\r\n${CAPA_FULL}-ERR send USER first\r\n`],
    ],
  },
  {
    name: 'missing arguments',
    steps: [
      [
        'USER\r\nUSER \r\nUSER alice\r\nPASS\r\nUSER alice\r\nPASS \r\n',
        '-ERR missing user name\r\n-ERR missing user name\r\n+OK send PASS\r\n-ERR missing password\r\n+OK send PASS\r\n-ERR missing password\r\n',
      ],
    ],
  },
  { name: 'a TAB in the user name', steps: [['USER a\tb\r\n', '-ERR invalid user name\r\n']] },
  {
    name: 'AUTH PLAIN with an initial response',
    steps: [
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login alice ${PASSWORD}]`],
      [{ result: 'ok' }, '+OK Logged in.\r\n[done]'],
    ],
  },
  {
    name: 'AUTH PLAIN with a continuation',
    steps: [
      ['auth plain\r\n', '+ \r\n'],
      [`${PLAIN_IR}\r\n`, `[login alice ${PASSWORD}]`],
    ],
  },
  {
    name: 'AUTH PLAIN with authzid equal to authcid',
    steps: [[`AUTH PLAIN ${b64(`alice\0alice\0${PASSWORD}`)}\r\n`, `[login alice ${PASSWORD}]`]],
  },
  {
    name: 'AUTH PLAIN with another authzid is refused',
    steps: [
      [
        `AUTH PLAIN ${b64(`bob\0alice\0${PASSWORD}`)}\r\n`,
        '-ERR [AUTH] Authorization identity must be empty or the user name\r\n',
      ],
    ],
  },
  {
    name: 'AUTH PLAIN cancelled with "*" (RFC 5034 §4), then retried',
    steps: [
      ['AUTH PLAIN\r\n', '+ \r\n'],
      ['*\r\n', '-ERR authentication cancelled\r\n'],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login alice ${PASSWORD}]`],
    ],
  },
  {
    name: 'AUTH PLAIN responses that do not decode',
    steps: [
      ['AUTH PLAIN\r\n', '+ \r\n'],
      [`${PASSWORD}\r\n`, '-ERR invalid SASL response\r\n'],
      ['AUTH PLAIN =\r\n', '-ERR invalid SASL response\r\n'],
      [`AUTH PLAIN ${b64(`alice\0${PASSWORD}`)}\r\n`, '-ERR invalid SASL response\r\n'],
      [`AUTH PLAIN ${b64(`\0\0${PASSWORD}`)}\r\n`, '-ERR invalid SASL response\r\n'],
      ['AUTH PLAIN\r\n', '+ \r\n'],
      ['\r\n', '-ERR invalid SASL response\r\n'],
      ['AUTH PLAIN\r\n', '+ \r\n'],
      ['AAAA\0\r\n', '-ERR invalid SASL response\r\n'],
    ],
  },
  {
    name: 'AUTH LOGIN with two prompts',
    steps: [
      ['AUTH LOGIN\r\n', '+ VXNlcm5hbWU6\r\n'],
      [`${b64('alice')}\r\n`, '+ UGFzc3dvcmQ6\r\n'],
      [`${b64(PASSWORD)}\r\n`, `[login alice ${PASSWORD}]`],
      [{ result: 'ok' }, '+OK Logged in.\r\n[done]'],
    ],
  },
  {
    name: 'AUTH LOGIN with the user name as initial response',
    steps: [
      [`AUTH LOGIN ${b64('alice')}\r\n`, '+ UGFzc3dvcmQ6\r\n'],
      [`${b64(PASSWORD)}\r\n`, `[login alice ${PASSWORD}]`],
    ],
  },
  {
    name: 'AUTH LOGIN cancelled at either prompt, and bad base64',
    steps: [
      ['AUTH LOGIN\r\n', '+ VXNlcm5hbWU6\r\n'],
      ['*\r\n', '-ERR authentication cancelled\r\n'],
      [`AUTH LOGIN ${b64('alice')}\r\n`, '+ UGFzc3dvcmQ6\r\n'],
      ['*\r\n', '-ERR authentication cancelled\r\n'],
      ['AUTH LOGIN !!!\r\n', '-ERR invalid SASL response\r\n'],
      [`AUTH LOGIN ${b64('alice')}\r\n`, '+ UGFzc3dvcmQ6\r\n'],
      [`${PASSWORD}\r\n`, '-ERR invalid SASL response\r\n'],
    ],
  },
  {
    name: 'bare AUTH lists the mechanisms',
    steps: [['AUTH\r\n', '+OK\r\nPLAIN\r\nLOGIN\r\nXOAUTH2\r\nOAUTHBEARER\r\n.\r\n']],
  },
  {
    name: 'a client with its own XOAUTH2 token is passed through (initial response), then spliced',
    steps: [
      [`AUTH XOAUTH2 ${b64('user=alice\x01auth=Bearer tok\x01\x01')}\r\nSTAT\r\n`, '[passthrough alice XOAUTH2]'],
      [{ result: 'ok' }, '+OK Logged in.\r\n[done][leftover STAT\r\n]'],
    ],
  },
  {
    name: 'OAUTHBEARER with a continuation; a refused client token is an [AUTH] failure',
    steps: [
      ['auth oauthbearer\r\n', '+ \r\n'],
      [
        `${b64('n,a=bob@example.test,\x01host=h\x01port=1\x01auth=Bearer t\x01\x01')}\r\n`,
        '[passthrough bob@example.test OAUTHBEARER]',
      ],
      [{ result: 'bad-credentials' }, '-ERR [AUTH] Invalid credentials.\r\n'],
    ],
  },
  {
    name: 'OAuth responses: cancelled, undecodable, naming no user',
    steps: [
      ['AUTH XOAUTH2\r\n', '+ \r\n'],
      ['*\r\n', '-ERR authentication cancelled\r\n'],
      [`AUTH XOAUTH2 ${b64('not-xoauth2')}\r\n`, '-ERR invalid SASL response\r\n'],
      ['AUTH OAUTHBEARER =\r\n', '-ERR invalid SASL response\r\n'],
      [
        `AUTH OAUTHBEARER ${b64('n,,\x01auth=Bearer t\x01\x01')}\r\n`,
        '-ERR [AUTH] The OAuth response names no user\r\n',
      ],
    ],
  },
  {
    name: 'other mechanisms are unsupported',
    steps: [
      ['AUTH CRAM-MD5\r\n', '-ERR Unsupported mechanism\r\n'],
      ['AUTH PLAIN a b\r\n', '-ERR syntax: AUTH mechanism [initial-response]\r\n'],
    ],
  },
  {
    name: 'transaction commands, APOP, unknown and empty commands before login',
    steps: [
      [
        'STAT\r\nLIST\r\nRETR 1\r\nNOOP\r\nUIDL\r\nTOP 1 0\r\nAPOP alice 0123\r\nXYZZY\r\n\r\n',
        '-ERR not logged in yet\r\n'.repeat(6) +
          '-ERR APOP not supported\r\n-ERR unknown command\r\n-ERR empty command\r\n',
      ],
    ],
  },
  {
    name: 'QUIT',
    steps: [
      ['QUIT\r\nUSER alice\r\n', '+OK bye\r\n[close]'],
      ['CAPA\r\n', ''],
    ],
  },
  {
    name: 'NUL, bare CR, controls and invalid UTF-8 are refused',
    steps: [
      ['US\0ER alice\r\nUSER a\rb\r\nUSER \x1bx\r\nCAPA\x7f\r\n', '-ERR invalid characters in command\r\n'.repeat(4)],
      [Buffer.from([0x55, 0x53, 0x45, 0x52, 0x20, 0xff, 0x0d, 0x0a]), '-ERR invalid characters in command\r\n'],
    ],
  },
  { name: 'bare LF ends a line', steps: [['USER alice\nPASS x\n', '+OK send PASS\r\n[login alice x]']] },
  {
    name: 'STLS: reply, upgrade, forget USER, no STLS in CAPA afterwards (RFC 2595 §4)',
    opts: { starttlsAvailable: true },
    steps: [
      ['USER alice\r\n', '+OK send PASS\r\n'],
      ['STLS\r\n', '+OK Begin TLS negotiation\r\n[starttls]'],
      ['PASS x\r\n', '-ERR send USER first\r\n'],
      ['CAPA\r\n', CAPA_FULL],
      ['STLS\r\n', '-ERR TLS already active\r\n'],
    ],
  },
  {
    name: 'STLS: bytes pipelined behind it in the clear are discarded (command injection)',
    opts: { starttlsAvailable: true },
    steps: [
      ['STLS\r\nUSER mallory\r\nPASS evil\r\n', '+OK Begin TLS negotiation\r\n[starttls]'],
      ['PASS x\r\n', '-ERR send USER first\r\n'],
    ],
  },
  { name: 'STLS when not offered', steps: [['STLS\r\n', '-ERR STLS not available\r\n']] },
  {
    name: 'STLS on a TLS connection',
    opts: { secure: true, starttlsAvailable: true },
    steps: [['STLS\r\n', '-ERR TLS already active\r\n']],
  },
  {
    name: 'requireTls: no USER/SASL in CAPA, logins refused until STLS',
    opts: { requireTls: true, starttlsAvailable: true },
    steps: [
      [
        'CAPA\r\n',
        '+OK Capability list follows\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nSTLS\r\nIMPLEMENTATION mailkey\r\n.\r\n',
      ],
      ['USER alice\r\n', '-ERR [AUTH] TLS required: send STLS first\r\n'],
      ['PASS x\r\n', '-ERR [AUTH] TLS required: send STLS first\r\n'],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, '-ERR [AUTH] TLS required: send STLS first\r\n'],
      ['AUTH\r\n', '-ERR [AUTH] TLS required: send STLS first\r\n'],
      ['STLS\r\n', '+OK Begin TLS negotiation\r\n[starttls]'],
      ['CAPA\r\n', CAPA_FULL],
      ['USER alice\r\nPASS x\r\n', '+OK send PASS\r\n[login alice x]'],
    ],
  },
  {
    name: 'requireTls without STLS on offer',
    opts: { requireTls: true },
    steps: [['USER alice\r\n', '-ERR [AUTH] TLS required: connect with TLS\r\n']],
  },
  {
    name: 'requireTls on a TLS connection changes nothing',
    opts: { requireTls: true, secure: true },
    steps: [['CAPA\r\nUSER a\r\n', `${CAPA_FULL}+OK send PASS\r\n`]],
  },
  {
    name: 'OAuth pass-through off (the default listener): neither offered nor taken (issue 11 item 6)',
    opts: { oauthPassthrough: false },
    steps: [
      [
        'CAPA\r\n',
        '+OK Capability list follows\r\nUSER\r\nSASL PLAIN LOGIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nIMPLEMENTATION mailkey\r\n.\r\n',
      ],
      ['AUTH\r\n', '+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n'],
      [`AUTH XOAUTH2 ${b64('user=alice\x01auth=Bearer tok\x01\x01')}\r\n`, '-ERR Unsupported mechanism\r\n'],
      ['AUTH OAUTHBEARER\r\n', '-ERR Unsupported mechanism\r\n'],
    ],
  },
  {
    name: 'every failed outcome, then success',
    opts: { limits: { maxFailedLogins: 5 } },
    steps: [
      ['USER alice\r\nPASS x\r\n', '+OK send PASS\r\n[login alice x]'],
      [{ result: 'bad-credentials' }, '-ERR [AUTH] Invalid credentials.\r\n'],
      ['USER alice\r\nPASS x\r\n', '+OK send PASS\r\n[login alice x]'],
      [{ result: 'reauth' }, '-ERR [AUTH] Sign-in needed: run "mailkey status"\r\n'],
      ['USER alice\r\nPASS x\r\n', '+OK send PASS\r\n[login alice x]'],
      [{ result: 'transient' }, '-ERR [SYS/TEMP] Temporary failure, try again later.\r\n'],
      ['USER alice\r\nPASS x\r\n', '+OK send PASS\r\n[login alice x]'],
      [{ result: 'config' }, '-ERR [SYS/PERM] mailkey is misconfigured: run "mailkey status"\r\n'],
      // After a failed PASS the USER is gone (RFC 1939 §7).
      ['PASS x\r\n', '-ERR send USER first\r\n'],
      ['USER alice\r\nPASS x\r\n', '+OK send PASS\r\n[login alice x]'],
      [{ result: 'ok' }, '+OK Logged in.\r\n[done]'],
    ],
  },
  {
    name: "the proxy's text replaces the default, on one line, never as a fake response code",
    steps: [
      ['USER alice\r\nPASS x\r\n', '+OK send PASS\r\n[login alice x]'],
      [
        { result: 'reauth', text: 'Sign-in needed for "work":\r\n+OK run "mailkey login work"' },
        '-ERR [AUTH] Sign-in needed for "work": +OK run "mailkey login work"\r\n',
      ],
      ['USER alice\r\nPASS x\r\n', '+OK send PASS\r\n[login alice x]'],
      [{ result: 'transient', text: '[IN-USE] busy' }, '-ERR [SYS/TEMP] IN-USE] busy\r\n'],
      ['USER alice\r\nPASS x\r\n', '+OK send PASS\r\n[login alice x]'],
      [{ result: 'ok', text: '\r\n' }, '+OK Logged in.\r\n[done]'],
    ],
  },
  {
    name: 'maxFailedLogins: the last failure closes the connection',
    opts: { limits: { maxFailedLogins: 3 } },
    steps: [
      ['USER a\r\nPASS x\r\n', '+OK send PASS\r\n[login a x]'],
      [{ result: 'bad-credentials' }, '-ERR [AUTH] Invalid credentials.\r\n'],
      ['USER a\r\nPASS x\r\n', '+OK send PASS\r\n[login a x]'],
      [{ result: 'bad-credentials' }, '-ERR [AUTH] Invalid credentials.\r\n'],
      ['USER a\r\nPASS x\r\n', '+OK send PASS\r\n[login a x]'],
      [{ result: 'transient' }, '-ERR [SYS/TEMP] Temporary failure, try again later.\r\n[close]'],
      ['USER a\r\n', ''],
    ],
  },
  {
    name: 'pipelined: commands after PASS wait for the verdict, then go upstream on success',
    steps: [
      ['CAPA\r\nUSER alice\r\nPASS x\r\nSTAT\r\nLIST\r\n', `${CAPA_FULL}+OK send PASS\r\n[login alice x]`],
      ['RETR 1\r\nQU', ''],
      [{ result: 'ok' }, '+OK Logged in.\r\n[done][leftover STAT\r\nLIST\r\nRETR 1\r\nQU]'],
    ],
  },
  {
    name: 'pipelined: commands after a failed PASS are answered in order',
    steps: [
      ['USER alice\r\nPASS x\r\nSTAT\r\nUSER alice\r\nPASS y\r\nLIST\r\n', '+OK send PASS\r\n[login alice x]'],
      [
        { result: 'bad-credentials' },
        '-ERR [AUTH] Invalid credentials.\r\n-ERR not logged in yet\r\n+OK send PASS\r\n[login alice y]',
      ],
      [{ result: 'ok' }, '+OK Logged in.\r\n[done][leftover LIST\r\n]'],
    ],
  },
  {
    name: 'maxLineBytes counts the CRLF; a longer line is answered and the connection closed',
    opts: { limits: { maxLineBytes: 12 } },
    steps: [
      ['USER 12345\r\n', '+OK send PASS\r\n'],
      ['USER 123456\n', '+OK send PASS\r\n'],
      ['USER 123456\r\n', '-ERR line too long\r\n[close]'],
      ['CAPA\r\n', ''],
    ],
  },
  {
    name: 'an overlong line is refused before its end arrives',
    opts: { limits: { maxLineBytes: 16 } },
    steps: [
      ['PASS 0123456789', ''],
      ['A', '-ERR line too long\r\n[close]'],
    ],
  },
  {
    name: 'maxCommands counts every line before login, SASL responses included',
    opts: { limits: { maxCommands: 3 } },
    steps: [
      ['NOOP\r\nAUTH LOGIN\r\n', '-ERR not logged in yet\r\n+ VXNlcm5hbWU6\r\n'],
      [`${b64('alice')}\r\n`, '+ UGFzc3dvcmQ6\r\n'],
      [`${b64('x')}\r\n`, '-ERR too many commands before login\r\n[close]'],
    ],
  },
  {
    name: 'input held while a login is pending is bounded',
    opts: { limits: { maxLineBytes: 10, maxCommands: 2 } },
    steps: [
      ['USER a\r\nPASS x\r\n', '+OK send PASS\r\n[login a x]'],
      ['0123456789', ''],
      ['0123456789', ''],
      ['!', '-ERR too much input while logging in\r\n[close]'],
      [{ result: 'ok' }, ''],
    ],
  },
]

describe('POP3 session transcripts', () => {
  for (const c of cases) {
    test(c.name, () => {
      const s = createPop3Session({ ...BASE, ...c.opts })
      assert.equal(render(s.start()), '+OK mailkey POP3 proxy ready\r\n')
      transcript(s, c.steps)
    })
  }
})

const drive = (chunks: Buffer[], opts: Partial<SessionOptions> = {}): { client: string; upstream: string } =>
  driveSession(createPop3Session({ ...BASE, ...opts }), chunks)

describe('POP3 input split at any byte', () => {
  const logins = [
    ['USER/PASS', `CAPA\r\nUSER alice\r\nPASS ${PASSWORD}\r\nSTAT\r\nRETR 1\r\n`],
    ['AUTH PLAIN', `CAPA\r\nAUTH PLAIN\r\n${PLAIN_IR}\r\nSTAT\r\n`],
    ['AUTH LOGIN', `AUTH LOGIN\r\n${b64('alice')}\r\n${b64(PASSWORD)}\r\nLIST\r\n`],
  ] as const
  for (const [name, input] of logins) {
    const bytes = Buffer.from(input, 'utf8')
    const whole = drive([bytes])

    test(`${name}: one chunk`, () => {
      assert.ok(whole.client.endsWith(`[login alice ${PASSWORD}]+OK Logged in.\r\n`), whole.client)
    })

    test(`${name}: two chunks, split at every byte`, () => {
      for (let i = 1; i < bytes.length; i++) {
        const got = drive([bytes.subarray(0, i), bytes.subarray(i)])
        assert.equal(got.client, whole.client, `split at ${i}`)
        assert.equal(got.upstream, whole.upstream, `split at ${i}`)
      }
    })

    test(`${name}: one byte at a time`, () => {
      const chunks = [...bytes].map((b) => Buffer.from([b]))
      assert.deepEqual(drive(chunks), whole)
    })
  }

  test('USER/PASS: the pipelined rest goes upstream whatever the split', () => {
    const input = Buffer.from(`USER alice\r\nPASS ${PASSWORD}\r\nSTAT\r\nRETR 1\r\n`)
    for (let i = 1; i < input.length; i++) {
      assert.equal(drive([input.subarray(0, i), input.subarray(i)]).upstream, 'STAT\r\nRETR 1\r\n')
    }
  })
})

describe('POP3 lines that carry a secret', () => {
  test('pop3LineIsSensitive flags lines that carry a secret by themselves', () => {
    for (const line of [
      'PASS x',
      'pass a b',
      'PASS',
      'APOP alice c4c9334bac560ecc979e58001b3e22fb',
      `AUTH PLAIN ${PLAIN_IR}`,
      'auth login YWxpY2U=',
    ]) {
      assert.equal(pop3LineIsSensitive(line), true, line)
    }
    for (const line of ['USER alice', 'CAPA', 'AUTH', 'AUTH PLAIN', 'AUTH PLAIN ', 'PASSWORD', 'STAT']) {
      assert.equal(pop3LineIsSensitive(line), false, line)
    }
  })
})

describe('POP3 session misuse', () => {
  test('feed after done throws; feed after close is ignored; loginResult needs a pending login', () => {
    const s = createPop3Session(BASE)
    assert.throws(() => s.loginResult('ok'), /no login pending/)
    s.feed(Buffer.from('USER a\r\nPASS b\r\n'))
    assert.equal(s.loginResult('ok').done, true)
    assert.throws(() => s.feed(Buffer.from('STAT\r\n')), /splice/)

    const q = createPop3Session(BASE)
    assert.equal(render(q.feed(Buffer.from('QUIT\r\n'))), '+OK bye\r\n[close]')
    assert.deepEqual(q.feed(Buffer.from('USER a\r\n')), [])
  })

  test('limits must be positive integers', () => {
    assert.throws(() => createPop3Session({ ...BASE, limits: { maxLineBytes: 0 } }), RangeError)
    assert.throws(() => createPop3Session({ ...BASE, limits: { maxCommands: 1.5 } }), RangeError)
    assert.doesNotThrow(() => createPop3Session({ ...BASE, limits: {} }))
  })

  test('the login action holds the password as a Secret', () => {
    const s = createPop3Session(BASE)
    const [, login] = s.feed(Buffer.from(`USER alice\r\nPASS ${PASSWORD}\r\n`))
    assert.ok(login?.type === 'login')
    assert.equal(login.password.reveal(), PASSWORD)
    assert.ok(!JSON.stringify(login).includes(PASSWORD))
    assert.ok(!String(login.password).includes(PASSWORD))
  })
})

// The shared framing has no test file of its own yet; POP3 is its first user.
describe('shared LineReader', () => {
  test('readLine: CRLF and bare LF, the limit counts the terminator', () => {
    const r = readLine(Buffer.from('ab\r\ncd\nrest'), 4)
    assert.equal(r.kind, 'line')
    assert.ok(r.kind === 'line')
    assert.deepEqual([r.line.toString(), r.crlf, r.consumed], ['ab', true, 4])
    const lf = readLine(Buffer.from('abc\n'), 4)
    assert.ok(lf.kind === 'line' && lf.line.toString() === 'abc' && !lf.crlf)
    assert.equal(readLine(Buffer.from('abc\r\n'), 4).kind, 'too-long')
    assert.equal(readLine(Buffer.from('abc'), 4).kind, 'partial')
    assert.equal(readLine(Buffer.from('abcd'), 4).kind, 'too-long')
    assert.equal(readLine(Buffer.from('\r\n'), 4).kind, 'line')
  })

  test('lines, literals (take), leftover (drain), clear', () => {
    const r = new LineReader(16)
    r.push(Buffer.from('A1 LOGIN {5}\r\nsec'))
    const first = r.next()
    assert.ok(first.kind === 'line' && first.line.toString() === 'A1 LOGIN {5}')
    assert.equal(r.take(5), undefined)
    r.push(Buffer.from('retX\r\nrest'))
    assert.equal(r.take(5)?.toString(), 'secre')
    const second = r.next()
    assert.ok(second.kind === 'line' && second.line.toString() === 'tX')
    assert.equal(r.next().kind, 'partial')
    assert.equal(r.size, 4)
    assert.equal(r.drain().toString(), 'rest')
    assert.equal(r.size, 0)
    r.push(Buffer.from('x\r\n'))
    r.clear()
    assert.equal(r.next().kind, 'partial')
  })

  test('too-long is sticky and drops the buffer', () => {
    const r = new LineReader(4)
    r.push(Buffer.from('abcd\r\nok\r\n'))
    assert.equal(r.next().kind, 'too-long')
    r.push(Buffer.from('ok\r\n'))
    assert.equal(r.next().kind, 'too-long')
    assert.equal(r.size, 0)
    assert.throws(() => new LineReader(1), RangeError)
  })

  test('findControlByte / commandText: HTAB allowed, other controls, DEL and bad UTF-8 refused', () => {
    assert.equal(findControlByte(Buffer.from('a\tb ü')), -1)
    assert.equal(findControlByte(Buffer.from('ab\0')), 2)
    assert.equal(findControlByte(Buffer.from('a\rb')), 1)
    assert.equal(findControlByte(Buffer.from('\x7f')), 0)
    assert.equal(commandText(Buffer.from('USER jürgen')), 'USER jürgen')
    assert.equal(commandText(Buffer.from([0x41, 0xc3])), undefined)
    assert.equal(commandText(Buffer.from('a\x1bb')), undefined)
  })
})

describe('POP3 no password in any reply', () => {
  // Runs after the transcripts above (node:test runs describe blocks in order within a file).
  test('no reply or close text contains the password, its base64 or the PLAIN response', () => {
    assert.ok(allServerOutput.length > 100, 'the transcripts ran first')
    const needles = [PASSWORD, b64(PASSWORD), PLAIN_IR, 'pw-SeCrEt']
    for (const data of allServerOutput) {
      for (const n of needles)
        assert.ok(!data.includes(n), `a reply contained a secret: ${JSON.stringify(data.slice(0, 40))}`)
    }
  })
})
