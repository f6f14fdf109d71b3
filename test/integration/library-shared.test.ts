// The library on a shared store (issue 13: "the library works unchanged on a shared store"): the
// built package's createMailkey() with MAILKEY_STORE_URL and a store key, in this process, against
// a real PostgreSQL and the real OAuth server with strict rotation. Sign-in, getAccessToken fresh
// and after expiry, two instances with their own HOMEs asking at once (one refresh), status, list,
// remove, and importRefreshToken on one instance used from another.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { startOAuthServer, LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile } from '../harness/tmp-home.js'
import { assertBuilt, noteSecrets } from '../harness/cli.js'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT, type PgServer } from '../harness/postgres.js'
import { checkFleet, makeFleet, sha256, type FleetStore, type Host } from '../harness/fleet.js'
import type * as Mailkey from '../../src/index.js'

if (!postgresAvailable() && process.env.CI)
  throw new Error(`the library tests need PostgreSQL: ${POSTGRES_INSTALL_HINT}`)

const SCOPE = [...MAIL_SCOPES, 'offline_access']
const EMAIL = 'lib@example.test'
const IMPORTED = 'imported@example.test'

describe('library on a shared PostgreSQL store', { skip: !postgresAvailable() && 'PostgreSQL missing' }, () => {
  let mk: typeof Mailkey
  let srv: PgServer
  let lab: LabServer
  let fleet: FleetStore
  let a: Host
  let b: Host

  before(async () => {
    assertBuilt()
    mk = (await import(new URL('../../dist/index.js', import.meta.url).href)) as typeof Mailkey
    ;[srv, lab] = await Promise.all([startPostgres(), startOAuthServer({ accessTokenTtlSec: 600, deviceInterval: 1 })])
    fleet = await makeFleet({ url: srv.url, env: () => srv.env() })
    await (await fleet.open()).backend.init()
    a = await fleet.host('a')
    b = await fleet.host('b')
  })
  after(async () => {
    await fleet?.cleanup()
    await Promise.all([srv?.close(), lab?.close()])
  })

  it('signs in through the library onto the shared store, and hands out its token', async () => {
    const m = mk.createMailkey({ env: a.env })
    const status = await m.signIn({
      email: EMAIL,
      issuer: lab.issuer,
      clientId: LAB_PUBLIC_CLIENT_ID,
      scopes: SCOPE,
      flow: 'device',
      onDevicePrompt: (p) => void lab.approveDevice(p.userCode, { login: EMAIL }),
    })
    assert.equal(status.state, 'active')
    assert.deepEqual(status.storage, { kind: 'shared', store: srv.url, encrypted: true, protection: 'store-key' })
    const rec = await fleet.record(EMAIL)
    assert.ok(rec?.grant?.accessToken && rec.grant.refreshToken, 'the grant is in the shared store')
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
    await assert.rejects(readFile(recordFile(a.env, EMAIL)), 'no local record file')
    lab.resetCounts()
    const t = await mk.createMailkey({ env: b.env }).getAccessToken(EMAIL)
    assert.equal(t.refreshed, false)
    assert.equal(t.token.reveal(), rec.grant.accessToken, 'another HOME gets the same fresh token')
    assert.equal(lab.counts.refresh, 0)
  })

  it('after expiry, getAccessToken refreshes once and stores the rotated token', async () => {
    const m = mk.createMailkey({ env: a.env })
    const before = await fleet.record(EMAIL)
    await fleet.expire(EMAIL)
    const from = lab.refreshLog.length
    const t = await m.getAccessToken(EMAIL)
    await noteSecrets(t.token.reveal())
    assert.equal(t.refreshed, true)
    assert.notEqual(t.token.reveal(), before?.grant?.accessToken)
    const after = await fleet.record(EMAIL)
    assert.equal(after?.grant?.accessToken, t.token.reveal())
    assert.notEqual(after?.grant?.refreshToken, before?.grant?.refreshToken, 'the rotated refresh token is stored')
    await noteSecrets(after?.grant?.refreshToken)
    const report = await checkFleet(lab, fleet, EMAIL, from)
    assert.equal(report.refreshes, 1)
    assert.ok(report.storedIsLatest)
    assert.equal((await lab.introspect(t.token.reveal())).email, EMAIL)
  })

  it('two instances with their own HOMEs asking at once after expiry cost one refresh', async () => {
    const m1 = mk.createMailkey({ env: a.env })
    const m2 = mk.createMailkey({ env: b.env })
    await fleet.expire(EMAIL)
    const from = lab.refreshLog.length
    const asks = Array.from({ length: 20 }, (_, i) => (i % 2 ? m1 : m2).getAccessToken(EMAIL))
    const all = await Promise.all(asks)
    const tokens = new Set(all.map((t) => t.token.reveal()))
    assert.equal(tokens.size, 1, 'every caller got the same token')
    const after = await fleet.record(EMAIL)
    assert.equal([...tokens][0], after?.grant?.accessToken)
    await noteSecrets(after?.grant?.accessToken, after?.grant?.refreshToken)
    const report = await checkFleet(lab, fleet, EMAIL, from)
    assert.equal(report.refreshes, 1, 'one refresh for both instances')
    assert.deepEqual(report.reused, [])
    assert.ok(report.storedIsLatest)
    assert.equal(sha256(after?.grant?.refreshToken as string), lab.refreshLog.at(-1)?.issuedRefresh)
  })

  it('status and list through the facade show the shared account on any host', async () => {
    const m = mk.createMailkey({ env: b.env })
    const s = await m.status(EMAIL.toUpperCase())
    assert.equal(s.email, EMAIL)
    assert.equal(s.state, 'active')
    assert.equal(s.accessToken.valid, true)
    assert.equal(s.refreshToken.present, true)
    assert.equal(s.storage.kind, 'shared')
    const { accounts, broken } = await m.list()
    assert.deepEqual(broken, [])
    assert.deepEqual(
      accounts.map((x) => [x.email, x.storage.kind]),
      [[EMAIL, 'shared']],
    )
    const rec = await m.record(EMAIL)
    assert.equal(rec?.settings.clientId, LAB_PUBLIC_CLIENT_ID)
  })

  it('importRefreshToken onto the shared store, then getAccessToken from another instance', async () => {
    // a grant from elsewhere: signed in on a host with the file store
    const other = await makeTmpHome()
    let foreign: string
    try {
      await mk.createMailkey({ env: other.env }).signIn({
        email: IMPORTED,
        issuer: lab.issuer,
        clientId: LAB_PUBLIC_CLIENT_ID,
        scopes: SCOPE,
        flow: 'device',
        onDevicePrompt: (p) => void lab.approveDevice(p.userCode, { login: IMPORTED }),
      })
      const raw = JSON.parse(await readFile(recordFile(other.env, IMPORTED), 'utf8')) as {
        grant: { refreshToken: string; accessToken: string }
      }
      foreign = raw.grant.refreshToken
      await noteSecrets(raw.grant.accessToken, foreign)
    } finally {
      await other.cleanup()
    }
    lab.resetCounts()
    const status = await mk.createMailkey({ env: a.env }).importRefreshToken({
      email: IMPORTED,
      issuer: lab.issuer,
      clientId: LAB_PUBLIC_CLIENT_ID,
      scopes: SCOPE,
      refreshToken: new mk.Secret(foreign),
    })
    assert.equal(status.flow, 'import')
    assert.equal(status.storage.kind, 'shared')
    assert.equal(lab.counts.refresh, 1, 'checked with one refresh')
    const stored = await fleet.record(IMPORTED)
    assert.ok(stored?.grant?.refreshToken)
    assert.notEqual(stored.grant.refreshToken, foreign, 'the rotated refresh token is stored')
    await noteSecrets(stored.grant.accessToken, stored.grant.refreshToken)
    const t = await mk.createMailkey({ env: b.env }).getAccessToken(IMPORTED)
    assert.equal(t.refreshed, false)
    assert.equal(t.token.reveal(), stored.grant.accessToken)
    assert.equal((await lab.introspect(t.token.reveal())).email, IMPORTED)
    assert.equal(lab.counts.refresh, 1, 'no second refresh')
  })

  it('remove through the facade forgets the account for every host', async () => {
    const r = await mk.createMailkey({ env: b.env }).remove(IMPORTED, { revoke: false })
    assert.equal(r.removed, true)
    assert.equal(await fleet.record(IMPORTED), undefined)
    await assert.rejects(
      mk.createMailkey({ env: a.env }).getAccessToken(IMPORTED),
      (e: unknown) => e instanceof mk.ConfigError && e.code === mk.ERR.ACCOUNT_UNKNOWN,
    )
    const { accounts } = await mk.createMailkey({ env: a.env }).list()
    assert.deepEqual(
      accounts.map((x) => x.email),
      [EMAIL],
    )
  })
})
