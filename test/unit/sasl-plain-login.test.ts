/**
 * SASL PLAIN (RFC 4616) and LOGIN decoders: the RFC 4616 §4 examples, strict rejection of malformed
 * input, and no password in any error or formatted output.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { inspect } from 'node:util'

import { Secret } from '../../src/core/secret.js'
import {
  LOGIN_PASSWORD_PROMPT,
  LOGIN_USERNAME_PROMPT,
  decodeLoginPassword,
  decodeLoginUsername,
} from '../../src/sasl/login.js'
import { decodePlain } from '../../src/sasl/plain.js'
import { SaslDecodeError } from '../../src/sasl/xoauth2.js'

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')

// Distinctive, so that a leak is found wherever it lands.
const SECRET = 'SeCrEt-PaSsWoRd-do-not-print-0123456789'

/** Run fn, require a SaslDecodeError, and require that nothing about it shows the secret. */
function assertRejectsWithoutLeak(fn: () => unknown, secret = SECRET): void {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof SaslDecodeError, `expected SaslDecodeError, got ${String(caught)}`)
  const shown = [caught.message, String(caught), caught.stack ?? '', inspect(caught), JSON.stringify(caught)]
  for (const text of shown) {
    assert.ok(!text.includes(secret), 'the password appeared in the error')
    assert.ok(!text.includes(b64(secret)), "the password's base64 appeared in the error")
  }
}

describe('PLAIN', () => {
  // RFC 4616 §4: "tim" with password "tanstaaftanstaaf", no authzid; and authzid "Ursel" acting
  // as "Kurt" with password "xipj3plmq".
  test('decodes the RFC 4616 §4 examples', () => {
    const a = decodePlain(b64('\0tim\0tanstaaftanstaaf'))
    assert.equal(a.authcid, 'tim')
    assert.equal(a.authzid, undefined)
    assert.ok(a.password instanceof Secret)
    assert.equal(a.password.reveal(), 'tanstaaftanstaaf')

    const b = decodePlain(b64('Ursel\0Kurt\0xipj3plmq'))
    assert.deepEqual([b.authzid, b.authcid, b.password.reveal()], ['Ursel', 'Kurt', 'xipj3plmq'])
  })

  test('the password may hold spaces, TABs, controls other than NUL, and any UTF-8', () => {
    for (const pw of [' a b ', 'tab\there', 'ctl\x01\x7f', 'ünï→😀', '=', '\r\n']) {
      assert.equal(decodePlain(b64(`\0u\0${pw}`)).password.reveal(), pw, JSON.stringify(pw))
    }
  })

  test('UTF-8 identities', () => {
    const out = decodePlain(b64('jürgen\0jürgen\0pw'))
    assert.deepEqual([out.authzid, out.authcid], ['jürgen', 'jürgen'])
  })

  test('the decoded password does not show when formatted', () => {
    const out = decodePlain(b64(`\0u\0${SECRET}`))
    for (const text of [String(out.password), JSON.stringify(out), inspect(out)]) {
      assert.ok(!text.includes(SECRET), text)
    }
  })

  const malformed: [string, string][] = [
    ['empty', ''],
    ['not base64', `\0u\0${SECRET}`],
    ['whitespace in base64', `${b64(`\0u\0${SECRET}`)} `],
    ['a line break in base64', `${b64(`\0u\0${SECRET}`)}\r\n`],
    ['missing padding', b64(`\0u\0${SECRET}x`).replace(/=+$/, '')],
    ['non-canonical padding bits', `${b64(`\0u\0${SECRET}`).slice(0, -2)}B=`],
    ['invalid UTF-8', Buffer.concat([Buffer.from(`\0u\0${SECRET}`), Buffer.from([0xff])]).toString('base64')],
    ['one NUL', b64(`u\0${SECRET}`)],
    ['no NUL', b64(SECRET)],
    ['three NULs', b64(`\0u\0${SECRET}\0`)],
    ['a NUL inside the password', b64(`\0u\0${SECRET}\0more`)],
    ['empty authcid', b64(`\0\0${SECRET}`)],
    ['empty password', b64('\0u\0')],
    ['control character in authcid', b64(`\0u\nv\0${SECRET}`)],
    ['control character in authzid', b64(`a\tz\0u\0${SECRET}`)],
  ]
  for (const [name, input] of malformed) {
    test(`rejects ${name} without showing the password`, () => {
      assertRejectsWithoutLeak(() => decodePlain(input))
    })
  }
})

describe('LOGIN', () => {
  test('the prompts are base64 "Username:" and "Password:"', () => {
    assert.equal(Buffer.from(LOGIN_USERNAME_PROMPT, 'base64').toString(), 'Username:')
    assert.equal(Buffer.from(LOGIN_PASSWORD_PROMPT, 'base64').toString(), 'Password:')
  })

  test('decodes a user name and a password', () => {
    assert.equal(decodeLoginUsername(b64('alice@example.com')), 'alice@example.com')
    assert.equal(decodeLoginUsername(b64('jürgen')), 'jürgen')
    const pw = decodeLoginPassword(b64(` ${SECRET}\t`))
    assert.ok(pw instanceof Secret)
    assert.equal(pw.reveal(), ` ${SECRET}\t`)
    assert.ok(!inspect(pw).includes(SECRET))
  })

  const badUsers: [string, string][] = [
    ['empty', ''],
    ['not base64', 'alice'],
    ['invalid UTF-8', Buffer.from([0x61, 0xff]).toString('base64')],
    ['a control character', b64('ali\0ce')],
    ['a line break', b64('alice\r\n')],
  ]
  for (const [name, input] of badUsers) {
    test(`user name: rejects ${name}`, () => {
      assert.throws(() => decodeLoginUsername(input), SaslDecodeError)
    })
  }

  const badPasswords: [string, string][] = [
    ['empty', ''],
    ['not base64', SECRET],
    ['non-canonical base64', `${b64(SECRET).slice(0, -2)}B=`],
    ['base64 with a trailing space', `${b64(SECRET)} `],
    ['invalid UTF-8', Buffer.concat([Buffer.from(SECRET), Buffer.from([0xc3])]).toString('base64')],
    ['a NUL', b64(`${SECRET}\0`)],
  ]
  for (const [name, input] of badPasswords) {
    test(`password: rejects ${name} without showing it`, () => {
      assertRejectsWithoutLeak(() => decodeLoginPassword(input))
    })
  }
})
