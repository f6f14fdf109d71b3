import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { LoginPenalty } from '../../src/proxy/penalty.js'

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000
  return {
    now: () => t,
    advance: (ms) => {
      t += ms
    },
  }
}

describe('LoginPenalty (failed local-password checks)', () => {
  it('the first failures are free, then the delay doubles up to the cap', () => {
    const c = clock()
    const p = new LoginPenalty({ now: c.now, freePerUser: 3, freePerAddress: 100, baseMs: 1000, maxMs: 15_000 })
    const seen: number[] = []
    for (let i = 0; i < 9; i++) {
      seen.push(p.delayMs('127.0.0.1', 'alice@example.test'))
      p.failed('127.0.0.1', 'alice@example.test')
    }
    assert.deepEqual(seen, [0, 0, 0, 1000, 2000, 4000, 8000, 15_000, 15_000])
  })

  it('keys on address and user name: other users and other addresses are not slowed', () => {
    const c = clock()
    const p = new LoginPenalty({ now: c.now, freePerUser: 1, freePerAddress: 100 })
    for (let i = 0; i < 4; i++) p.failed('127.0.0.1', 'Alice@Example.test ')
    assert.ok(p.delayMs('127.0.0.1', 'alice@example.test') > 0, 'user names compare case- and space-insensitively')
    assert.equal(p.delayMs('127.0.0.1', 'bob@example.test'), 0)
    assert.equal(p.delayMs('::1', 'alice@example.test'), 0)
  })

  it('spraying many user names from one address is slowed per address', () => {
    const c = clock()
    const p = new LoginPenalty({ now: c.now, freePerUser: 3, freePerAddress: 5, baseMs: 500 })
    for (let i = 0; i < 6; i++) p.failed('10.0.0.9', `user${i}@example.test`)
    assert.equal(p.delayMs('10.0.0.9', 'fresh@example.test'), 1000, '6 failures, 5 free: 500 x 2^1')
    assert.equal(p.delayMs('10.0.0.8', 'fresh@example.test'), 0)
  })

  it('a success clears the pair; counters are forgotten after forgetMs', () => {
    const c = clock()
    const p = new LoginPenalty({ now: c.now, freePerUser: 1, freePerAddress: 100, forgetMs: 60_000 })
    p.failed('127.0.0.1', 'a@x.test')
    p.failed('127.0.0.1', 'a@x.test')
    assert.ok(p.delayMs('127.0.0.1', 'a@x.test') > 0)
    p.succeeded('127.0.0.1', 'a@x.test')
    assert.equal(p.delayMs('127.0.0.1', 'a@x.test'), 0)
    p.failed('127.0.0.1', 'b@x.test')
    p.failed('127.0.0.1', 'b@x.test')
    c.advance(60_001)
    assert.equal(p.delayMs('127.0.0.1', 'b@x.test'), 0)
  })

  it('holds at most maxEntries counters, dropping the oldest', () => {
    const c = clock()
    const p = new LoginPenalty({ now: c.now, maxEntries: 50, freePerUser: 0, freePerAddress: 1000 })
    for (let i = 0; i < 1000; i++) p.failed(`10.0.${i >> 8}.${i & 255}`, 'x@y.test')
    assert.ok(p.size <= 50, `${p.size} counters`)
    assert.ok(p.delayMs('10.0.3.231', 'x@y.test') > 0, 'the newest is kept')
    assert.equal(p.delayMs('10.0.0.0', 'x@y.test'), 0, 'the oldest was dropped')
  })
})
