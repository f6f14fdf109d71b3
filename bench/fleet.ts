// mailkey fleet benchmarks (issue 13, docs/adr/0011; not a CI gate). Run: npm run bench:fleet
//
// A real PostgreSQL (startPostgres({ durable: true }): fsync and full_page_writes on) and, when
// redis-server is installed, a real Redis (appendonly yes, appendfsync always), the real OAuth
// server on loopback, hosts = throw-away HOMEs with the same store URL and key (test/harness/fleet.ts):
// 1. storms: N hosts (separate `mailkey token` processes) at once on a token marked expired: the
//    token-endpoint requests per expiry (must be 1) and the wall time until the last host is done;
// 2. token latency in-process (createMailkey, one call after another): a store read with a fresh
//    token, beside the file store in the same run (interleaved); the host cache while the engine is
//    down; a wait on another host's refresh (the lab holds its answer HOLD_MS, then releases it);
// 3. propagation: after host X's refresh, until every poller (other Mailkey instances, own HOMEs)
//    gets the new token, from the provider's answer and (PostgreSQL) from the logged commit;
// 4. recovery: the refreshing host SIGKILLed mid-refresh, until another host has a token, for each
//    lease length (the lab keeps refresh tokens, as Microsoft and Google do, so the retry works);
// 5. engine down (SIGKILL): tokens served from the host cache, the time a host without one takes
//    to fail (exit 75), and token-endpoint requests meanwhile (must be 0).
// NODE_EXTRA_CA_CERTS is removed from every process (makeTmpHome strips it; see bench/README.md).
// Knobs: BENCH_ROUNDS (storm rounds per N, 5), BENCH_HOSTS (2,8,32), BENCH_CALLS (latency calls,
// 400), BENCH_WAIT_ROUNDS (20), BENCH_PROP_ROUNDS (10), BENCH_POLLERS (4), BENCH_LEASES (60,5),
// BENCH_DOWN_SEC (3), BENCH_REDIS (1; 0 skips Redis), BENCH_REDIS_RECOVERY (0; 1 runs item 4 on Redis).
import { spawn } from 'node:child_process'
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { startOAuthServer, type LabServer } from '../test/harness/oauth-server.js'
import { startPostgres } from '../test/harness/postgres.js'
import { redisAvailable, startRedis } from '../test/harness/redis.js'
import { makeFleet, signInShared, signalHost, type FleetStore, type Host } from '../test/harness/fleet.js'
import { makeTmpHome } from '../test/harness/tmp-home.js'
import { BIN } from '../test/harness/cli.js'
import { signIn } from '../test/harness/sign-in.js'
import { createMailkey, type Mailkey } from '../src/mailkey.js'

const num = (name: string, dflt: number): number => Number(process.env[name] ?? dflt)
const list = (name: string, dflt: string): number[] => (process.env[name] ?? dflt).split(',').map(Number)
const ROUNDS = num('BENCH_ROUNDS', 5)
const HOSTS = list('BENCH_HOSTS', '2,8,32')
const CALLS = num('BENCH_CALLS', 400)
const WAIT_ROUNDS = num('BENCH_WAIT_ROUNDS', 20)
const PROP_ROUNDS = num('BENCH_PROP_ROUNDS', 10)
const POLLERS = num('BENCH_POLLERS', 4)
const LEASES = list('BENCH_LEASES', '60,5')
const DOWN_SEC = num('BENCH_DOWN_SEC', 3)
const HOLD_MS = 200
const HUNG_MS = 20_000 // a `mailkey token` still running this long after the engine stopped answering is killed
const EMAIL = 'fleet@example.test'
const KEEP = 'keep@example.test' // on the lab that keeps refresh tokens (item 4)

interface Engine {
  name: string
  durability: string
  url: string
  env(): Record<string, string>
  kill(): Promise<void>
  /** SIGSTOP / SIGCONT to the server's process group (an engine that does not answer) */
  pause(signal: 'SIGSTOP' | 'SIGCONT'): void
  close(): Promise<void>
  /** wall-clock ms of the last refresh write the engine logged (PostgreSQL's refresh log) */
  lastCommit?(): Promise<number | undefined>
}

interface Ran {
  code: number | null
  ms: number
  stdout: string
  stderr: string
}

