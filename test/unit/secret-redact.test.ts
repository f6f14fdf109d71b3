/**
 * Secret never shows its value, however it is formatted; scrub() catches token-shaped text and
 * leaves ordinary messages alone.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Console } from 'node:console'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { format, formatWithOptions, inspect } from 'node:util'

import { scrub, wouldScrub } from '../../src/core/redact.js'
import { Secret, fingerprint, secretOrUndefined } from '../../src/core/secret.js'
import { ERR, TransientError } from '../../src/errors.js'

// never printed: failures below only say whether the value appeared
const VALUE = 'EwBwA8l6BAAUs5-not-a-real-token-0123456789abcdef'
const REDACTED = /^\[redacted:[0-9a-f]{8}\]$/

function assertHidden(text: string, what: string): void {
  assert.ok(!text.includes(VALUE), `${what} shows the value`)
  assert.ok(!text.includes(VALUE.slice(0, 12)), `${what} shows part of the value`)
  assert.match(text, /\[redacted:[0-9a-f]{8}\]/, `${what} shows the redaction marker`)
}

/** Everything written to a Console, as one string. */
function consoleOutput(write: (c: Console) => void): string {
  let out = ''
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString()
      cb()
    },
  })
  write(new Console({ stdout: sink, stderr: sink, colorMode: false }))
  return out
}

describe('Secret', () => {
  const s = new Secret(VALUE)

  it('reveal() is the only way out', () => {
    assert.equal(s.reveal(), VALUE)
  })

  it('String(), toString() and template literals', () => {
    assert.match(String(s), REDACTED)
    assert.match(s.toString(), REDACTED)
    assertHidden(`${s}`, 'template literal')
    assertHidden('token: ' + s, 'string concatenation')
    assertHidden([s, s].join(','), 'Array.join')
  })

  it('JSON.stringify, alone and nested', () => {
    assert.match(JSON.parse(JSON.stringify(s)) as string, REDACTED)
    assertHidden(JSON.stringify({ a: { b: [s] } }), 'nested JSON')
    assertHidden(JSON.stringify({ s }, null, 2), 'pretty JSON')
  })

  it('util.inspect, with every option that could dig deeper', () => {
    assertHidden(inspect(s), 'inspect')
    assertHidden(inspect({ nested: { deep: [s] } }, { depth: 10 }), 'inspect nested')
    assertHidden(inspect(s, { showHidden: true, depth: Infinity, getters: true }), 'inspect showHidden')
    assertHidden(inspect(new Map([['k', s]])), 'inspect Map')
    // even with custom inspection off, the private field stays private
    assert.ok(!inspect(s, { customInspect: false, showHidden: true }).includes(VALUE))
  })

  it('console-style formatting: %s %o %O %j and plain arguments', () => {
    for (const spec of ['%s', '%o', '%O', '%j']) assertHidden(format(spec, s), `format ${spec}`)
    assertHidden(format('token', s), 'format extra argument')
    assertHidden(formatWithOptions({ colors: true }, '%s', { s }), 'formatWithOptions')
    const out = consoleOutput((c) => {
      c.log(s)
      c.log('token=%s', s)
      c.error({ s })
      c.table([{ s }])
      c.dir(s)
    })
    assert.ok(!out.includes(VALUE), 'console output shows the value')
    assert.ok(
      (out.match(/\[redacted:[0-9a-f]{8}\]/g)?.length ?? 0) >= 4,
      'log, log %s, error and table show the marker (dir shows an empty object)',
    )
  })

  it('inside an Error message built with it, and as an error cause', () => {
    const e = new Error(`refresh failed for token ${s}`)
    assertHidden(e.message, 'error message')
    assertHidden(inspect(e), 'inspected error')
    const m = new TransientError(ERR.OAUTH_TRANSIENT, `got ${s}`, { cause: s })
    assertHidden(m.message, 'MailkeyError message')
    assertHidden(inspect(m), 'inspected MailkeyError with a Secret cause')
    assert.ok(!String(e.stack).includes(VALUE))
  })

  it('has no enumerable or reflectable copy of the value', () => {
    assert.deepEqual(Object.keys(s), [])
    assert.deepEqual(Object.getOwnPropertyNames(s), [])
    assert.ok(!Object.values(s).includes(VALUE))
    assert.ok(!JSON.stringify(Object.entries(s)).includes(VALUE))
    assert.deepEqual({ ...s }, {})
  })

  it('fingerprint: first 8 hex digits of SHA-256, stable, and not the value', () => {
    const want = createHash('sha256').update(VALUE).digest('hex').slice(0, 8)
    assert.equal(s.fingerprint, want)
    assert.equal(fingerprint(VALUE), want)
    assert.equal(new Secret(VALUE).fingerprint, s.fingerprint)
    assert.notEqual(new Secret(VALUE + 'x').fingerprint, s.fingerprint)
    assert.equal(String(s), `[redacted:${want}]`)
    assert.ok(!VALUE.includes(want))
    // a known vector: sha256("abc") = ba7816bf...
    assert.equal(fingerprint('abc'), 'ba7816bf')
  })

  it('equals compares values without revealing them', () => {
    assert.equal(s.equals(new Secret(VALUE)), true)
    assert.equal(s.equals(new Secret('other')), false)
    assert.equal(s.equals(undefined), false)
  })

  it('secretOrUndefined', () => {
    assert.equal(secretOrUndefined(undefined), undefined)
    assert.equal(secretOrUndefined(null), undefined)
    assert.equal(secretOrUndefined(''), undefined)
    const t = secretOrUndefined('t')
    assert.ok(t instanceof Secret)
    assert.equal(t.reveal(), 't')
  })
})

