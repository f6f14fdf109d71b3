// Crash semantics of the shared store (issue 13, docs/adr/0011), run on each shared store engine
// (test/e2e/fleet-crash.test.ts on PostgreSQL, test/e2e/fleet-crash-redis.test.ts on Redis), with
// real host processes and the real OAuth server holding its answer after it minted the tokens:
// - the refreshing host SIGKILLed: the next host sees the unfinished intent after the lease and
//   retries once with the stored refresh token. A server that keeps its refresh tokens (Microsoft,
//   Google) accepts it: nothing lost. A strictly rotating one refuses it: the grant needs a sign-in,
//   said once with the cut-off host named, and nobody presents the token again (no loop).
// - the refreshing host SIGSTOPped past its lease, then SIGCONT: its write is fenced off, it hands
//   out what the new holder wrote, never its own token.
// - the engine killed (kill -9) and started again, and one host cut off from it by a TCP hop that
//   goes silent: exit 75 naming the store, never a refresh without the lease, nothing acknowledged lost.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { startOAuthServer, type LabServer } from './oauth-server.js'
import {
  checkFleet,
  hostProcesses,
  makeFleet,
  sha256,
  signalHost,
  signInShared,
  type FleetEngine,
  type FleetStore,
} from './fleet.js'
import { noteSecrets, spawnCli } from './cli.js'
import { startPartition } from './partition.js'

/** A store engine under the crash cases: a real server the test can kill and start again. */
export interface CrashEngine extends FleetEngine {
  /** the engine's port on 127.0.0.1 (the partition goes in front of it) */
  port: number
  /** the engine's password (must never be printed) */
  password: string
  /** SIGKILL (a crash); resolves once the server is gone */
  kill(): Promise<void>
  /** starts again on the same port and data; resolves once it serves */
  start(): Promise<void>
  /** the store's refresh log, oldest first, as event names */
  events(): Promise<string[]>
  close(): Promise<void>
}

export interface CrashCasesOptions {
  start(): Promise<CrashEngine>
  /** what a host says when the engine is down (naming the store by its label) */
  unavailable: RegExp
}

const EMAIL = 'alice@example.test'
// long-lived tokens: each case starts from one marked expired in the store (fleet.expire)
const TTL_SEC = 600
const LEASE_SEC = 3

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

interface World {
  engine: CrashEngine
  lab: LabServer
  fleet: FleetStore
}

async function world(o: CrashCasesOptions, rotate: boolean): Promise<World> {
  const [engine, lab] = await Promise.all([
    o.start(),
    startOAuthServer({ accessTokenTtlSec: TTL_SEC, deviceInterval: 1, rotateRefreshTokens: rotate }),
  ])
  const fleet = await makeFleet(engine, { MAILKEY_STORE_LEASE_SEC: String(LEASE_SEC) })
  const a = await fleet.host('init')
  const init = await a.cli(['store', 'init'])
  assert.equal(init.code, 0, init.stderr)
  await signInShared(lab, a, fleet, EMAIL)
  return { engine, lab, fleet }
}

async function close(w: World | undefined): Promise<void> {
  await w?.fleet.cleanup()
  await Promise.all([w?.engine.close(), w?.lab.close()])
}

/** Host `a` starts a refresh; the server answers it into a hold; `a` is then killed. */
async function killMidRefresh(w: World): Promise<{ presented: string }> {
  await w.fleet.expire(EMAIL)
  const a = await w.fleet.host('a')
  const hold = w.lab.holdNextRefreshAnswer()
  const cli = spawnCli(['token', EMAIL], a.env)
  await hold.held
  const killed = signalHost(a, 'SIGKILL') // the whole host: the CLI and its refresh worker
  assert.ok(killed.length >= 2, `the CLI and its worker were running (${killed.length} processes)`)
  await cli.done
  hold.drop()
  const presented = w.lab.refreshLog.at(-1)?.presented as string
  return { presented }
}

/** The crash cases, inside the caller's describe(). */
export function fleetCrashCases(o: CrashCasesOptions): void {
  keepsRefreshTokens(o)
  rotatesStrictly(o)
  clientKillsToken(o)
  pausedPastLease(o)
  engineDown(o)
  cutOff(o)
}

function keepsRefreshTokens(o: CrashCasesOptions): void {
  describe('the refreshing host is killed, the server keeps refresh tokens', () => {
    let w: World
    before(async () => (w = await world(o, false)))
    after(() => close(w))

    it('the next host retries once after the lease and nothing is lost', async () => {
      const from = w.lab.refreshLog.length
      const { presented } = await killMidRefresh(w)
      const b = await w.fleet.host('b')
      const r = await b.cli(['token', EMAIL])
      assert.equal(r.code, 0, r.stderr)
      const rec = await w.fleet.record(EMAIL)
      await noteSecrets(rec?.grant?.accessToken, rec?.grant?.refreshToken)
      assert.equal(r.stdout.trim(), rec?.grant?.accessToken)
      assert.equal((await w.lab.introspect(r.stdout.trim())).active, true, 'a live token')
      const log = w.lab.refreshLog.slice(from)
      assert.equal(log.length, 2, 'the cut-off refresh and one retry')
      assert.deepEqual(
        log.map((e) => e.presented),
        [presented, presented],
      )
      const report = await checkFleet(w.lab, w.fleet, EMAIL, from)
      assert.ok(report.storedIsLatest)
      assert.ok((await w.engine.events()).includes('intent-retry'), 'the retry is in the store log')
    })
  })
}

