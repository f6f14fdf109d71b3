/**
 * SASL codecs: published vectors both ways, RFC 5801 escaping, strict rejection of malformed input,
 * and no token in any error or formatted output.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { inspect } from 'node:util'

import { Secret } from '../../src/core/secret.js'
import {
  SaslDecodeError,
  decodeOauthbearer,
  decodeOauthbearerErrorChallenge,
  decodeXoauth2,
  decodeXoauth2ErrorChallenge,
  encodeOauthbearer,
  encodeSasl,
  encodeXoauth2,
  escapeSaslname,
  saslErrorAcknowledgement,
  unescapeSaslname,
} from '../../src/sasl/index.js'

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8')

// developers.google.com/gmail/imap/xoauth2-protocol, "Initial client response".
const GOOGLE_USER = 'someuser@example.com'
const GOOGLE_TOKEN = 'ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg'
const GOOGLE_IR =
  'dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhk' +
  'SFJoZG1semRHRXVZMjl0Q2cBAQ=='
// Same page, "Error response": note the trailing "\n" after the JSON ("...In0K").
const GOOGLE_ERROR =
  'eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoi' + 'aHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K'

// RFC 7628 §4.1 (IMAP, port 143) and §4.3 (SMTP, port 587).
const RFC_USER = 'user@example.com'
const RFC_TOKEN = 'vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=='
const RFC_4_1 =
  'bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZG' +
  'OWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB'
const RFC_4_3 =
  'bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9NTg3AWF1dGg9QmVhcmVyIHZG' +
  'OWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB'
const RFC_4_3_CHALLENGE =
  'eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3Bl' +
  'bmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0='

// Distinctive, so that a leak is found wherever it lands.
const SECRET = 'SeCrEt-T0KEN-do-not-print-0123456789'

/** Run fn, require a SaslDecodeError, and require that nothing about it shows the secret. */
function assertRejectsWithoutLeak(fn: () => unknown, secret = SECRET): SaslDecodeError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof SaslDecodeError, `expected SaslDecodeError, got ${String(caught)}`)
  assert.ok(caught instanceof Error)
  const shown = [caught.message, String(caught), caught.stack ?? '', inspect(caught), JSON.stringify(caught)]
  for (const text of shown) {
    assert.ok(!text.includes(secret), 'the token appeared in the error')
  }
  return caught
}

