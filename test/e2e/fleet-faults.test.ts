// Random fault schedules on a shared PostgreSQL store (issue 13), generated and replayable with
// fast-check: each run signs in a fresh account and plays 2-4 steps on 3 hosts (each behind its own
// TCP hop to the database) against the real OAuth server, then checks the fleet's invariants:
// - storm(k): the token marked expired, k hosts ask at once: one refresh, one token for all;
// - crash(i, fault, answer): the token marked expired, host i refreshes, the server holds its
//   answer, then host i is killed, paused past its lease, cut off from the database, or the
//   database is killed; the answer is released or dropped; another host then asks.
// Invariants: no refresh token presented more than twice, a second time only as the intent retry
// the store logged; refreshes <= storms + 2 * crashes; every token handed out was active when it
// was handed out (the server keeps refresh tokens here, like Microsoft, so nothing revokes them);
// at the end the grant is active, the stored refresh token is alive and a new host gets the stored,
// active access token. Replay a failure with FLEET_FAULT_SEED=<seed> (and FLEET_FAULT_PATH=<path>);
// FLEET_FAULT_RUNS sets the number of schedules (default 3; `npm run soak`: 12).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { startOAuthServer, type LabServer } from '../harness/oauth-server.js'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT, type PgServer } from '../harness/postgres.js'
import { makeFleet, signalHost, signInShared, type FleetStore, type Host } from '../harness/fleet.js'
import { startPartition, type Partition } from '../harness/partition.js'
import { noteSecrets, spawnCli } from '../harness/cli.js'

if (!postgresAvailable() && process.env.CI) throw new Error(`the fleet tests need PostgreSQL: ${POSTGRES_INSTALL_HINT}`)

const LEASE_SEC = 3
const RUNS = Number(process.env.FLEET_FAULT_RUNS ?? (process.env.MAILKEY_SOAK === '1' ? 12 : 3))
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

type Step =
  | { kind: 'storm'; hosts: number }
  | { kind: 'crash'; host: number; fault: 'kill' | 'pause' | 'cut' | 'db'; answer: 'release' | 'drop' }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('storm' as const), hosts: fc.integer({ min: 1, max: 3 }) }),
  fc.record({
    kind: fc.constant('crash' as const),
    host: fc.integer({ min: 0, max: 2 }),
    fault: fc.constantFrom('kill' as const, 'pause' as const, 'cut' as const, 'db' as const),
    answer: fc.constantFrom('release' as const, 'drop' as const),
  }),
)

