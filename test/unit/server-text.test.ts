/**
 * core/server-text.ts: what a server says is cleaned of terminal controls and of every known
 * secret before mailkey prints or stores it (issue 11, items 8 and 10).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { REDACTED, cleanServerText, maskSecrets, stripControls } from '../../src/core/server-text.js'

const RT = 'rt-0123456789-abcdefghijklmnop-QRSTUVWXYZ_xyz.tail'

describe('stripControls', () => {
  it('removes ESC sequences, BEL, DEL, NUL and C1 controls; line breaks become a space', () => {
    const hostile = 'bad\x1b]0;pwned\x07title\x1b[2J\x1b[H\rforged line\nnext\x00\x7f\x9b31m\u0085end'
    const out = stripControls(hostile)
    assert.doesNotMatch(out, /[\x00-\x1f\x7f-\x9f]/)
    assert.equal(out, 'bad]0;pwnedtitle[2J[H forged line next31mend')
  })

  it('removes bidi overrides, keeps ordinary Unicode', () => {
    assert.equal(stripControls('ab\u202ecd\u2066ef\u2069 – Grüße 名前'), 'abcdef – Grüße 名前')
  })
})

describe('invisible characters', () => {
  it('removes bidi marks, zero-width and other invisible characters; U+2028/U+2029 break like a newline', () => {
    assert.equal(
      stripControls('a\u200eb\u200fc\u061cd\u200be\u200cf\u200dg\u2060h\ufeffi\u00adj\u180ek'),
      'abcdefghijk',
    )
    assert.equal(stripControls('line\u2028forged\u2029x'), 'line forged x')
  })

  it('a secret with zero-width characters between its letters is still masked', () => {
    const hidden = [...RT].join('\u200b')
    assert.equal(cleanServerText(`echo ${hidden} end`, [RT]), `echo ${REDACTED} end`)
  })
})

describe('maskSecrets', () => {
  it('removes a secret echoed in base64, at any alignment, standard or URL-safe, whole or in part', () => {
    const secret = 'client-secret-0123456789-abcdefghij'
    const basic = Buffer.from(`my-client-id:${secret}`).toString('base64')
    const out = maskSecrets(`Authorization: Basic ${basic} refused`, [secret])
    assert.ok(
      !Buffer.from(out.replace(/^Authorization: Basic |\[redacted\]| refused$/g, ''), 'base64')
        .toString('latin1')
        .includes(secret.slice(0, 12)),
      out,
    )
    assert.match(out, /\[redacted\]/)
    for (const prefix of ['', 'a', 'ab', 'abc']) {
      const b64 = Buffer.from(prefix + RT).toString('base64')
      for (const form of [b64, b64.replace(/\+/g, '-').replace(/\//g, '_')]) {
        const masked = maskSecrets(`x ${form} y`, [RT])
        assert.ok(
          !Buffer.from(masked, 'base64').toString('latin1').includes(RT.slice(10, 30)),
          `prefix ${JSON.stringify(prefix)}: ${masked}`,
        )
        assert.notEqual(masked, `x ${form} y`)
      }
    }
  })

  it('removes a secret echoed whole, URL-encoded, cut short or glued to other text', () => {
    assert.equal(maskSecrets(`refresh token ${RT} is invalid`, [RT]), `refresh token ${REDACTED} is invalid`)
    const enc = 'ab/cd+ef=gh-0123456789-secret'
    assert.equal(maskSecrets(`token=${encodeURIComponent(enc)}`, [enc]), `token=${REDACTED}`)
    assert.equal(
      maskSecrets(`the token ${RT.slice(0, 20)}... was revoked`, [RT]),
      `the token ${REDACTED}... was revoked`,
    )
    assert.equal(maskSecrets(`<td>${RT.slice(5)}</td>`, [RT]), `<td>${REDACTED}</td>`)
    assert.ok(!maskSecrets(`x${RT}y`, [RT]).includes(RT.slice(0, 12)))
  })

  it('leaves ordinary words and short secrets alone', () => {
    const text = 'AADSTS70000: The provided grant has expired due to it being revoked'
    assert.equal(maskSecrets(text, [RT, 'short']), text)
    assert.equal(maskSecrets(text, []), text)
  })

  it('cleanServerText does both', () => {
    assert.equal(cleanServerText(`\x1b[31m${RT}\x1b[0m\r\nbye`, [RT]), `[31m${REDACTED}[0m bye`)
  })
})
