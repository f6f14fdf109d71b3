// Issue 16: one grant, two resources. The Graph token lives beside the mail token
// (broker/grant.ts), freshness is asked per resource (broker/freshness.ts), a refresh names its
// resource's scopes (broker/refresh.ts refreshScope), and an encrypted store seals both tokens.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { nextGrant } from '../../src/broker/grant.js'
import { goodEnough, tokenOf } from '../../src/broker/freshness.js'
import { refreshScope } from '../../src/broker/refresh.js'
import { Secret } from '../../src/core/secret.js'
import { ERR, ReauthRequiredError } from '../../src/errors.js'
import { openRecord, sealRecord } from '../../src/store/seal.js'
import type { AccountRecord, AccountSettings } from '../../src/domain/account.js'

const NOW = 1_800_000_000_000
const MAIL = [
  'https://outlook.office.com/IMAP.AccessAsUser.All',
  'https://outlook.office.com/SMTP.Send',
  'offline_access',
]
const GRAPH = ['https://graph.microsoft.com/Mail.Send']

const settings = (graph: boolean): AccountSettings => ({
  email: 'a@example.test',
  provider: 'microsoft',
  clientId: 'c',
  scopes: MAIL,
  endpoints: { token: 'https://login.example/token' },
  servers: { smtp: 'smtp://smtp.example:587', ...(graph ? { graph: 'https://graph.example/v1.0' } : {}) },
  sasl: 'XOAUTH2',
  flow: 'device',
  ...(graph ? { resources: { graph: { scopes: GRAPH } } } : {}),
})

const tokens = (at: string, rt?: string, expiresIn = 3600) => ({
  accessToken: new Secret(at),
  tokenType: 'Bearer',
  expiresIn,
  ...(rt ? { refreshToken: new Secret(rt) } : {}),
})

describe('a Graph token beside the mail token', () => {
  const mail = nextGrant(undefined, tokens('mail-at', 'rt-1'), NOW)
  it('a Graph refresh keeps the mail token and stores its own', () => {
    const g = nextGrant(mail, tokens('graph-at', 'rt-2', 600), NOW + 5, 'graph')
    assert.equal(g.accessToken, 'mail-at')
    assert.equal(g.expiresAt, NOW + 3600_000)
    assert.deepEqual(g.resources?.graph, {
      accessToken: 'graph-at',
      tokenType: 'Bearer',
      expiresAt: NOW + 5 + 600_000,
      refreshedAt: NOW + 5,
    })
  })
  it("a rotated refresh token from either resource's refresh becomes the grant's", () => {
    const g = nextGrant(mail, tokens('graph-at', 'rt-2'), NOW + 5, 'graph')
    assert.equal(g.refreshToken, 'rt-2')
    assert.equal(g.refreshTokenAt, NOW + 5)
    const m = nextGrant(g, tokens('mail-at-2', 'rt-3'), NOW + 9)
    assert.equal(m.refreshToken, 'rt-3')
    assert.equal(m.resources?.graph?.accessToken, 'graph-at', 'a mail refresh keeps the Graph token')
  })
  it('without rotation the refresh token stays', () => {
    assert.equal(nextGrant(mail, tokens('graph-at'), NOW + 5, 'graph').refreshToken, 'rt-1')
  })
  it('freshness is per resource', () => {
    const rec: AccountRecord = { v: 1, settings: settings(true), state: 'active', grant: mail, updatedAt: NOW }
    const want = { force: false, since: NOW, minSec: 300 }
    assert.equal(goodEnough(rec, want, NOW + 1000), true)
    assert.equal(goodEnough(rec, { ...want, resource: 'graph' }, NOW + 1000), false)
    rec.grant = nextGrant(mail, tokens('graph-at'), NOW, 'graph')
    assert.equal(goodEnough(rec, { ...want, resource: 'graph' }, NOW + 1000), true)
    assert.equal(tokenOf(rec.grant, 'graph')?.accessToken, 'graph-at')
    assert.equal(tokenOf(rec.grant, undefined)?.accessToken, 'mail-at')
    // forced: refreshed since the caller asked, for that resource
    assert.equal(goodEnough(rec, { force: true, since: NOW + 1, minSec: 0, resource: 'graph' }, NOW + 2), false)
  })
})

describe('the scope of a refresh (one resource per token on Microsoft v2)', () => {
  it('a mail-only grant sends no scope, as before', () =>
    assert.equal(refreshScope(settings(false), undefined), undefined))
  it('a grant with Graph names the mail scopes for a mail token', () =>
    assert.deepEqual(refreshScope(settings(true), undefined), MAIL))
  it('and the Graph scope with offline_access for a Graph token', () =>
    assert.deepEqual(refreshScope(settings(true), 'graph'), [...GRAPH, 'offline_access']))
  it('a grant without Graph: a sign-in error naming add --graph', () => {
    assert.throws(
      () => refreshScope(settings(false), 'graph'),
      (e: unknown) =>
        e instanceof ReauthRequiredError &&
        e.code === ERR.GRAPH_NOT_GRANTED &&
        /mailkey add a@example.test --graph/.test(e.hint ?? ''),
    )
  })
})

describe('an encrypted store seals the Graph token too', () => {
  it('seals and opens both access tokens; neither is readable in the sealed record', () => {
    const grant = nextGrant(
      nextGrant(undefined, tokens('mail-at-secret', 'rt-secret'), NOW),
      tokens('graph-at-secret'),
      NOW,
      'graph',
    )
    const rec: AccountRecord = { v: 1, settings: settings(true), state: 'active', grant, updatedAt: NOW }
    const key = randomBytes(32)
    const sealed = sealRecord(rec, 'a@example.test', key, 'k1')
    const text = JSON.stringify(sealed)
    for (const s of ['mail-at-secret', 'rt-secret', 'graph-at-secret']) assert.ok(!text.includes(s), s)
    assert.equal(sealed.grant?.resources?.graph?.sealed, true)
    assert.equal(sealed.grant?.resources?.graph?.expiresAt, NOW + 3600_000, 'expiry stays readable')
    assert.deepEqual(openRecord(sealed, 'a@example.test', key), rec)
  })
})
