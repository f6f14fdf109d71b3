// The fleet cases (issue 13, docs/adr/0011), run on each shared store engine (test/e2e/fleet.test.ts
// on PostgreSQL, test/e2e/fleet-redis.test.ts on Redis): hosts are separate processes with their
// own config and state dirs and the same store URL and key, against the real OAuth server with
// strict rotation (a reused refresh token revokes the grant). An account signed in on one host
// works on every other with no local state; storms across 2, 8 and 32 hosts after expiry cost one
// refresh; the refresh log shows no refresh token presented twice.
import { after, before, it } from 'node:test'
import assert from 'node:assert/strict'
import { stat } from 'node:fs/promises'
import { startOAuthServer, type LabServer } from './oauth-server.js'
import { checkFleet, makeFleet, sha256, signInShared, type FleetEngine, type FleetStore, type Host } from './fleet.js'
import { findLeaks, noteSecrets, transcript } from './cli.js'

const EMAIL = 'alice@example.test'
// long enough that no token goes stale during a storm however slow the machine: each storm
// starts from a token marked expired in the store (fleet.expire), so it costs exactly one refresh
const TTL_SEC = 600

export interface FleetEngineUnderTest extends FleetEngine {
  /** the engine's password (must never be printed) */
  password: string
  /** everything the engine stores for account `id`, as text (to check it is sealed at rest) */
  rowText(id: string): Promise<string>
  close(): Promise<void>
}

export interface FleetCasesOptions {
  start(): Promise<FleetEngineUnderTest>
  /** what the CLI says before "mailkey store init" */
  noSchema: RegExp
}

/** The fleet cases, inside the caller's describe(). */
export function fleetCases(o: FleetCasesOptions): void {
  let engine: FleetEngineUnderTest
  let lab: LabServer
  let fleet: FleetStore
  let a: Host
  const secrets: string[] = []

  before(async () => {
    ;[engine, lab] = await Promise.all([o.start(), startOAuthServer({ accessTokenTtlSec: TTL_SEC, deviceInterval: 1 })])
    fleet = await makeFleet(engine)
    a = await fleet.host('a')
  })
  after(async () => {
    await fleet?.cleanup()
    await Promise.all([engine?.close(), lab?.close()])
  })

  it('names "mailkey store init" until the schema exists, then creates it once', async () => {
    const before = await a.cli(['token', EMAIL])
    assert.equal(before.code, 78, before.stderr)
    assert.match(before.stderr, o.noSchema)
    assert.match(before.stderr, /mailkey store init/)
    assert.ok(!before.stderr.includes(engine.password), 'the database password is not shown')
    const init = await a.cli(['store', 'init'])
    assert.equal(init.code, 0, init.stderr)
    assert.match(init.stderr, /is created \(version \d+\)/)
    const again = await a.cli(['store', 'init'])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stderr, /already up to date/)
  })

  it('refuses a shared store without a key, and a key file others can read', async () => {
    const nokey = await fleet.host('nokey', { MAILKEY_STORE_KEY_FILE: '' })
    const r = await nokey.cli(['token', EMAIL])
    assert.equal(r.code, 78, r.stderr)
    assert.match(r.stderr, /needs a key, and none is configured/)
    const init = await nokey.cli(['store', 'init', '--new-key', `${nokey.home.dir}/new.key`])
    assert.equal(init.code, 0, init.stderr)
    assert.equal((await stat(`${nokey.home.dir}/new.key`)).mode & 0o777, 0o600)
    const twice = await nokey.cli(['store', 'init', '--new-key', `${nokey.home.dir}/new.key`])
    assert.equal(twice.code, 64, 'an existing key file is never overwritten')
  })

  it('an account signed in on one host works on every other, with no local state', async () => {
    const rec = await signInShared(lab, a, fleet, EMAIL)
    secrets.push(rec.grant?.accessToken as string, rec.grant?.refreshToken as string)
    const b = await fleet.host('b')
    const tok = await b.cli(['token', EMAIL])
    assert.equal(tok.code, 0, tok.stderr)
    assert.equal(tok.stdout.trim(), rec.grant?.accessToken)
    const status = await b.cli(['status', EMAIL])
    assert.equal(status.code, 0, status.stderr)
    assert.match(status.stdout, /shared store, sealed with the store key/)
    const list = await b.cli(['list', '--json'])
    assert.equal(list.code, 0, list.stderr)
    assert.match(list.stdout, /alice@example\.test/)
    // sealed at rest: no token in the row's text
    const text = await engine.rowText(EMAIL)
    assert.ok(text.length > 100)
    for (const s of secrets) assert.ok(!text.includes(s), 'no token in the clear in the database')
  })

  for (const n of [2, 8, 32]) {
    it(`a storm of ${n} hosts after expiry costs one refresh`, async () => {
      const hosts = await Promise.all(Array.from({ length: n }, (_, i) => fleet.host(`s${n}-${i}`)))
      const from = lab.refreshLog.length
      const before = await fleet.record(EMAIL)
      await fleet.expire(EMAIL)
      const results = await Promise.all(hosts.map((h) => h.cli(['token', EMAIL])))
      for (const r of results) assert.equal(r.code, 0, r.stderr)
      const tokens = new Set(results.map((r) => r.stdout.trim()))
      assert.equal(tokens.size, 1, 'every host got the same token')
      const after = await fleet.record(EMAIL)
      assert.notEqual(after?.grant?.accessToken, before?.grant?.accessToken, 'it was refreshed')
      assert.equal([...tokens][0], after?.grant?.accessToken)
      await noteSecrets(after?.grant?.accessToken, after?.grant?.refreshToken)
      secrets.push(after?.grant?.accessToken as string, after?.grant?.refreshToken as string)
      const report = await checkFleet(lab, fleet, EMAIL, from)
      assert.equal(report.refreshes, 1, `one refresh for ${n} hosts`)
      assert.deepEqual(report.reused, [])
      assert.ok(report.storedIsLatest)
      assert.ok(await lab.refreshTokenAlive(after?.grant?.refreshToken as string), 'the stored grant still works')
      assert.equal(sha256(after?.grant?.refreshToken as string), lab.refreshLog.at(-1)?.issuedRefresh)
    })
  }

  it('removing on one host removes it for all', async () => {
    const b = await fleet.host('rm')
    const r = await b.cli(['remove', EMAIL])
    assert.equal(r.code, 0, r.stderr)
    const t = await a.cli(['token', EMAIL])
    assert.notEqual(t.code, 0)
    assert.match(t.stderr, /no account|not signed in|unknown/i)
  })

  it('prints no secret', () => {
    const leaks = findLeaks(
      transcript.flatMap((t) => (t.args[0] === 'token' ? [t.stderr] : [t.stdout, t.stderr])),
      [...secrets, engine.password],
    )
    assert.deepEqual(leaks, [])
  })
}