/** `mailkey ARGS` as a process; wall time from spawn to exit. */
function cli(args: string[], env: Record<string, string>, timeoutMs = 150_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const c = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs)
    c.once('error', reject)
    c.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, ms: performance.now() - t0, stdout, stderr })
    })
  })
}

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b)
/** nearest-rank percentile */
const pct = (xs: number[], p: number): number => {
  const s = sorted(xs)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number
}
const f1 = (x: number): string => x.toFixed(1)
const f2 = (x: number): string => x.toFixed(2)
const wallNow = (): number => performance.timeOrigin + performance.now()

/**
 * Signals the process group of the server in `dir`: the group leader (detached spawn) whose command
 * line or working directory names `dir` (Redis rewrites its command line; its cwd is its dir).
 */
function signalServer(dir: string, signal: NodeJS.Signals): void {
  let found = 0
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1')
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
      if (pgid !== Number(name)) continue
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'latin1')
      const cwd = readlinkSync(`/proc/${name}/cwd`)
      if (!cmd.includes(dir) && cwd !== dir) continue
      process.kill(-pgid, signal)
      found++
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  if (found !== 1) throw new Error(`${signal}: ${found} server process groups found for ${dir}`)
}

const rows: string[][] = []
const failures: string[] = []
function row(figure: string, engine: string, result: string): void {
  rows.push([figure, engine, result])
  console.log(`  ${figure} [${engine}]: ${result}`)
}