describe('random fault schedules on PostgreSQL', { skip: !postgresAvailable() && 'PostgreSQL missing' }, () => {
  let pg: PgServer
  let lab: LabServer
  let fleet: FleetStore
  let links: Partition[]
  let hosts: Host[]
  let run = 0

  before(async () => {
    ;[pg, lab] = await Promise.all([
      startPostgres(),
      startOAuthServer({ accessTokenTtlSec: 600, deviceInterval: 1, rotateRefreshTokens: false }),
    ])
    fleet = await makeFleet(pg, { MAILKEY_STORE_LEASE_SEC: String(LEASE_SEC) })
    links = await Promise.all([0, 1, 2].map(() => startPartition({ host: '127.0.0.1', port: pg.port })))
    hosts = await Promise.all(
      links.map((l, i) => {
        const url = new URL(pg.url)
        url.port = String(l.port)
        return fleet.host(`h${i}`, { MAILKEY_STORE_URL: url.href })
      }),
    )
    const init = await hosts[0]!.cli(['store', 'init'])
    assert.equal(init.code, 0, init.stderr)
  })
  after(async () => {
    await Promise.all(links?.map((l) => l.close()) ?? [])
    await fleet?.cleanup()
    await Promise.all([pg?.close(), lab?.close()])
  })

  /** `token` on host i; a token printed is checked active at once (nothing here revokes) */
  async function ask(i: number, email: string): Promise<{ code: number | null; token: string }> {
    const r = await hosts[i]!.cli(['token', email])
    const token = r.stdout.trim()
    if (r.code === 0) {
      await noteSecrets(token)
      assert.equal((await lab.introspect(token)).active, true, `host ${i} handed out an inactive token`)
    } else assert.equal(r.code, 75, `host ${i}: only "try later" is acceptable here: ${r.stderr}`)
    return { code: r.code, token }
  }

  async function storm(step: Extract<Step, { kind: 'storm' }>, email: string): Promise<void> {
    await fleet.expire(email)
    const from = lab.refreshLog.length
    const got = await Promise.all(Array.from({ length: step.hosts }, (_, i) => ask(i, email)))
    assert.ok(
      got.every((g) => g.code === 0),
      'a storm with the database up succeeds everywhere',
    )
    assert.equal(new Set(got.map((g) => g.token)).size, 1, 'one token for the storm')
    assert.equal(lab.refreshLog.length - from, 1, 'one refresh for the storm')
  }

  async function crash(step: Extract<Step, { kind: 'crash' }>, email: string): Promise<void> {
    await fleet.expire(email)
    const h = hosts[step.host]!
    const hold = lab.holdNextRefreshAnswer()
    const cli = spawnCli(['token', email], h.env)
    await hold.held
    if (step.fault === 'kill') signalHost(h, 'SIGKILL')
    if (step.fault === 'pause') signalHost(h, 'SIGSTOP')
    if (step.fault === 'cut') links[step.host]!.cut()
    if (step.fault === 'db') await pg.kill()
    if (step.answer === 'release') hold.release()
    else hold.drop()
    if (step.fault === 'db') await pg.start()
    await sleep(LEASE_SEC * 1000 + 300)
    const other = (step.host + 1) % 3
    const after = await ask(other, email)
    assert.equal(after.code, 0, 'another host gets a token after the lease')
    if (step.fault === 'pause') signalHost(h, 'SIGCONT')
    if (step.fault === 'cut') links[step.host]!.heal()
    const done = await cli.done
    if (step.fault !== 'kill' && done.code === 0) {
      await noteSecrets(done.stdout.trim())
      assert.equal((await lab.introspect(done.stdout.trim())).active, true)
    }
  }

  async function checkEnd(email: string, from: number, steps: Step[]): Promise<void> {
    // a storm is one refresh; a crash is the cut-off refresh (whose answer never lands: the fault
    // comes while the server holds it) and the one intent retry of the next host; a dropped answer
    // (no answer at all) may add the refresher's own retry of a lost answer (B4) before that
    const log = lab.refreshLog.slice(from)
    const crashes = steps.filter((s) => s.kind === 'crash').length
    const dropped = steps.filter((s) => s.kind === 'crash' && s.answer === 'drop').length
    const least = steps.length + crashes
    assert.ok(
      log.length >= least && log.length <= least + dropped,
      `${log.length} refreshes for ${JSON.stringify(steps)}`,
    )
    const retries = (
      await pg.query<{ n: string }>(
        `SELECT count(*) AS n FROM mailkey_refresh_log WHERE account = $1 AND event = 'intent-retry'`,
        [email],
        'mailkey',
      )
    ).rows[0]?.n
    // a crash's retry is the next host's logged intent retry, unless the refresher's own retry of a
    // dropped answer was stored first
    assert.ok(
      Number(retries) <= crashes && Number(retries) >= crashes - dropped,
      `${retries} intent retries for ${crashes} crashes (${dropped} dropped answers)`,
    )
    const rec = await fleet.record(email)
    assert.equal(rec?.state, 'active', 'the grant is active at the end')
    assert.ok(await lab.refreshTokenAlive(rec?.grant?.refreshToken as string), 'the stored refresh token works')
    const fresh = await fleet.host(`end-${run}`)
    const last = await fresh.cli(['token', email])
    assert.equal(last.code, 0, last.stderr)
    assert.equal(last.stdout.trim(), rec?.grant?.accessToken)
    await noteSecrets(rec?.grant?.accessToken, rec?.grant?.refreshToken)
  }

  it(`keeps the invariants under ${RUNS} random schedules`, async () => {
    const seed = process.env.FLEET_FAULT_SEED ? Number(process.env.FLEET_FAULT_SEED) : undefined
    const path = process.env.FLEET_FAULT_PATH
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 2, maxLength: 4 }), async (steps) => {
        const email = `run${++run}@example.test`
        const rec = await signInShared(lab, hosts[0]!, fleet, email)
        await noteSecrets(rec.grant?.accessToken, rec.grant?.refreshToken)
        const from = lab.refreshLog.length
        for (const step of steps) await (step.kind === 'storm' ? storm(step, email) : crash(step, email))
        await checkEnd(email, from, steps)
      }),
      { numRuns: RUNS, endOnFailure: true, ...(seed !== undefined ? { seed } : {}), ...(path ? { path } : {}) },
    )
  })
})
