// nextGrant (broker/grant.ts): the grant after a token response, for a refresh and a sign-in alike.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ASSUMED_LIFETIME_SEC, nextGrant } from '../../src/broker/grant.js'
import { Secret } from '../../src/core/secret.js'

const NOW = 1_800_000_000_000

describe('nextGrant', () => {
  it('starts a grant at a sign-in', () => {
    const g = nextGrant(
      undefined,
      { accessToken: new Secret('at'), refreshToken: new Secret('rt'), tokenType: 'Bearer', expiresIn: 60, scope: 's' },
      NOW,
    )
    assert.deepEqual(g, {
      grantedAt: NOW,
      accessToken: 'at',
      tokenType: 'Bearer',
      expiresAt: NOW + 60_000,
      refreshedAt: NOW,
      refreshToken: 'rt',
      refreshTokenAt: NOW,
      scope: 's',
    })
  })

  it('keeps the grant, the refresh token and its age when the server does not rotate it', () => {
    const prev = { grantedAt: 1, refreshToken: 'rt-0', refreshTokenAt: 2, scope: 'old', seededFrom: 'fp' }
    const g = nextGrant(prev, { accessToken: new Secret('at-1'), tokenType: 'bearer' }, NOW)
    assert.equal(g.grantedAt, 1)
    assert.equal(g.refreshToken, 'rt-0')
    assert.equal(g.refreshTokenAt, 2)
    assert.equal(g.scope, 'old')
    assert.equal(g.seededFrom, 'fp')
    assert.equal(g.expiresAt, NOW + ASSUMED_LIFETIME_SEC * 1000, 'no expires_in: an hour is assumed')
    assert.equal(ASSUMED_LIFETIME_SEC, 3600)
  })

  it('stores a rotated refresh token and when it came', () => {
    const g = nextGrant(
      { grantedAt: 1, refreshToken: 'rt-0', refreshTokenAt: 2 },
      { accessToken: new Secret('at-1'), refreshToken: new Secret('rt-1'), tokenType: 'Bearer', expiresIn: 10 },
      NOW,
    )
    assert.equal(g.refreshToken, 'rt-1')
    assert.equal(g.refreshTokenAt, NOW)
    assert.equal(g.refreshedAt, NOW)
  })
})