describe('scrub', () => {
  const TOKEN = 'ya29.a0AfB_byC-not-real-0123456789'

  function assertScrubbed(text: string, what: string): string {
    const out = scrub(text)
    assert.ok(!out.includes(TOKEN), `${what}: token survived`)
    assert.match(out, /\[redacted\]/, what)
    assert.equal(wouldScrub(text), true, what)
    return out
  }

  it('Bearer tokens in headers and text', () => {
    assert.equal(assertScrubbed(`Authorization: Bearer ${TOKEN}`, 'header'), 'Authorization: Bearer [redacted]')
    assertScrubbed(`authorization: bearer ${TOKEN}`, 'lower case')
    assertScrubbed(`sent Bearer ${TOKEN}== to the server`, 'padding')
    assertScrubbed('Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL291dGxvb2sifQ.c2lnbmF0dXJl', 'JWT')
  })

  it('access_token= and refresh_token= in JSON', () => {
    assert.equal(
      assertScrubbed(`{"access_token":"${TOKEN}","expires_in":3599}`, 'compact JSON'),
      '{"access_token":"[redacted]","expires_in":3599}',
    )
    assertScrubbed(`{ "refresh_token": "${TOKEN}" }`, 'spaced JSON')
    assertScrubbed(`{'id_token': '${TOKEN}'}`, 'single quotes')
    assertScrubbed(`{"device_code":"${TOKEN}"}`, 'device_code')
    assertScrubbed(`{"client_secret":"${TOKEN}"}`, 'client_secret')
    assertScrubbed(`code_verifier=${TOKEN}`, 'code_verifier')
  })

  it('access_token= and refresh_token= in query strings and form bodies', () => {
    assert.equal(
      assertScrubbed(`grant_type=refresh_token&refresh_token=${TOKEN}&client_id=abc`, 'form body'),
      'grant_type=refresh_token&refresh_token=[redacted]&client_id=abc',
    )
    assertScrubbed(`https://x.example/cb#access_token=${TOKEN}&token_type=Bearer`, 'fragment')
    assertScrubbed(`ACCESS_TOKEN=${TOKEN}`, 'upper case')
  })

  it('base64 after XOAUTH2 / OAUTHBEARER', () => {
    const ir = Buffer.from(`user=a@example.com\x01auth=Bearer ${TOKEN}\x01\x01`).toString('base64')
    assert.equal(scrub(`A1 AUTHENTICATE XOAUTH2 ${ir}`), 'A1 AUTHENTICATE XOAUTH2 [redacted]')
    const ob = Buffer.from(`n,a=a@example.com,\x01auth=Bearer ${TOKEN}\x01\x01`).toString('base64')
    assert.equal(scrub(`AUTH OAUTHBEARER ${ob}`), 'AUTH OAUTHBEARER [redacted]')
    // the shortest possible initial response is still caught
    const tiny = Buffer.from('n,,\x01auth=Bearer t\x01\x01').toString('base64')
    assert.equal(scrub(`OAUTHBEARER ${tiny}`), 'OAUTHBEARER [redacted]')
  })

  it('the decoded SASL form: auth=Bearer ...', () => {
    const out = scrub(`user=a@example.com\x01auth=Bearer ${TOKEN}\x01\x01`)
    assert.ok(!out.includes(TOKEN))
    assert.match(out, /auth=Bearer \[redacted\]/)
  })

  it('?code= and &code= (authorization codes), and passwords in URLs', () => {
    assert.equal(
      scrub('http://127.0.0.1:5000/?code=M.C507_BAY.2.U.abc-123&state=xyz'),
      'http://127.0.0.1:5000/?code=[redacted]&state=xyz',
    )
    assert.equal(scrub('GET /cb?state=1&code=4/0AY0e-g7&scope=x'), 'GET /cb?state=1&code=[redacted]&scope=x')
    assert.equal(scrub('?password=hunter2'), '?password=[redacted]')
  })

  it('does NOT change ordinary messages', () => {
    const ordinary = [
      'exit code: 75',
      'refresh token for "a@b" was rejected by login.microsoftonline.com (invalid_grant)',
      'login.microsoftonline.com refused refreshing the token for "a@b.c": invalid_grant (AADSTS700082: the refresh token expired after 90 days without use)',
      'cannot reach login.example.com for "a@b.c" (ECONNREFUSED)',
      'the sign-in code for "a@b.c" expired before it was used',
      'login.example.com issued a "dpop" token for "a@b.c"; mail servers need a Bearer token',
      'OAUTHBEARER response must start with a GS2 header "n," or "y,"',
      'OAUTHBEARER key/value section must be framed by \\x01',
      'OAUTHBEARER auth field is not a Bearer credential',
      'XOAUTH2 response must be "user=...\\x01auth=Bearer ...\\x01\\x01"',
      'MAILKEY_SASL must be XOAUTH2 or OAUTHBEARER, not "PLAIN"',
      '--sasl must be xoauth2 or oauthbearer, not "plain"',
      'Run "mailkey add a@b.c --device" to sign in again.',
      'the token endpoint "https://login.example.com/token?x=1" must use https',
      'the code expires in 14:32',
      'a@b.c: token valid 59:59 (scope https://outlook.office.com/IMAP.AccessAsUser.All offline_access)',
      'Secret [redacted:0123abcd]',
      '',
    ]
    for (const text of ordinary) {
      assert.equal(scrub(text), text, text)
      assert.equal(wouldScrub(text), false, text)
    }
  })

  it('scrubs every occurrence, not just the first', () => {
    const out = scrub(`Bearer ${TOKEN} and again Bearer ${TOKEN}`)
    assert.equal(out, 'Bearer [redacted] and again Bearer [redacted]')
  })

  it('is idempotent', () => {
    const once = scrub(`{"access_token":"${TOKEN}"} Bearer ${TOKEN} ?code=abc`)
    assert.equal(scrub(once), once)
  })
})
