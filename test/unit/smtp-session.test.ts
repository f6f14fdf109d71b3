/**
 * SMTP pre-auth session: transcripts (client bytes -> rendered server actions) for EHLO/HELO, AUTH
 * PLAIN/LOGIN, STARTTLS, every login outcome and the limits; input split at every byte with the
 * bytes after AUTH going upstream untouched; and no password in any reply.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import type { ClientAction, SessionOptions } from '../../src/protocols/shared/session.js'
import { transcripts, type Step } from '../harness/session-transcript.js'
import { createSmtpSession, smtpLineIsSensitive } from '../../src/protocols/smtp/session.js'

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')

// Distinctive, so that a leak is found wherever it lands.
const PASSWORD = 'pw-SeCrEt 42 ünï'
const PLAIN_IR = b64(`\0alice@example.com\0${PASSWORD}`)
const USER = 'alice@example.com'

const BASE: SessionOptions = {
  secure: false,
  starttlsAvailable: false,
  requireTls: false,
  oauthPassthrough: true,
  hostname: 'mx.local',
}

const { serverOutput: allServerOutput, render, transcript, drive: driveSession } = transcripts()

const EHLO = '250-mx.local\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n'
const EHLO_STARTTLS =
  '250-mx.local\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n250 STARTTLS\r\n'
const EHLO_TLS_FIRST = '250-mx.local\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n'
const EHLO_NO_AUTH = '250-mx.local\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n'

interface Case {
  name: string
  opts?: Partial<SessionOptions>
  steps: Step[]
}

const cases: Case[] = [
  { name: 'EHLO', steps: [['EHLO client.example\r\n', EHLO]] },
  {
    name: 'EHLO offers STARTTLS when available',
    opts: { starttlsAvailable: true },
    steps: [['ehlo [127.0.0.1]\r\n', EHLO_STARTTLS]],
  },
  {
    name: 'EHLO on TLS offers no STARTTLS',
    opts: { secure: true, starttlsAvailable: true },
    steps: [['EHLO c\r\n', EHLO]],
  },
  { name: 'HELO', steps: [['HELO c\r\n', '250 mx.local\r\n']] },
  {
    name: 'EHLO/HELO need a domain',
    steps: [
      [
        'EHLO\r\nEHLO \r\nHELO\r\n',
        '501 5.5.4 Syntax: EHLO domain\r\n501 5.5.4 Syntax: EHLO domain\r\n501 5.5.4 Syntax: HELO domain\r\n',
      ],
    ],
  },
  {
    name: 'AUTH PLAIN with an initial response',
    steps: [
      ['EHLO c\r\n', EHLO],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [{ result: 'ok' }, '235 2.7.0 Authentication successful\r\n[done]'],
    ],
  },
  {
    name: 'AUTH PLAIN with a continuation (RFC 4954 §4: "334 ")',
    steps: [
      ['EHLO c\r\nauth plain\r\n', `${EHLO}334 \r\n`],
      [`${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
    ],
  },
  {
    name: 'AUTH LOGIN with two prompts',
    steps: [
      ['EHLO c\r\nAUTH LOGIN\r\n', `${EHLO}334 VXNlcm5hbWU6\r\n`],
      [`${b64(USER)}\r\n`, '334 UGFzc3dvcmQ6\r\n'],
      [`${b64(PASSWORD)}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [{ result: 'ok' }, '235 2.7.0 Authentication successful\r\n[done]'],
    ],
  },
  {
    name: 'AUTH LOGIN with the user name as initial response',
    steps: [
      ['EHLO c\r\n', EHLO],
      [`AUTH LOGIN ${b64(USER)}\r\n`, '334 UGFzc3dvcmQ6\r\n'],
      [`${b64(PASSWORD)}\r\n`, `[login ${USER} ${PASSWORD}]`],
    ],
  },
  {
    name: '"*" cancels (RFC 4954 §4: 501 5.0.0), at every prompt',
    steps: [
      ['EHLO c\r\n', EHLO],
      ['AUTH PLAIN\r\n', '334 \r\n'],
      ['*\r\n', '501 5.0.0 Authentication cancelled\r\n'],
      ['AUTH LOGIN\r\n', '334 VXNlcm5hbWU6\r\n'],
      ['*\r\n', '501 5.0.0 Authentication cancelled\r\n'],
      [`AUTH LOGIN ${b64(USER)}\r\n`, '334 UGFzc3dvcmQ6\r\n'],
      ['*\r\n', '501 5.0.0 Authentication cancelled\r\n'],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
    ],
  },
  {
    name: 'responses that do not decode (RFC 4954 §4: 501 5.5.2)',
    steps: [
      ['EHLO c\r\n', EHLO],
      ['AUTH PLAIN\r\n', '334 \r\n'],
      [`${PASSWORD}\r\n`, '501 5.5.2 Cannot decode response\r\n'],
      ['AUTH PLAIN =\r\n', '501 5.5.2 Cannot decode response\r\n'],
      [`AUTH PLAIN ${PLAIN_IR.slice(0, -1)}\r\n`, '501 5.5.2 Cannot decode response\r\n'],
      [`AUTH PLAIN ${b64(`${USER}\0${PASSWORD}`)}\r\n`, '501 5.5.2 Cannot decode response\r\n'],
      ['AUTH LOGIN\r\n', '334 VXNlcm5hbWU6\r\n'],
      ['\r\n', '501 5.5.2 Cannot decode response\r\n'],
      [`AUTH LOGIN ${b64(USER)}\r\n`, '334 UGFzc3dvcmQ6\r\n'],
      ['=\r\n', '501 5.5.2 Cannot decode response\r\n'],
      ['AUTH LOGIN\r\n', '334 VXNlcm5hbWU6\r\n'],
      ['YWxp\0Y2U=\r\n', '501 5.5.2 Cannot decode response\r\n'],
    ],
  },
  {
    name: 'PLAIN authzid: the user itself is fine, anyone else is refused',
    steps: [
      ['EHLO c\r\n', EHLO],
      [
        `AUTH PLAIN ${b64(`bob\0${USER}\0${PASSWORD}`)}\r\n`,
        '535 5.7.8 Authorization identity must be empty or the user name\r\n',
      ],
      [`AUTH PLAIN ${b64(`${USER}\0${USER}\0${PASSWORD}`)}\r\n`, `[login ${USER} ${PASSWORD}]`],
    ],
  },
  {
    name: 'AUTH syntax and mechanisms',
    steps: [
      ['EHLO c\r\n', EHLO],
      ['AUTH\r\n', '501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n'],
      ['AUTH PLAIN a b\r\n', '501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n'],
      ['AUTH CRAM-MD5\r\n', '504 5.5.4 Unrecognized authentication type\r\n'],
      ['AUTH SCRAM-SHA-256\r\n', '504 5.5.4 Unrecognized authentication type\r\n'],
    ],
  },
  {
    name: 'a client with its own XOAUTH2 token is passed through; a pipelined MAIL FROM goes upstream',
    steps: [
      ['EHLO c\r\n', EHLO],
      [
        `AUTH XOAUTH2 ${b64('user=alice\x01auth=Bearer tok\x01\x01')}\r\nMAIL FROM:<alice>\r\n`,
        '[passthrough alice XOAUTH2]',
      ],
      [{ result: 'ok' }, '235 2.7.0 Authentication successful\r\n[done][leftover MAIL FROM:<alice>\r\n]'],
    ],
  },
  {
    name: 'OAUTHBEARER with a 334 continuation; a refused client token is 535',
    steps: [
      ['EHLO c\r\n', EHLO],
      ['auth OAUTHBEARER\r\n', '334 \r\n'],
      [
        `${b64('n,a=bob@example.test,\x01host=h\x01port=1\x01auth=Bearer t\x01\x01')}\r\n`,
        '[passthrough bob@example.test OAUTHBEARER]',
      ],
      [{ result: 'bad-credentials' }, '535 5.7.8 Authentication credentials invalid\r\n'],
    ],
  },
  {
    name: 'OAuth responses: cancelled, undecodable, naming no user',
    steps: [
      ['EHLO c\r\n', EHLO],
      ['AUTH XOAUTH2\r\n', '334 \r\n'],
      ['*\r\n', '501 5.0.0 Authentication cancelled\r\n'],
      [`AUTH XOAUTH2 ${b64('not-xoauth2')}\r\n`, '501 5.5.2 Cannot decode response\r\n'],
      [`AUTH OAUTHBEARER ${b64('n,,\x01auth=Bearer t\x01\x01')}\r\n`, '535 5.7.8 The OAuth response names no user\r\n'],
    ],
  },
  {
    name: 'AUTH before EHLO, or after HELO, is out of sequence',
    steps: [
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, '503 5.5.1 Send EHLO first\r\n'],
      ['HELO c\r\n', '250 mx.local\r\n'],
      ['AUTH LOGIN\r\n', '503 5.5.1 Send EHLO first\r\n'],
    ],
  },
  {
    name: 'a second AUTH after a failed one',
    steps: [
      ['EHLO c\r\n', EHLO],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [{ result: 'bad-credentials' }, '535 5.7.8 Authentication credentials invalid\r\n'],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [{ result: 'ok' }, '235 2.7.0 Authentication successful\r\n[done]'],
    ],
  },
  {
    name: "after success the next AUTH is the upstream's business",
    steps: [
      ['EHLO c\r\n', EHLO],
      [`AUTH PLAIN ${PLAIN_IR}\r\nAUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [{ result: 'ok' }, `235 2.7.0 Authentication successful\r\n[done][leftover AUTH PLAIN ${PLAIN_IR}\r\n]`],
    ],
  },
  {
    name: 'mail commands before AUTH (RFC 4954 §6: 530 5.7.0)',
    steps: [
      [
        'MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nBDAT 10 LAST\r\nVRFY x\r\nEXPN y\r\n',
        '530 5.7.0 Authentication required\r\n'.repeat(6),
      ],
    ],
  },
  {
    name: 'RSET, NOOP, HELP, unknown commands',
    steps: [
      [
        'RSET\r\nnoop\r\nHELP\r\nXYZZY\r\n\r\n',
        '250 2.0.0 OK\r\n250 2.0.0 OK\r\n214 2.0.0 mailkey proxy: EHLO, AUTH PLAIN or LOGIN, then mail as usual\r\n500 5.5.2 Command not recognized\r\n500 5.5.2 Command not recognized\r\n',
      ],
    ],
  },
  {
    name: 'QUIT',
    steps: [
      ['QUIT\r\nEHLO c\r\n', '221 2.0.0 mx.local closing connection\r\n[close]'],
      ['NOOP\r\n', ''],
    ],
  },
  {
    name: 'NUL, bare CR, controls and invalid UTF-8 are refused',
    steps: [
      ['EH\0LO c\r\nEHLO a\rb\r\nNOOP\x1b\r\n', '500 5.5.2 Invalid characters in command\r\n'.repeat(3)],
      [
        Buffer.from([0x45, 0x48, 0x4c, 0x4f, 0x20, 0xc3, 0x28, 0x0d, 0x0a]),
        '500 5.5.2 Invalid characters in command\r\n',
      ],
    ],
  },
  { name: 'bare LF ends a line', steps: [[`EHLO c\nAUTH PLAIN ${PLAIN_IR}\n`, `${EHLO}[login ${USER} ${PASSWORD}]`]] },
  {
    name: 'STARTTLS: 220, upgrade, EHLO forgotten (RFC 3207 §4.2), no STARTTLS offered afterwards',
    opts: { starttlsAvailable: true },
    steps: [
      ['EHLO c\r\n', EHLO_STARTTLS],
      ['STARTTLS\r\n', '220 2.0.0 Ready to start TLS\r\n[starttls]'],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, '503 5.5.1 Send EHLO first\r\n'],
      ['EHLO c\r\n', EHLO],
      ['STARTTLS\r\n', '503 5.5.1 TLS already active\r\n'],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
    ],
  },
  {
    name: 'STARTTLS: bytes pipelined behind it in the clear are discarded (command injection)',
    opts: { starttlsAvailable: true },
    steps: [
      [
        'EHLO c\r\nSTARTTLS\r\nEHLO evil\r\nAUTH PLAIN x\r\n',
        `${EHLO_STARTTLS}220 2.0.0 Ready to start TLS\r\n[starttls]`,
      ],
      ['AUTH LOGIN\r\n', '503 5.5.1 Send EHLO first\r\n'],
    ],
  },
  {
    name: 'STARTTLS: parameters, or not on offer',
    steps: [['STARTTLS now\r\nSTARTTLS\r\n', '501 5.5.4 Syntax: STARTTLS\r\n502 5.5.1 STARTTLS not supported\r\n']],
  },
  {
    name: 'requireTls with STARTTLS on offer: only NOOP, EHLO, STARTTLS, QUIT before TLS (RFC 3207 §4)',
    opts: { requireTls: true, starttlsAvailable: true },
    steps: [
      ['EHLO c\r\n', EHLO_TLS_FIRST],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, '530 5.7.0 Must issue a STARTTLS command first\r\n'],
      [
        'MAIL FROM:<a@b>\r\nHELO c\r\nRSET\r\nNOOP\r\nBOGUS\r\n',
        '530 5.7.0 Must issue a STARTTLS command first\r\n'.repeat(3) +
          '250 2.0.0 OK\r\n500 5.5.2 Command not recognized\r\n',
      ],
      ['STARTTLS\r\n', '220 2.0.0 Ready to start TLS\r\n[starttls]'],
      ['EHLO c\r\n', EHLO],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
    ],
  },
  {
    name: 'requireTls without STARTTLS: no AUTH offered, AUTH gets 538 (RFC 4954 §6)',
    opts: { requireTls: true },
    steps: [
      ['EHLO c\r\n', EHLO_NO_AUTH],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, '538 5.7.11 Encryption required for requested authentication mechanism\r\n'],
      ['MAIL FROM:<a@b>\r\n', '530 5.7.0 Authentication required\r\n'],
    ],
  },
  {
    name: 'requireTls on a TLS connection changes nothing',
    opts: { requireTls: true, secure: true },
    steps: [['EHLO c\r\n', EHLO]],
  },
  {
    name: 'OAuth pass-through off (the default listener): neither offered nor taken (issue 11 item 6)',
    opts: { oauthPassthrough: false },
    steps: [
      ['EHLO c\r\n', '250-mx.local\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n'],
      [
        `AUTH XOAUTH2 ${b64('user=alice\x01auth=Bearer tok\x01\x01')}\r\n`,
        '504 5.5.4 Unrecognized authentication type\r\n',
      ],
      ['AUTH OAUTHBEARER\r\n', '504 5.5.4 Unrecognized authentication type\r\n'],
    ],
  },
  {
    name: 'every failed outcome (STYLE.md §5), then success',
    opts: { limits: { maxFailedLogins: 5 } },
    steps: [
      ['EHLO c\r\n', EHLO],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [{ result: 'bad-credentials' }, '535 5.7.8 Authentication credentials invalid\r\n'],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [{ result: 'reauth' }, '535 5.7.8 Sign-in needed: run "mailkey status"\r\n'],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [{ result: 'transient' }, '454 4.7.0 Temporary authentication failure\r\n'],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [{ result: 'config' }, '454 4.7.0 mailkey is misconfigured: run "mailkey status"\r\n'],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [{ result: 'ok' }, '235 2.7.0 Authentication successful\r\n[done]'],
    ],
  },
  {
    name: "the proxy's text replaces the default, on one line",
    steps: [
      ['EHLO c\r\n', EHLO],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [
        { result: 'reauth', text: 'Sign-in needed for "work"\r\n235 2.7.0 fake' },
        '535 5.7.8 Sign-in needed for "work" 235 2.7.0 fake\r\n',
      ],
    ],
  },
  {
    name: 'maxFailedLogins: the last failure is followed by 421 and close (RFC 5321 §3.8)',
    opts: { limits: { maxFailedLogins: 2 } },
    steps: [
      ['EHLO c\r\n', EHLO],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [{ result: 'bad-credentials' }, '535 5.7.8 Authentication credentials invalid\r\n'],
      [`AUTH PLAIN ${PLAIN_IR}\r\n`, `[login ${USER} ${PASSWORD}]`],
      [
        { result: 'reauth' },
        '535 5.7.8 Sign-in needed: run "mailkey status"\r\n421 4.7.0 mx.local Too many failed logins, closing connection\r\n[close]',
      ],
      ['EHLO c\r\n', ''],
    ],
  },
  {
    name: 'pipelined after AUTH with an initial response: MAIL/RCPT/DATA go upstream verbatim',
    steps: [
      [
        `EHLO c\r\nAUTH PLAIN ${PLAIN_IR}\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n`,
        `${EHLO}[login ${USER} ${PASSWORD}]`,
      ],
      ['DATA\r\n', ''],
      [
        { result: 'ok' },
        '235 2.7.0 Authentication successful\r\n[done][leftover MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n]',
      ],
    ],
  },
  {
    name: 'pipelined after a failed AUTH: the rest is answered here',
    steps: [
      [`EHLO c\r\nAUTH PLAIN ${PLAIN_IR}\r\nMAIL FROM:<a@b>\r\nQUIT\r\nNOOP\r\n`, `${EHLO}[login ${USER} ${PASSWORD}]`],
      [
        { result: 'bad-credentials' },
        '535 5.7.8 Authentication credentials invalid\r\n530 5.7.0 Authentication required\r\n221 2.0.0 mx.local closing connection\r\n[close]',
      ],
    ],
  },
  {
    name: 'maxLineBytes counts the CRLF; a longer line gets 421 and close',
    opts: { limits: { maxLineBytes: 12 } },
    steps: [
      ['HELO 12345\r\n', '250 mx.local\r\n'],
      ['HELO 123456\n', '250 mx.local\r\n'],
      ['HELO 123456\r\n', '421 4.7.0 mx.local Line too long, closing connection\r\n[close]'],
      ['NOOP\r\n', ''],
    ],
  },
  {
    name: 'an overlong SASL response is refused before its end arrives',
    opts: { limits: { maxLineBytes: 20 } },
    steps: [
      ['EHLO c\r\nAUTH PLAIN\r\n', `${EHLO}334 \r\n`],
      [PLAIN_IR.slice(0, 19), ''],
      ['A', '421 4.7.0 mx.local Line too long, closing connection\r\n[close]'],
    ],
  },
  {
    name: 'maxCommands counts every line before login',
    opts: { limits: { maxCommands: 3 } },
    steps: [
      ['EHLO c\r\nAUTH LOGIN\r\n', `${EHLO}334 VXNlcm5hbWU6\r\n`],
      [`${b64(USER)}\r\n`, '334 UGFzc3dvcmQ6\r\n'],
      [`${b64(PASSWORD)}\r\n`, '421 4.7.0 mx.local Too many commands, closing connection\r\n[close]'],
    ],
  },
  {
    name: 'input held while a login is pending is bounded',
    opts: { limits: { maxLineBytes: 80, maxCommands: 2 } },
    steps: [
      [`EHLO c\r\nAUTH PLAIN ${PLAIN_IR}\r\n`, `${EHLO}[login ${USER} ${PASSWORD}]`],
      ['x'.repeat(160), ''],
      ['!', '421 4.7.0 mx.local Too much input while authenticating, closing connection\r\n[close]'],
      [{ result: 'ok' }, ''],
    ],
  },
]

describe('SMTP session transcripts', () => {
  for (const c of cases) {
    test(c.name, () => {
      const s = createSmtpSession({ ...BASE, ...c.opts })
      assert.equal(render(s.start()), '220 mx.local ESMTP mailkey proxy ready\r\n')
      transcript(s, c.steps)
    })
  }
})

const drive = (chunks: Buffer[]): { client: string; upstream: string } => driveSession(createSmtpSession(BASE), chunks)

describe('SMTP input split at any byte', () => {
  const AFTER = 'MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n'
  const logins = [
    ['AUTH PLAIN with initial response', `EHLO client.example\r\nAUTH PLAIN ${PLAIN_IR}\r\n`],
    ['AUTH PLAIN with continuation', `EHLO client.example\r\nAUTH PLAIN\r\n${PLAIN_IR}\r\n`],
    ['AUTH LOGIN', `EHLO client.example\r\nAUTH LOGIN\r\n${b64(USER)}\r\n${b64(PASSWORD)}\r\n`],
  ] as const
  for (const [name, login] of logins) {
    const bytes = Buffer.from(login + AFTER, 'utf8')
    const whole = drive([bytes])

    test(`${name}: one chunk; the session consumed nothing past the AUTH exchange`, () => {
      assert.ok(
        whole.client.endsWith(`[login ${USER} ${PASSWORD}]235 2.7.0 Authentication successful\r\n`),
        whole.client,
      )
      assert.equal(whole.upstream, AFTER)
    })

    test(`${name}: two chunks, split at every byte`, () => {
      for (let i = 1; i < bytes.length; i++) {
        const got = drive([bytes.subarray(0, i), bytes.subarray(i)])
        assert.equal(got.client, whole.client, `split at ${i}`)
        assert.equal(got.upstream, AFTER, `split at ${i}`)
      }
    })

    test(`${name}: one byte at a time`, () => {
      assert.deepEqual(drive([...bytes].map((b) => Buffer.from([b]))), whole)
    })
  }
})

describe('SMTP lines that carry a secret', () => {
  test('smtpLineIsSensitive flags AUTH with an initial response', () => {
    for (const line of [`AUTH PLAIN ${PLAIN_IR}`, 'auth  login YWxpY2U=', 'AUTH PLAIN ='])
      assert.equal(smtpLineIsSensitive(line), true, line)
    for (const line of ['AUTH PLAIN', 'AUTH LOGIN ', 'EHLO c', 'MAIL FROM:<a@b>', 'AUTH'])
      assert.equal(smtpLineIsSensitive(line), false, line)
  })
})

describe('SMTP session misuse', () => {
  test('feed after done throws; feed after close is ignored; loginResult needs a pending login', () => {
    const s = createSmtpSession(BASE)
    assert.throws(() => s.loginResult('ok'), /no login pending/)
    s.feed(Buffer.from(`EHLO c\r\nAUTH PLAIN ${PLAIN_IR}\r\n`))
    assert.equal(s.loginResult('ok').done, true)
    assert.throws(() => s.feed(Buffer.from('MAIL FROM:<a@b>\r\n')), /splice/)

    const q = createSmtpSession(BASE)
    q.feed(Buffer.from('QUIT\r\n'))
    assert.deepEqual(q.feed(Buffer.from('EHLO c\r\n')), [])
  })

  test('a host name that could break a reply line is refused', () => {
    for (const hostname of ['', 'a b', 'a\r\n250 x', 'ä.example']) {
      assert.throws(() => createSmtpSession({ ...BASE, hostname }), RangeError, JSON.stringify(hostname))
    }
  })

  test('limits must be positive integers', () => {
    assert.throws(() => createSmtpSession({ ...BASE, limits: { maxFailedLogins: 0 } }), RangeError)
    assert.throws(() => createSmtpSession({ ...BASE, limits: { maxLineBytes: Number.NaN } }), RangeError)
  })
})

describe('SMTP no password in any reply', () => {
  test('no reply or close text contains the password, its base64 or the PLAIN response', () => {
    assert.ok(allServerOutput.length > 100, 'the transcripts ran first')
    const needles = [PASSWORD, b64(PASSWORD), PLAIN_IR, 'pw-SeCrEt']
    for (const data of allServerOutput) {
      for (const n of needles)
        assert.ok(!data.includes(n), `a reply contained a secret: ${JSON.stringify(data.slice(0, 40))}`)
    }
  })
})