async function pgEngine(): Promise<Engine> {
  const pg = await startPostgres({ durable: true })
  const ver = (await pg.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version
  return {
    name: `PostgreSQL ${ver?.split(' ')[0]}`,
    durability: 'fsync on, full_page_writes on, synchronous_commit on',
    url: pg.url,
    env: () => pg.env(),
    kill: () => pg.kill(),
    pause: (signal) => signalServer(pg.dir, signal),
    close: () => pg.close(),
    async lastCommit() {
      const r = await pg.query<{ ms: number }>(
        `SELECT (extract(epoch from at) * 1000)::float8 AS ms FROM mailkey_refresh_log
         WHERE event = 'refresh' ORDER BY seq DESC LIMIT 1`,
        [],
        'mailkey',
      )
      return r.rows[0]?.ms
    },
  }
}

async function redisEngine(): Promise<Engine> {
  const redis = await startRedis({ appendonly: true, appendfsync: 'always' })
  const info = String(await redis.command('INFO', 'server'))
  return {
    name: `Redis ${/redis_version:(\S+)/.exec(info)?.[1] ?? '?'}`,
    durability: 'appendonly yes, appendfsync always',
    url: redis.url,
    env: () => ({ REDISCLI_AUTH: redis.password }),
    kill: () => redis.kill(),
    pause: (signal) => signalServer(redis.dir, signal),
    close: () => redis.close(),
  }
}

interface World {
  engine: Engine
  fleet: FleetStore
  lab: LabServer
  keepLab: LabServer
  a: Host
}

/** 1. N hosts at once on an expired token, ROUNDS times per N. */
async function storms(w: World): Promise<void> {
  for (const n of HOSTS) {
    const hosts = await Promise.all(Array.from({ length: n }, (_, i) => w.fleet.host(`s${n}-${i}`)))
    const counts: number[] = []
    const walls: number[] = []
    for (let r = 0; r < ROUNDS; r++) {
      const from = w.lab.refreshLog.length
      await w.fleet.expire(EMAIL)
      const t0 = performance.now()
      const results = await Promise.all(hosts.map((h) => cli(['token', EMAIL], h.env)))
      walls.push(performance.now() - t0)
      counts.push(w.lab.refreshLog.length - from)
      const bad = results.find((x) => x.code !== 0)
      if (bad) failures.push(`storm ${n}: exit ${bad.code}: ${bad.stderr.trim()}`)
      if (new Set(results.map((x) => x.stdout.trim())).size !== 1) failures.push(`storm ${n}: different tokens`)
    }
    if (counts.some((c) => c !== 1)) failures.push(`storm ${n}: refreshes ${counts.join(',')}`)
    row(
      `1. storm, ${n} hosts (${ROUNDS} rounds)`,
      w.engine.name,
      `refreshes per expiry min ${Math.min(...counts)} / max ${Math.max(...counts)}; wall to last host median ${pct(walls, 50).toFixed(0)} ms (min ${Math.min(...walls).toFixed(0)}, max ${Math.max(...walls).toFixed(0)})`,
    )
  }
}

/** `calls` sequential getAccessToken calls on each instance, interleaved; ms per call. */
async function latencies(mks: Mailkey[], emails: string[], calls: number): Promise<number[][]> {
  const out = mks.map(() => [] as number[])
  for (let i = 0; i < 20; i++) for (const [j, mk] of mks.entries()) await mk.getAccessToken(emails[j] as string)
  for (let i = 0; i < calls; i++) {
    for (const [j, mk] of mks.entries()) {
      const t0 = performance.now()
      await mk.getAccessToken(emails[j] as string)
      out[j]?.push(performance.now() - t0)
    }
  }
  return out
}

const p5099 = (xs: number[]): string => `p50 ${f2(pct(xs, 50))} ms, p99 ${f2(pct(xs, 99))} ms`

/** 2(a) and (b): a store read with a fresh token, beside the file store. */
async function readLatency(w: World, mk: Mailkey, file: { mk: Mailkey; email: string }): Promise<void> {
  const [shared, local] = (await latencies([mk, file.mk], [EMAIL, file.email], CALLS)) as [number[], number[]]
  row(`2a. getAccessToken, fresh token, shared store (${CALLS} calls)`, w.engine.name, p5099(shared))
  row(
    `2b. getAccessToken, fresh token, file store (same run, interleaved)`,
    'file store',
    `${p5099(local)}; shared/file p50 ${f1(pct(shared, 50) / pct(local, 50))}x`,
  )
}

/** 2(d): host X's refresh is held HOLD_MS by the lab while an in-process caller asks. */
async function waitLatency(w: World, mk: Mailkey): Promise<void> {
  const x = await w.fleet.host('x-wait')
  const total: number[] = []
  const after: number[] = []
  for (let r = 0; r < WAIT_ROUNDS; r++) {
    await w.fleet.expire(EMAIL)
    const hold = w.lab.holdNextRefreshAnswer()
    const proc = cli(['token', EMAIL], x.env)
    await hold.held
    const t0 = performance.now()
    let released = 0
    setTimeout(() => {
      released = performance.now()
      hold.release()
    }, HOLD_MS)
    await mk.getAccessToken(EMAIL)
    const t1 = performance.now()
    total.push(t1 - t0)
    after.push(t1 - released)
    const done = await proc
    if (done.code !== 0) failures.push(`wait: host X exit ${done.code}: ${done.stderr.trim()}`)
  }
  row(
    `2d. wait on another host's refresh, held ${HOLD_MS} ms (${WAIT_ROUNDS} rounds)`,
    w.engine.name,
    `latency ${p5099(total)}; after the release (X's write + the waiter's poll): ${p5099(after)}`,
  )
}

/** Pollers asking in a loop until their token differs from `old`; resolves with wall-clock times. */
function pollUntilNew(mks: Mailkey[], old: string, stop: { now: boolean }): Promise<number[]> {
  return Promise.all(
    mks.map(async (mk) => {
      while (!stop.now) {
        const t = await mk.getAccessToken(EMAIL)
        if (t.token.reveal() !== old) return wallNow()
      }
      return NaN
    }),
  )
}

/** 3. Host X refreshes (--force-refresh); pollers on other hosts see the new token. */
async function propagation(w: World, pollers: Mailkey[]): Promise<void> {
  const x = await w.fleet.host('x-prop')
  const fromAnswer: number[] = []
  const fromCommit: number[] = []
  const xReturn: number[] = []
  for (let r = 0; r < PROP_ROUNDS; r++) {
    const old = (await pollers[0]?.getAccessToken(EMAIL))?.token.reveal() as string
    const stop = { now: false }
    const seen = pollUntilNew(pollers, old, stop)
    const hold = w.lab.holdNextRefreshAnswer()
    const proc = cli(['token', EMAIL, '--force-refresh'], x.env)
    await hold.held
    const released = wallNow()
    hold.release()
    const done = await proc
    xReturn.push(wallNow() - released)
    const timer = setTimeout(() => (stop.now = true), 10_000)
    const times = await seen
    clearTimeout(timer)
    if (done.code !== 0 || times.some(Number.isNaN)) failures.push(`propagation round ${r}: ${done.stderr.trim()}`)
    const commit = await w.engine.lastCommit?.()
    fromAnswer.push(Math.max(...times) - released)
    if (commit !== undefined) fromCommit.push(...times.map((t) => t - commit))
  }
  const n = `${POLLERS} pollers, ${PROP_ROUNDS} rounds`
  row(
    `3. new token on every host, from the provider's answer (${n})`,
    w.engine.name,
    `last host sees it: ${p5099(fromAnswer)}; host X's own \`mailkey token\` returns: ${p5099(xReturn)}`,
  )
  if (fromCommit.length)
    row(`3. new token on a host, from the logged commit (each poller)`, w.engine.name, p5099(fromCommit))
}

/** 4. The refreshing host is SIGKILLed mid-refresh; another host asks at once. */
async function recovery(w: World): Promise<void> {
  for (const lease of LEASES) {
    const extra = { MAILKEY_STORE_LEASE_SEC: String(lease) }
    const [x, b] = [await w.fleet.host(`x-kill-${lease}`, extra), await w.fleet.host(`b-kill-${lease}`, extra)]
    await w.fleet.expire(KEEP)
    const from = w.keepLab.refreshLog.length
    const hold = w.keepLab.holdNextRefreshAnswer()
    const t0 = performance.now()
    const proc = cli(['token', KEEP], x.env)
    await hold.held
    const claimToHeld = performance.now() - t0
    const killed = signalHost(x, 'SIGKILL')
    const tKill = performance.now()
    hold.drop()
    await proc
    const got = await cli(['token', KEEP], b.env)
    const ms = performance.now() - tKill
    if (got.code !== 0) failures.push(`recovery ${lease}: exit ${got.code}: ${got.stderr.trim()}`)
    row(
      `4. recovery after the lease holder is killed, lease ${lease} s`,
      w.engine.name,
      `another host has a token after ${(ms / 1000).toFixed(2)} s (exit ${got.code}; ${killed.length} processes killed ${(claimToHeld / 1000).toFixed(2)} s after X started; ${w.keepLab.refreshLog.length - from} token requests: the cut-off one + the retry)`,
    )
  }
}

const outcome = (r: Ran): string =>
  r.code === null
    ? `no answer, killed after ${(r.ms / 1000).toFixed(0)} s`
    : `exit ${r.code} after ${r.ms.toFixed(0)} ms`

/** 5: the engine paused (SIGSTOP: connections open, nothing answers), one `mailkey token` per host. */
async function engineHung(w: World, nocache: Host): Promise<void> {
  w.engine.pause('SIGSTOP')
  let cached: Ran
  let failed: Ran
  try {
    ;[cached, failed] = await Promise.all([
      cli(['token', EMAIL], w.a.env, HUNG_MS),
      cli(['token', EMAIL], nocache.env, HUNG_MS),
    ])
  } finally {
    w.engine.pause('SIGCONT')
  }
  if (process.env.BENCH_DEBUG) console.log(cached.stderr, failed.stderr)
  row(
    `5. engine not answering (SIGSTOP), one \`mailkey token\` each`,
    w.engine.name,
    `host with a cached token: ${outcome(cached)}; host without: ${outcome(failed)}`,
  )
}

/** 2(c) and 5: the engine killed; the host cache, the time to fail, no refresh. */
async function engineDown(w: World, mk: Mailkey, warnings: { n: number }): Promise<void> {
  await w.a.cli(['token', EMAIL]) // host a's cache holds the current token
  await mk.getAccessToken(EMAIL)
  const from = w.lab.refreshLog.length
  await engineHung(w, await w.fleet.host('nocache-hung'))
  const nocache = await w.fleet.host('nocache')
  await w.engine.kill()
  warnings.n = 0
  const [cached] = (await latencies([mk], [EMAIL], CALLS)) as [number[]]
  row(`2c. getAccessToken, engine down, host cache hit (${CALLS} calls)`, w.engine.name, p5099(cached))
  let served = 0
  const end = performance.now() + DOWN_SEC * 1000
  while (performance.now() < end) {
    await mk.getAccessToken(EMAIL)
    served++
  }
  const cachedCli: Ran[] = []
  const failed: Ran[] = []
  for (let i = 0; i < 5; i++) {
    cachedCli.push(await cli(['token', EMAIL], w.a.env))
    failed.push(await cli(['token', EMAIL], nocache.env))
  }
  const forced = await cli(['token', EMAIL, '--force-refresh'], w.a.env)
  const refreshes = w.lab.refreshLog.length - from
  if (refreshes !== 0) failures.push(`engine down: ${refreshes} refreshes`)
  const codes = (rs: Ran[]): string => [...new Set(rs.map((r) => r.code))].join(',')
  row(
    `5. engine down (SIGKILL): tokens served`,
    w.engine.name,
    `${served} in ${DOWN_SEC} s in-process (${f1(served / DOWN_SEC)}/s, ${warnings.n} warnings over ${served + CALLS + 20} calls); \`mailkey token\` with a cached token: exit ${codes(cachedCli)}, median ${pct(
      cachedCli.map((r) => r.ms),
      50,
    ).toFixed(0)} ms`,
  )
  row(
    `5. engine down: host without a cached token`,
    w.engine.name,
    `exit ${codes(failed)}, wall median ${pct(
      failed.map((r) => r.ms),
      50,
    ).toFixed(
      0,
    )} ms (max ${Math.max(...failed.map((r) => r.ms)).toFixed(0)}); --force-refresh: exit ${forced.code}, ${forced.ms.toFixed(0)} ms`,
  )
  row(`5. engine down: token-endpoint requests`, w.engine.name, `${refreshes} (every call above)`)
}

/** An engine, a fleet on it, the store created, EMAIL signed in on the strict lab, KEEP on the other. */
async function world(engine: Engine, lab: LabServer, keepLab: LabServer): Promise<World> {
  const fleet = await makeFleet(engine)
  const a = await fleet.host('a')
  const init = await a.cli(['store', 'init'])
  if (init.code !== 0) throw new Error(`store init: ${init.stderr}`)
  await signInShared(lab, a, fleet, EMAIL)
  await signInShared(keepLab, a, fleet, KEEP)
  return { engine, fleet, lab, keepLab, a }
}

/** Every figure on one engine. */
async function runEngine(
  engine: Engine,
  labs: [LabServer, LabServer],
  file: { mk: Mailkey; email: string },
  withRecovery: boolean,
): Promise<void> {
  console.log(`\n# ${engine.name} (${engine.durability})`)
  const w = await world(engine, ...labs)
  try {
    const warnings = { n: 0 }
    const mk = createMailkey({ env: w.a.env, onWarning: () => warnings.n++ })
    await storms(w)
    await readLatency(w, mk, file)
    await waitLatency(w, mk)
    const pollerHosts = await Promise.all(Array.from({ length: POLLERS }, (_, i) => w.fleet.host(`poll-${i}`)))
    await propagation(
      w,
      pollerHosts.map((h) => createMailkey({ env: h.env })),
    )
    if (withRecovery) await recovery(w)
    await engineDown(w, mk, warnings)
  } finally {
    await w.fleet.cleanup()
    await engine.close()
  }
}

async function main(): Promise<void> {
  const t0 = performance.now()
  const load0 = loadavg()
  const TTL = { accessTokenTtlSec: 600, deviceInterval: 1 }
  const labs: [LabServer, LabServer] = await Promise.all([
    startOAuthServer(TTL),
    startOAuthServer({ ...TTL, rotateRefreshTokens: false }),
  ])
  const fileHome = await makeTmpHome()
  try {
    const fileEmail = 'file@example.test'
    await signIn(labs[0], fileHome.env, fileEmail)
    const file = { mk: createMailkey({ env: fileHome.env }), email: fileEmail }
    const engines: [() => Promise<Engine>, boolean][] = [[pgEngine, true]]
    if (process.env.BENCH_REDIS !== '0' && redisAvailable())
      engines.push([redisEngine, process.env.BENCH_REDIS_RECOVERY === '1'])
    const settings: string[] = []
    for (const [start, withRecovery] of engines) {
      const engine = await start()
      settings.push(`${engine.name}: ${engine.durability}`)
      await runEngine(engine, labs, file, withRecovery)
    }
    report(settings, load0, performance.now() - t0)
  } finally {
    await fileHome.cleanup()
    await Promise.all(labs.map((l) => l.close()))
  }
}

function report(settings: string[], load0: number[], ms: number): void {
  console.log('\n## Fleet (shared store)\n')
  console.log('| figure | engine | result |')
  console.log('|---|---|---|')
  for (const r of rows) console.log(`| ${r.join(' | ')} |`)
  console.log(`\nengines: ${settings.join('; ')}`)
  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, Node ${process.version}, ${process.platform}; ` +
      `load average ${load0.map(f2).join(' ')} at the start, ${loadavg().map(f2).join(' ')} at the end; ` +
      `${(ms / 1000).toFixed(0)} s in all`,
  )
  if (failures.length) {
    console.log(`\nFAILED CHECKS:\n${failures.map((f) => `- ${f}`).join('\n')}`)
    process.exitCode = 1
  }
}

main().then(
  () => process.exit(),
  (e: unknown) => {
    console.error(e)
    process.exit(1)
  },
)