function rotatesStrictly(o: CrashCasesOptions): void {
  describe('the refreshing host is killed, the server rotates strictly', () => {
    let w: World
    before(async () => (w = await world(o, true)))
    after(() => close(w))

    it('the retry is refused: sign-in needed, said once, never retried', async () => {
      const from = w.lab.refreshLog.length
      const { presented } = await killMidRefresh(w)
      const b = await w.fleet.host('b')
      const r = await b.cli(['token', EMAIL])
      assert.equal(r.code, 77, r.stderr)
      assert.match(r.stderr, /was cut off/)
      assert.match(r.stderr, /mailkey add/)
      const c = await w.fleet.host('c')
      const again = await c.cli(['token', EMAIL])
      assert.equal(again.code, 77, again.stderr)
      const log = w.lab.refreshLog.slice(from)
      assert.deepEqual(
        log.map((e) => e.presented),
        [presented, presented],
        'presented by the killed host and once by the retry, no more',
      )
      assert.equal((await w.fleet.record(EMAIL))?.state, 'reauth')
    })
  })
}

function clientKillsToken(o: CrashCasesOptions): void {
  describe('a mail client kills "mailkey token" mid-refresh, the server rotates strictly', () => {
    let w: World
    before(async () => (w = await world(o, true)))
    after(() => close(w))

    it('its refresh worker finishes under the same lease: nothing lost, one request', async () => {
      await w.fleet.expire(EMAIL)
      const from = w.lab.refreshLog.length
      // a URL with the engine's password in it: it must not reach any command line
      const withPassword = new URL(w.engine.url)
      withPassword.password = encodeURIComponent(w.engine.password)
      const a = await w.fleet.host('a', { MAILKEY_STORE_URL: withPassword.href })
      const hold = w.lab.holdNextRefreshAnswer()
      const cli = spawnCli(['token', EMAIL], a.env)
      await hold.held
      const pids = hostProcesses(a)
      assert.ok(pids.length >= 2, 'the CLI and its worker')
      for (const pid of pids)
        assert.ok(!readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(w.engine.password), 'no password in argv')
      cli.child.kill('SIGKILL') // the client gave up; the host lives on
      await cli.done
      hold.release()
      const b = await w.fleet.host('b')
      const r = await b.cli(['token', EMAIL])
      assert.equal(r.code, 0, r.stderr)
      const rec = await w.fleet.record(EMAIL)
      await noteSecrets(rec?.grant?.accessToken, rec?.grant?.refreshToken)
      assert.equal(r.stdout.trim(), rec?.grant?.accessToken)
      assert.equal(sha256(r.stdout.trim()), w.lab.refreshLog.at(-1)?.issuedAccess, 'the held answer was stored')
      assert.equal(w.lab.refreshLog.length - from, 1, 'one request: no retry, no second refresh')
      assert.ok(await w.lab.refreshTokenAlive(rec?.grant?.refreshToken as string))
    })
  })
}

function pausedPastLease(o: CrashCasesOptions): void {
  describe('the refreshing host is paused past its lease', () => {
    let w: World
    before(async () => (w = await world(o, false)))
    after(() => close(w))

    it('its write is fenced off and it hands out what the new holder wrote', async () => {
      await w.fleet.expire(EMAIL)
      const from = w.lab.refreshLog.length
      const a = await w.fleet.host('a')
      const hold = w.lab.holdNextRefreshAnswer()
      const cli = spawnCli(['token', EMAIL], a.env)
      await hold.held
      assert.ok(signalHost(a, 'SIGSTOP').length >= 2, 'the CLI and its worker are paused')
      hold.release() // the answer waits in the paused host's socket
      const stalled = w.lab.refreshLog.at(-1)
      await sleep(LEASE_SEC * 1000 + 500)
      const b = await w.fleet.host('b')
      const r = await b.cli(['token', EMAIL])
      assert.equal(r.code, 0, r.stderr)
      signalHost(a, 'SIGCONT')
      const done = await cli.done
      assert.equal(done.code, 0, done.stderr)
      const rec = await w.fleet.record(EMAIL)
      await noteSecrets(rec?.grant?.accessToken, rec?.grant?.refreshToken)
      assert.equal(r.stdout.trim(), rec?.grant?.accessToken)
      assert.equal(done.stdout.trim(), rec?.grant?.accessToken, 'the paused host hands out the stored token')
      assert.notEqual(sha256(done.stdout.trim()), stalled?.issuedAccess, 'never its own fenced-off one')
      assert.equal(w.lab.refreshLog.length - from, 2)
      assert.ok((await w.engine.events()).includes('fenced'), 'the fenced-off write is in the store log')
    })
  })
}

