// The proxy's verdict on a failed upstream login (issue 11, item 5): a shortage of this process,
// even as a plain Error from a module that could not be loaded, and a login interrupted while it
// waited for a refresh, are transient; only the account's own problems are config or reauth.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  ConfigError,
  ERR,
  InterruptedError,
  ReauthRequiredError,
  StoreError,
  TransientError,
} from '../../src/errors.js'
import { failureOutcome } from '../../src/proxy/outcome.js'

/** what import() gives when it cannot open the module (measured on Node 20) */
function importFailure(code: string): Error {
  return Object.assign(new Error(`${code}: too many open files, open '/opt/mailkey/dist/oauth/classify.js'`), {
    code,
    errno: -24,
    syscall: 'open',
  })
}

describe('proxy login outcome', () => {
  it('a module that could not be opened for lack of descriptors is transient, and says what ran out', () => {
    for (const code of ['EMFILE', 'ENFILE']) {
      const v = failureOutcome(importFailure(code))
      assert.equal(v.outcome, 'transient')
      assert.match(v.reason, new RegExp(code))
    }
  })

  it('a shortage deeper in the cause chain is transient; one without its code in the message names it', () => {
    const v = failureOutcome(new Error('refresh failed', { cause: importFailure('EMFILE') }))
    assert.deepEqual(v, {
      outcome: 'transient',
      reason: 'refresh failed: this process ran out of file descriptors (EMFILE)',
    })
  })

  it('a login interrupted while waiting for a refresh is transient', () => {
    assert.equal(failureOutcome(new InterruptedError('interrupted while waiting for a refresh')).outcome, 'transient')
  })

  it("the account's own problems keep their verdict", () => {
    assert.equal(failureOutcome(new ReauthRequiredError(ERR.NO_REFRESH_TOKEN, 'no refresh token')).outcome, 'reauth')
    assert.equal(failureOutcome(new ConfigError(ERR.USAGE, 'bad setting')).outcome, 'config')
    assert.equal(failureOutcome(new StoreError(ERR.STORE_CORRUPT, 'corrupt record')).outcome, 'config')
    assert.equal(failureOutcome(new TransientError(ERR.INTERNAL, 'server busy')).outcome, 'transient')
    assert.equal(failureOutcome(new Error('something else')).outcome, 'config')
  })
})
