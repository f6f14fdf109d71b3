// core/address.ts: which addresses mailkey takes (RFC 5322 §3.4.1 addr-specs), and how a refused
// one is named (quoted, controls escaped) and quoted for a suggested shell command.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { addressProblem, quoted, shArg } from '../../src/core/address.js'
import { assertEmail } from '../../src/domain/account.js'
import { ERR, ReauthRequiredError, StoreError, UsageError } from '../../src/errors.js'
import { tmpdir } from 'node:os'
import { cliHint } from '../../src/cli/hints.js'
import { unknownAccount } from '../../src/broker/broker.js'

describe('addresses', () => {
  it('takes dot-atoms with every atext character, quoted strings, UTF-8, single-label domains', () => {
    for (const ok of [
      'a`x`b@example.com',
      "o'brien@example.com",
      "!#$%&'*+-/=?^_`{|}~@example.com",
      'a.b.c@example.com',
      '"a b;c(d)"@example.com',
      '"a\\"b"@example.com',
      'ünï@bücher.de',
      'root@localhost',
    ]) {
      assert.equal(addressProblem(ok), undefined, ok)
    }
  })
  it('refuses what is not an addr-spec, saying why', () => {
    const cases: [string, RegExp][] = [
      ['a$(x)b@example.com', /"\(" is not allowed before the "@"/],
      ['a;b@example.com', /";" is not allowed/],
      ['a>b@example.com', /">" is not allowed/],
      ['a b@example.com', /a space is not allowed/],
      ['a\nb@example.com', /a control character \(U\+000A\)/],
      ['a\u009bb@example.com', /a control character \(U\+009B\)/],
      ['a..b@example.com', /neither dot-separated words/],
      ['.a@example.com', /neither dot-separated words/],
      ['"a"b"@example.com', /neither dot-separated words/],
      ['nobody', /no "@"/],
      ['@example.com', /nothing comes before/],
      ['a@', /nothing comes after/],
      ['a@b/c.d', /is not a host name/],
      ['a@exa;mple.com', /is not a host name/],
      ['a@[127.0.0.1]', /address literal/],
      [`${'a'.repeat(65)}@example.com`, /64 bytes/],
      [`a@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(10)}.com`, /254 bytes/],
    ]
    for (const [bad, why] of cases) assert.match(addressProblem(bad) ?? 'taken', why, JSON.stringify(bad))
  })
  it('assertEmail names a refused address quoted, controls escaped, with the next command', () => {
    try {
      assertEmail('a$(touch x)\x1b[2Jb@example.com')
      assert.fail('taken')
    } catch (e) {
      assert.ok(e instanceof UsageError)
      assert.doesNotMatch(e.message, /\x1b/)
      assert.match(e.message, /^"a\$\(touch x\)\\u001b\[2Jb@example\.com" is not an e-mail address: /)
      assert.match(e.hint ?? '', /mailkey add you@outlook\.com/)
    }
    assert.equal(assertEmail(' A`X`b@Example.com '), 'a`x`b@example.com')
  })
  it('quoted() escapes C1 controls and line separators that JSON leaves alone', () => {
    assert.equal(quoted('a\u0085b\u2028c'), '"a\\u0085b\\u2028c"')
  })
  it('shArg: a real sh gives back exactly the address, whatever atext it holds', () => {
    for (const a of ['a`id`b@x', "o'|id|'@x", 'a$(id)@x', '~root@x', '!x&y@x']) {
      assert.equal(execFileSync('/bin/sh', ['-c', `printf '%s' ${shArg(a)}`], { encoding: 'utf8' }), a)
    }
  })
  it('hints that suggest a command quote the address for sh: run as printed, mailkey gets exactly it', () => {
    const addr = 'a`touch${IFS}pwned`|x@example.com'
    const hints = [
      cliHint(new StoreError(ERR.STORE_LOCK_TIMEOUT, 'busy', { account: addr })),
      cliHint(new ReauthRequiredError(ERR.REAUTH_REQUIRED, 'refused', { account: addr })),
      unknownAccount(addr).hint,
    ]
    for (const hint of hints) {
      const cmd = /"(mailkey [^"]*)"/.exec(hint ?? '')?.[1]
      assert.ok(cmd, hint)
      // mailkey as a shell function that prints its arguments, one per line
      const out = execFileSync('/bin/sh', ['-c', `mailkey() { printf '%s\\n' "$@"; }; ${cmd}`], {
        encoding: 'utf8',
        cwd: tmpdir(),
      })
      assert.equal(out.split('\n')[1], addr, hint)
    }
  })
})
