// store/shared/fail-fast.ts: once a shared store is found unreachable, operations fail at once for
// FAIL_FAST_MS with the same error instead of each waiting out a timeout; other errors never trip
// it, and the first success clears it. The clock is injected.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { FailFast, FAIL_FAST_MS } from '../../src/store/shared/fail-fast.js'
import type { SharedBackend } from '../../src/store/shared/backend.js'
import { ERR, StoreError } from '../../src/errors.js'

function backend(fail: () => Error | undefined): { b: SharedBackend; calls: number[] } {
  const calls: number[] = []
  const op = async <T>(v: T): Promise<T> => {
    calls.push(1)
    const e = fail()
    if (e) throw e
    return v
  }
  const b = {
    label: 'postgres://mailkey@db/mailkey',
    get: () => op(undefined),
    release: () => op(undefined),
  } as unknown as SharedBackend
  return { b, calls }
}

it('an unreachable store fails at once for a while, then is asked again', async () => {
  let now = 1_000
  let down = true
  const err = new StoreError(ERR.STORE_UNAVAILABLE, 'the shared store is unavailable')
  const { b, calls } = backend(() => (down ? err : undefined))
  const ff = new FailFast(b, () => now)
  await assert.rejects(ff.get('a'), (e) => e === err)
  await assert.rejects(ff.release('a', 1), (e) => e === err)
  assert.equal(calls.length, 1, 'the second operation did not reach the store')
  now += FAIL_FAST_MS
  down = false
  assert.equal(await ff.get('a'), undefined)
  assert.equal(calls.length, 2)
})

it('other errors do not trip it', async () => {
  const { b, calls } = backend(() => new StoreError(ERR.STORE_IO, 'disk on fire'))
  const ff = new FailFast(b, () => 0)
  await assert.rejects(ff.get('a'), /disk on fire/)
  await assert.rejects(ff.get('a'), /disk on fire/)
  assert.equal(calls.length, 2)
})
