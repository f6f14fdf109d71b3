// withRetry (broker/retry.ts): backoff and Retry-After with an injected sleep, no real waiting.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { backoffMs, withRetry, type RetryOptions } from '../../src/broker/retry.js'
import { ERR, MailkeyError, ProtocolError, TransientError } from '../../src/errors.js'

function options(slept: number[], extra: Partial<RetryOptions> = {}): RetryOptions {
  return {
    maxAttempts: 3,
    maxRetryAfterSec: 10,
    sleep: async (ms) => void slept.push(ms),
    random: () => 0.5,
    account: 'a@example.test',
    toError: (e) => e as MailkeyError,
    ...extra,
  }
}

const down = (retryAfterSec?: number): TransientError =>
  new TransientError(ERR.OAUTH_TRANSIENT, 'down', retryAfterSec === undefined ? {} : { retryAfterSec })

describe('withRetry', () => {
  it('waits 0.5 s then 1.5 s (plus jitter) between three attempts', async () => {
    const slept: number[] = []
    let n = 0
    const r = await withRetry(async () => {
      if (++n < 3) throw down()
      return 'ok'
    }, options(slept))
    assert.equal(r, 'ok')
    assert.deepEqual(slept, [625, 1625])
  })

  it('gives up after maxAttempts with the last error', async () => {
    const slept: number[] = []
    await assert.rejects(
      withRetry(
        async () => {
          throw down()
        },
        options(slept, { maxAttempts: 2 }),
      ),
      /down/,
    )
    assert.equal(slept.length, 1)
  })

  it('waits out a Retry-After it accepts, and fails at once on a longer one, saying how long', async () => {
    const slept: number[] = []
    let n = 0
    await withRetry(async () => {
      if (++n === 1) throw down(3)
    }, options(slept))
    assert.deepEqual(slept, [3000])
    const none: number[] = []
    await assert.rejects(
      withRetry(async () => {
        throw down(120)
      }, options(none)),
      (e: unknown) => e instanceof TransientError && e.retryAfterSec === 120 && /Retry-After: 120/.test(e.message),
    )
    assert.deepEqual(none, [])
  })

  it('does not retry what is not transient', async () => {
    const slept: number[] = []
    let n = 0
    await assert.rejects(
      withRetry(async () => {
        n++
        throw new ProtocolError(ERR.OAUTH_PROTOCOL, 'bad')
      }, options(slept)),
      ProtocolError,
    )
    assert.equal(n, 1)
    assert.deepEqual(slept, [])
  })

  it('backoffMs: the server says, or 500 ms times 3^(n-1) plus up to 250 ms', () => {
    assert.equal(
      backoffMs(1, undefined, () => 0),
      500,
    )
    assert.equal(
      backoffMs(2, undefined, () => 0.999),
      1749,
    )
    assert.equal(
      backoffMs(5, 2, () => 0.5),
      2000,
    )
  })
})
