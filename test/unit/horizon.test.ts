import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { describeHorizon, grantHorizon, lastGrantUse, needsKeepAlive, spreadOf } from '../../src/broker/horizon.js'
import type { GrantRecord } from '../../src/domain/account.js'

const DAY = 86_400_000
const NOW = Date.UTC(2026, 10, 22)
const grant = (o: Partial<GrantRecord>): GrantRecord => ({ refreshToken: 'rt', grantedAt: NOW - 100 * DAY, ...o })

describe('grant horizons', () => {
  it('idle: counted from the last refresh (or when the refresh token came), warned about inside the last 14 days', () => {
    const g = grant({ refreshedAt: NOW - 80 * DAY, refreshTokenAt: NOW - 85 * DAY })
    assert.equal(lastGrantUse(g), NOW - 80 * DAY)
    const h = grantHorizon(g, { idleDays: 90 }, NOW)
    assert.ok(h)
    assert.equal(h.kind, 'idle')
    assert.equal(h.at, NOW + 10 * DAY)
    assert.equal(h.daysLeft, 10)
    assert.equal(h.warn, true)
    assert.equal(
      grantHorizon(grant({ refreshedAt: NOW - 70 * DAY }), { idleDays: 90 }, NOW)?.warn,
      false,
      '20 days left',
    )
    assert.match(
      describeHorizon('a@x.test', h),
      /expires on 2026-12-02 \(in 10 days\) unless it is used: unused refresh tokens live 90 days; "mailkey token a@x\.test --force-refresh"/,
    )
  })
  it('max-age: from sign-in whatever the use; a short span warns in its last quarter', () => {
    const g = grant({ grantedAt: NOW - 5.5 * DAY, refreshedAt: NOW - 60_000 })
    const h = grantHorizon(g, { maxAgeDays: 7, idleDays: 90 }, NOW)
    assert.ok(h)
    assert.equal(h.kind, 'max-age', 'the nearer horizon wins')
    assert.equal(h.daysLeft, 1)
    assert.equal(h.warn, true, '1.5 of 7 days left: under a quarter')
    assert.equal(grantHorizon(grant({ grantedAt: NOW - 4 * DAY }), { maxAgeDays: 7 }, NOW)?.warn, false)
    assert.match(describeHorizon('a@x.test', { ...h, daysLeft: -1 }), /ended on .* run "mailkey add a@x\.test"/)
  })
  it('no policy, or no refresh token: no horizon', () => {
    assert.equal(grantHorizon(grant({}), {}, NOW), undefined)
    assert.equal(grantHorizon({ grantedAt: NOW }, { idleDays: 90 }, NOW), undefined)
  })
  it('keep-alive once half the idle span has passed, never without an idle limit', () => {
    assert.equal(needsKeepAlive(grant({ refreshedAt: NOW - 46 * DAY }), { idleDays: 90 }, NOW), true)
    assert.equal(needsKeepAlive(grant({ refreshedAt: NOW - 44 * DAY }), { idleDays: 90 }, NOW), false)
    assert.equal(needsKeepAlive(grant({ refreshedAt: NOW - 400 * DAY }), { maxAgeDays: 7 }, NOW), false)
  })
  it('keep-alive points are spread per account over a tenth of the span, the same each time', () => {
    const ids = Array.from({ length: 200 }, (_, i) => `user${i}@contoso.test`)
    const spreads = ids.map(spreadOf)
    for (const s of spreads) assert.ok(s >= 0 && s < 1)
    assert.deepEqual(ids.map(spreadOf), spreads, 'stable')
    assert.ok(new Set(spreads.map((s) => Math.floor(s * 10))).size >= 8, 'spread over the range')
    const policy = { idleDays: 90 }
    for (const [i, id] of ids.entries()) {
      const at = 45 + 9 * (spreads[i] as number) // days after the last use
      assert.equal(needsKeepAlive(grant({ refreshedAt: NOW - (at - 0.01) * DAY }), policy, NOW, id), false, id)
      assert.equal(needsKeepAlive(grant({ refreshedAt: NOW - (at + 0.01) * DAY }), policy, NOW, id), true, id)
    }
    // every account is refreshed by 54 of 90 days: far before the limit
    for (const id of ids) assert.equal(needsKeepAlive(grant({ refreshedAt: NOW - 54.01 * DAY }), policy, NOW, id), true)
  })
})
