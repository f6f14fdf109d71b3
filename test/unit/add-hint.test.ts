/**
 * cliHint after a failed `add`: no account was set up, so the advice never points at `status`
 * (which would answer "no account ... is set up") but at running `add` again.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { cliHint } from '../../src/cli/hints.js'
import { ConfigError, ERR, StoreError, TransientError } from '../../src/errors.js'

const A = 'you@example.com'

describe('cliHint after a failed add', () => {
  it('a transient failure: run add again, no status', () => {
    const e = new TransientError(ERR.OAUTH_TRANSIENT, 'cannot reach x', { account: A })
    assert.equal(cliHint(e, 'add'), `No account was set up; run "mailkey add ${A}" again in a minute.`)
    assert.match(cliHint(e) ?? '', /mailkey status/, 'other commands keep the status advice')
    const later = new TransientError(ERR.OAUTH_TRANSIENT, 'busy', { account: A, retryAfterSec: 600 })
    assert.match(cliHint(later, 'add') ?? '', /^No account was set up; run "mailkey add you@example\.com" again in 10/)
    const lock = new StoreError(ERR.STORE_LOCK_TIMEOUT, 'busy', { account: A })
    assert.doesNotMatch(cliHint(lock, 'add') ?? '', /status/)
  })

  it('a configuration failure: add again with corrected flags, no status', () => {
    const e = new ConfigError(ERR.OAUTH_CONFIG, 'no TLS there', { account: A })
    const hint = cliHint(e, 'add') ?? ''
    assert.match(hint, /^No account was set up; run "mailkey add you@example\.com" again with corrected flags/)
    assert.doesNotMatch(hint, /status/)
  })
})