function engineDown(o: CrashCasesOptions): void {
  describe('the store engine goes down', () => {
    let w: World
    before(async () => (w = await world(o, false)))
    after(() => close(w))

    it('a host keeps its cached token while valid; others fail at once, naming the store; no refresh', async () => {
      const a = await w.fleet.host('a')
      const first = await a.cli(['token', EMAIL])
      assert.equal(first.code, 0, first.stderr)
      const b = await w.fleet.host('b')
      const refreshes = w.lab.refreshLog.length
      await w.engine.kill()
      const cached = await a.cli(['token', EMAIL])
      assert.equal(cached.code, 0, cached.stderr)
      assert.equal(cached.stdout.trim(), first.stdout.trim())
      assert.match(cached.stderr, /using this host's cached token/)
      const forced = await a.cli(['token', EMAIL, '--force-refresh'])
      assert.equal(forced.code, 75, 'a refresh needs the store: transient')
      const none = await b.cli(['token', EMAIL])
      assert.equal(none.code, 75, none.stderr)
      assert.match(none.stderr, o.unavailable)
      assert.ok(!none.stderr.includes(w.engine.password))
      assert.equal(w.lab.refreshLog.length, refreshes, 'no refresh without the store')
      await w.engine.start()
      const back = await b.cli(['token', EMAIL])
      assert.equal(back.code, 0, back.stderr)
    })

    it('killed and restarted mid-refresh: the answer is not stored, the next host recovers it', async () => {
      const a = await w.fleet.host('a2')
      const from = w.lab.refreshLog.length
      const hold = w.lab.holdNextRefreshAnswer()
      const cli = spawnCli(['token', EMAIL, '--force-refresh'], a.env)
      await hold.held
      await w.engine.kill()
      hold.release()
      const done = await cli.done
      assert.equal(done.code, 75, done.stderr)
      assert.equal(w.lab.refreshLog.length - from, 1, 'the refresh was not sent again after the store failed')
      await w.engine.start()
      await sleep(LEASE_SEC * 1000 + 200)
      const b = await w.fleet.host('b2')
      const r = await b.cli(['token', EMAIL, '--force-refresh'])
      assert.equal(r.code, 0, r.stderr)
      const rec = await w.fleet.record(EMAIL)
      await noteSecrets(rec?.grant?.accessToken, rec?.grant?.refreshToken)
      assert.equal(r.stdout.trim(), rec?.grant?.accessToken)
      assert.equal((await w.lab.introspect(r.stdout.trim())).active, true)
    })
  })
}

function cutOff(o: CrashCasesOptions): void {
  describe('a host is cut off from the store engine mid-refresh', () => {
    let w: World
    before(async () => (w = await world(o, false)))
    after(() => close(w))

    it('its answer never lands; the next host recovers the grant; after healing it gets that token', async () => {
      const link = await startPartition({ host: '127.0.0.1', port: w.engine.port })
      after(() => link.close())
      const url = new URL(w.engine.url)
      url.port = String(link.port)
      const a = await w.fleet.host('cut', { MAILKEY_STORE_URL: url.href })
      await w.fleet.expire(EMAIL)
      const from = w.lab.refreshLog.length
      const hold = w.lab.holdNextRefreshAnswer()
      const cli = spawnCli(['token', EMAIL], a.env)
      await hold.held
      link.cut()
      hold.release()
      const minted = w.lab.refreshLog.at(-1)?.issuedAccess
      const done = await cli.done
      assert.equal(done.code, 75, done.stderr)
      assert.match(done.stderr, /is unavailable/)
      await sleep(LEASE_SEC * 1000 + 200)
      const b = await w.fleet.host('b')
      const r = await b.cli(['token', EMAIL])
      assert.equal(r.code, 0, r.stderr)
      link.heal()
      const healed = await a.cli(['token', EMAIL])
      assert.equal(healed.code, 0, healed.stderr)
      const rec = await w.fleet.record(EMAIL)
      await noteSecrets(rec?.grant?.accessToken, rec?.grant?.refreshToken)
      assert.equal(r.stdout.trim(), rec?.grant?.accessToken)
      assert.equal(healed.stdout.trim(), rec?.grant?.accessToken, 'the healed host gets the stored token')
      assert.notEqual(sha256(rec?.grant?.accessToken as string), minted, "the cut-off host's token never landed")
      const log = w.lab.refreshLog.slice(from)
      assert.equal(log.length, 2, 'the cut-off refresh and the one intent retry')
      assert.equal(log[0]?.presented, log[1]?.presented)
    })
  })
}