describe('XOAUTH2', () => {
  test("encodes Google's documented initial response", () => {
    const out = encodeXoauth2(GOOGLE_USER, new Secret(GOOGLE_TOKEN))
    assert.ok(out instanceof Secret)
    assert.equal(out.reveal(), GOOGLE_IR)
    assert.equal(unb64(out.reveal()), `user=${GOOGLE_USER}\x01auth=Bearer ${GOOGLE_TOKEN}\x01\x01`)
  })

  test("decodes Google's documented initial response", () => {
    const { user, token } = decodeXoauth2(GOOGLE_IR)
    assert.equal(user, GOOGLE_USER)
    assert.ok(token instanceof Secret)
    assert.equal(token.reveal(), GOOGLE_TOKEN)
  })

  test('round-trips a non-ASCII user name as UTF-8', () => {
    const user = 'jürgen@example.de'
    const enc = encodeXoauth2(user, new Secret('tok.1'))
    assert.deepEqual([...Buffer.from(enc.reveal(), 'base64').subarray(0, 11)], [...Buffer.from('user=jürge')])
    assert.equal(decodeXoauth2(enc.reveal()).user, user)
  })

  test('accepts the scheme name in any case', () => {
    assert.equal(decodeXoauth2(b64(`user=u@e\x01auth=bearer ${SECRET}\x01\x01`)).token.reveal(), SECRET)
  })

  test('the encoded Secret does not show the token when formatted', () => {
    const out = encodeXoauth2('u@example.com', new Secret(SECRET))
    for (const text of [String(out), `${out}`, JSON.stringify({ out }), inspect(out)]) {
      assert.ok(!text.includes(SECRET) && !text.includes(out.reveal()))
      assert.match(text, /\[redacted:[0-9a-f]{8}\]/)
    }
  })

  const malformed: [string, string][] = [
    ['not base64', '!!!!'],
    ['whitespace in base64', `${b64(`user=u\x01auth=Bearer ${SECRET}\x01\x01`)}\n`],
    // 58 bytes, so the encoding ends in "==" before it is cut off.
    ['missing padding', b64(`user=uv\x01auth=Bearer ${SECRET}\x01\x01`).replace(/==$/, '')],
    ['non-canonical padding bits', 'dXNlcj1=' /* "user=" with a stray bit */],
    ['invalid UTF-8', Buffer.from([0x75, 0x73, 0x65, 0x72, 0x3d, 0xff, 0x01]).toString('base64')],
    ['empty', ''],
    ['no final \\x01', b64(`user=u\x01auth=Bearer ${SECRET}\x01`)],
    ['extra field', b64(`user=u\x01auth=Bearer ${SECRET}\x01x=y\x01\x01`)],
    ['trailing data', b64(`user=u\x01auth=Bearer ${SECRET}\x01\x01junk`)],
    ['fields swapped', b64(`auth=Bearer ${SECRET}\x01user=u\x01\x01`)],
    ['empty user', b64(`user=\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['control char in user', b64(`user=u\x00v\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['not Bearer', b64(`user=u\x01auth=Basic ${SECRET}\x01\x01`)],
    ['no space after Bearer', b64(`user=u\x01auth=Bearer${SECRET}\x01\x01`)],
    ['two spaces after Bearer', b64(`user=u\x01auth=Bearer  ${SECRET}\x01\x01`)],
    ['empty token', b64('user=u\x01auth=Bearer \x01\x01')],
    ['space inside token', b64(`user=u\x01auth=Bearer ${SECRET} more\x01\x01`)],
    ['newline inside token', b64(`user=u\x01auth=Bearer ${SECRET}\r\nx\x01\x01`)],
  ]
  for (const [name, input] of malformed) {
    test(`rejects ${name} without showing the token`, () => {
      assertRejectsWithoutLeak(() => decodeXoauth2(input))
    })
  }

  test('rejects a base64 string that hides the token in its own text', () => {
    // The input itself is not valid base64 but contains the token: it must not be echoed.
    assertRejectsWithoutLeak(() => decodeXoauth2(`user=u auth=Bearer ${SECRET}`))
  })

  test('encoding refuses framing-breaking input, without showing the token', () => {
    assert.throws(() => encodeXoauth2('', new Secret('t')), TypeError)
    assert.throws(() => encodeXoauth2('a\x01b', new Secret('t')), TypeError)
    for (const bad of ['', `${SECRET} x`, `${SECRET}\x01`, `${SECRET}\n`]) {
      assert.throws(
        () => encodeXoauth2('u', new Secret(bad)),
        (err: unknown) => {
          assert.ok(err instanceof TypeError)
          assert.ok(!err.message.includes(SECRET))
          return true
        },
      )
    }
    // A plain string is not accepted where a Secret is expected.
    assert.throws(() => encodeXoauth2('u', SECRET as unknown as Secret), TypeError)
  })

  test("decodes Google's documented error challenge", () => {
    assert.deepEqual(decodeXoauth2ErrorChallenge(GOOGLE_ERROR), {
      status: '401',
      schemes: 'bearer mac',
      scope: 'https://mail.google.com/',
    })
  })

  test('error challenge: keeps only the known string fields, ignores junk', () => {
    const odd = b64('{"status":400,"schemes":["x"],"other":"y"}')
    assert.deepEqual(decodeXoauth2ErrorChallenge(odd), { status: '400' })
    assert.equal(decodeXoauth2ErrorChallenge(''), undefined)
    assert.equal(decodeXoauth2ErrorChallenge('not base64!'), undefined)
    assert.equal(decodeXoauth2ErrorChallenge(b64('not json')), undefined)
    assert.equal(decodeXoauth2ErrorChallenge(b64('[1,2]')), undefined)
    assert.equal(decodeXoauth2ErrorChallenge(b64('null')), undefined)
    assert.equal(decodeXoauth2ErrorChallenge(b64(`{"status":"${'x'.repeat(9000)}"}`)), undefined)
  })
})

describe('OAUTHBEARER', () => {
  test('RFC 7628 §4.1: encodes the IMAP example exactly', () => {
    const out = encodeOauthbearer({
      user: RFC_USER,
      token: new Secret(RFC_TOKEN),
      host: 'server.example.com',
      port: 143,
    })
    assert.equal(out.reveal(), RFC_4_1)
    assert.equal(
      unb64(out.reveal()),
      `n,a=${RFC_USER},\x01host=server.example.com\x01port=143\x01auth=Bearer ${RFC_TOKEN}\x01\x01`,
    )
  })

  test('RFC 7628 §4.1: decodes the IMAP example', () => {
    const got = decodeOauthbearer(RFC_4_1)
    assert.equal(got.user, RFC_USER)
    assert.equal(got.host, 'server.example.com')
    assert.equal(got.port, 143)
    assert.equal(got.token.reveal(), RFC_TOKEN)
  })

  test('RFC 7628 §4.3: SMTP example initial response, both ways', () => {
    const out = encodeSasl('OAUTHBEARER', {
      user: RFC_USER,
      token: new Secret(RFC_TOKEN),
      host: 'server.example.com',
      port: 587,
    })
    assert.equal(out.reveal(), RFC_4_3)
    assert.equal(decodeOauthbearer(RFC_4_3).port, 587)
  })

  test('RFC 7628 §4.3: decodes the failure challenge', () => {
    assert.deepEqual(decodeOauthbearerErrorChallenge(RFC_4_3_CHALLENGE), {
      status: 'invalid_token',
      scope: 'example_scope',
      'openid-configuration': 'https://example.com/.well-known/openid-configuration',
    })
  })

  test('RFC 7628 §3.2.2: a challenge without "status" is not an error challenge', () => {
    assert.equal(decodeOauthbearerErrorChallenge(b64('{"scope":"x"}')), undefined)
    assert.equal(decodeOauthbearerErrorChallenge(b64('{}')), undefined)
    assert.equal(decodeOauthbearerErrorChallenge('%%%'), undefined)
  })

  test('host and port are optional; no user gives an empty authzid', () => {
    const out = encodeOauthbearer({ user: 'u@example.com', token: new Secret('t') })
    assert.equal(unb64(out.reveal()), 'n,a=u@example.com,\x01auth=Bearer t\x01\x01')
    const anon = encodeOauthbearer({ user: '', token: new Secret('t') })
    assert.equal(unb64(anon.reveal()), 'n,,\x01auth=Bearer t\x01\x01')
    const got = decodeOauthbearer(anon.reveal())
    assert.equal(got.user, undefined)
    assert.equal(got.host, undefined)
    assert.equal(got.port, undefined)
  })

  test('RFC 5801 §4: "," and "=" in the authzid are escaped and restored', () => {
    assert.equal(escapeSaslname('a,b=c'), 'a=2Cb=3Dc')
    assert.equal(escapeSaslname('=2C'), '=3D2C')
    assert.equal(unescapeSaslname('a=2Cb=3Dc'), 'a,b=c')
    assert.equal(unescapeSaslname('=3D2C'), '=2C')
    const out = encodeOauthbearer({ user: 'a,b=c@example.com', token: new Secret('t') })
    assert.equal(unb64(out.reveal()), 'n,a=a=2Cb=3Dc@example.com,\x01auth=Bearer t\x01\x01')
    assert.equal(decodeOauthbearer(out.reveal()).user, 'a,b=c@example.com')
  })

  test('RFC 5801 §4: any other "=" sequence in the authzid is rejected', () => {
    for (const name of ['a=2Xb', 'a=', '=', 'a=3', 'x=41']) {
      assert.throws(() => unescapeSaslname(name), SaslDecodeError, name)
    }
    assertRejectsWithoutLeak(() => decodeOauthbearer(b64(`n,a=a=2Xb,\x01auth=Bearer ${SECRET}\x01\x01`)))
  })

  test('keys are case-insensitive and unknown keys are ignored', () => {
    const got = decodeOauthbearer(b64(`n,,\x01HOST=h.example\x01extra=1\x01Auth=BEARER ${SECRET}\x01\x01`))
    assert.equal(got.host, 'h.example')
    assert.equal(got.token.reveal(), SECRET)
  })

  test('"y," (client supports channel binding, server does not) is a valid GS2 flag', () => {
    assert.equal(decodeOauthbearer(b64(`y,,\x01auth=Bearer ${SECRET}\x01\x01`)).token.reveal(), SECRET)
  })

  const malformed: [string, string][] = [
    ['not base64', '@@@@'],
    ['the error acknowledgement', 'AQ=='],
    ['channel binding requested', b64(`p=tls-unique,,\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['non-standard GS2 flag', b64(`F,n,,\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['no GS2 header', b64(`\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['unterminated GS2 header', b64(`n,a=u\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['unknown GS2 field', b64(`n,b=u,\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['empty authzid', b64(`n,a=,\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['no kvsep after header', b64(`n,,auth=Bearer ${SECRET}\x01\x01`)],
    ['missing final kvsep', b64(`n,,\x01auth=Bearer ${SECRET}\x01`)],
    ['no auth key', b64('n,,\x01host=h\x01\x01')],
    ['empty key/value section', b64('n,,\x01\x01')],
    ['empty pair', b64(`n,,\x01\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['pair without "="', b64(`n,,\x01auth\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['non-alphabetic key', b64(`n,,\x01h0st=h\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['duplicate key', b64(`n,,\x01auth=Bearer ${SECRET}\x01AUTH=Bearer x\x01\x01`)],
    ['control char in value', b64(`n,,\x01host=a\x00b\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['not Bearer', b64(`n,,\x01auth=MAC ${SECRET}\x01\x01`)],
    ['empty token', b64('n,,\x01auth=Bearer \x01\x01')],
    ['empty auth (scope discovery)', b64('n,,\x01auth=\x01\x01')],
    ['space in token', b64(`n,,\x01auth=Bearer ${SECRET} x\x01\x01`)],
    ['empty host', b64(`n,,\x01host=\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['non-numeric port', b64(`n,,\x01port=imap\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['port out of range', b64(`n,,\x01port=70000\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['port zero', b64(`n,,\x01port=0\x01auth=Bearer ${SECRET}\x01\x01`)],
    ['trailing data', b64(`n,,\x01auth=Bearer ${SECRET}\x01\x01x`)],
  ]
  for (const [name, input] of malformed) {
    test(`rejects ${name} without showing the token`, () => {
      assertRejectsWithoutLeak(() => decodeOauthbearer(input))
    })
  }

  test('encoding refuses bad host, port and token, without showing the token', () => {
    const token = new Secret(SECRET)
    assert.throws(() => encodeOauthbearer({ user: 'u', token, host: '' }), TypeError)
    assert.throws(() => encodeOauthbearer({ user: 'u', token, host: 'a b' }), TypeError)
    assert.throws(() => encodeOauthbearer({ user: 'u', token, port: 0 }), TypeError)
    assert.throws(() => encodeOauthbearer({ user: 'u', token, port: 65536 }), TypeError)
    assert.throws(() => encodeOauthbearer({ user: 'u', token, port: 1.5 }), TypeError)
    assert.throws(() => encodeOauthbearer({ user: 'u\x01', token }), TypeError)
    const badToken = new Secret(`${SECRET}\x01`)
    assert.throws(
      () => encodeOauthbearer({ user: 'u', token: badToken }),
      (err: unknown) => {
        assert.ok(err instanceof TypeError && !err.message.includes(SECRET))
        return true
      },
    )
  })
})

describe('encodeSasl', () => {
  test('XOAUTH2 drops host and port and matches encodeXoauth2', () => {
    const token = new Secret(GOOGLE_TOKEN)
    const out = encodeSasl('XOAUTH2', { user: GOOGLE_USER, token, host: 'imap.gmail.com', port: 993 })
    assert.equal(out.reveal(), GOOGLE_IR)
  })

  test('OAUTHBEARER matches the RFC 7628 §4.1 vector', () => {
    const out = encodeSasl('OAUTHBEARER', {
      user: RFC_USER,
      token: new Secret(RFC_TOKEN),
      host: 'server.example.com',
      port: 143,
    })
    assert.equal(out.reveal(), RFC_4_1)
  })

  test('an unknown mechanism from an untyped caller is refused', () => {
    assert.throws(() => encodeSasl('PLAIN' as 'XOAUTH2', { user: 'u', token: new Secret('t') }), TypeError)
  })

  test('error acknowledgements: RFC 7628 §3.2.3 %x01 for OAUTHBEARER, empty for XOAUTH2', () => {
    assert.equal(unb64(saslErrorAcknowledgement('OAUTHBEARER')), '\x01')
    assert.equal(saslErrorAcknowledgement('XOAUTH2'), '')
  })
})
