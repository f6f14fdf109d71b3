// mailkey token service benchmark (issue 14; not a CI gate). Run: npm run bench:serve
//
// A real PostgreSQL (startPostgres({ durable: true }): fsync, full_page_writes and synchronous_commit
// on) as the shared store, the lab OAuth server on loopback with access tokens of an hour (no refresh
// is due while measuring: checked), one account signed in with the device flow, one API key
// (`mailkey serve key add bench --all --json`). Replicas are `mailkey serve --listen 127.0.0.1:0`
// processes, each a fleet host of its own (test/harness/fleet.ts), their JSON request log going to
// a file (read after each case: where every answer came from).
// 1. load: a generator in this process (node:http, one keep-alive Agent, BENCH_CLIENTS concurrent
//    clients, each sending its next request when the last is answered, round-robin over the
//    replicas) in four cases: one replica with the default cache (--cache-ms 1000), one with
//    --cache-ms 0 (every request reads the store), three of each. Each case gets BENCH_SECONDS in
//    all, in BENCH_ROUNDS rounds (the cases take turns, so a change of the machine's load spreads
//    over all of them), each round after a 1 s warm-up (checked, not counted).
//    Every answer must be 200 with the stored access token. Requests/s, p50/p99 latency, and CPU
//    (/proc/PID/stat utime+stime) per 1,000 requests of the replicas, of PostgreSQL (every process
//    of the cluster) and of the generator (process.cpuUsage).
// 2. `mailkey token EMAIL` as whole processes, interleaved run by run: on the file store (its own
//    signed-in HOME on the same lab), and on a host that has only the service's URL and the key
//    (MAILKEY_STORE_URL=http://127.0.0.1:PORT of the first cached replica, MAILKEY_API_KEY_FILE):
//    wall time p50/p99 and CPU per 1,000 runs (this process's cutime+cstime: the reaped children).
// NODE_EXTRA_CA_CERTS is removed from every measured process (makeTmpHome strips it; see
// bench/README.md). Knobs: BENCH_SECONDS (12), BENCH_ROUNDS (3), BENCH_CLIENTS (32), BENCH_RUNS (30).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { startOAuthServer, type LabServer } from '../test/harness/oauth-server.js'
import { startPostgres, type PgServer } from '../test/harness/postgres.js'
import { makeFleet, signInShared, type FleetStore, type Host } from '../test/harness/fleet.js'
import { makeTmpHome, type TmpHome } from '../test/harness/tmp-home.js'
import { BIN } from '../test/harness/cli.js'
import { signIn } from '../test/harness/sign-in.js'

const num = (name: string, dflt: number): number => Number(process.env[name] ?? dflt)
const SECONDS = num('BENCH_SECONDS', 12)
const CLIENTS = num('BENCH_CLIENTS', 32)
const RUNS = num('BENCH_RUNS', 30)
const ROUNDS = num('BENCH_ROUNDS', 3)
const WARM_SECONDS = 1
const CASES = [
  '1 replica, cache (--cache-ms 1000)',
  '1 replica, store read (--cache-ms 0)',
  '3 replicas, cache',
  '3 replicas, store read',
] as const
const EMAIL = 'serve@example.test'
const FILE_EMAIL = 'file@example.test'
const TOKEN_TTL_SEC = 3600

const TICK_MS = ((): number => {
  try {
    return 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
  } catch {
    return 10
  }
})()

const failures: string[] = []
const f1 = (x: number): string => x.toFixed(1)
const f2 = (x: number): string => x.toFixed(2)
const thousands = (x: number): string => Math.round(x).toLocaleString('en-US')
/** CPU ms per request -> CPU seconds per 1,000 requests, 3 significant digits */
const per1000 = (msPerOne: number): string => msPerOne.toPrecision(3)

/** nearest-rank percentile */
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number
}

/** The fields of /proc/PID/stat after the command name (index 0 is field 3, the state). */
function statFields(pid: number | 'self'): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return s.slice(s.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** utime+stime of each process, ms (a process gone meanwhile is left out). */
function cpuMs(pids: number[]): Map<number, number> {
  const out = new Map<number, number>()
  for (const pid of pids) {
    const f = statFields(pid)
    if (f) out.set(pid, (Number(f[11]) + Number(f[12])) * TICK_MS)
  }
  return out
}

/** CPU used between two cpuMs readings, by the processes in the second (new ones from zero). */
const cpuSince = (before: Map<number, number>, after: Map<number, number>): number =>
  [...after].reduce((sum, [pid, ms]) => sum + ms - (before.get(pid) ?? 0), 0)

/** cutime+cstime of this process, ms: the CPU of the children it has reaped. */
function childrenCpuMs(): number {
  const f = statFields('self') as string[]
  return (Number(f[13]) + Number(f[14])) * TICK_MS
}

/** Every process of the cluster: the postmaster (its command line names the dir) and its children (each its own group: setsid). */
function pgProcesses(pg: PgServer): number[] {
  const procs = readdirSync('/proc').flatMap((name) => {
    const f = /^\d+$/.test(name) ? statFields(Number(name)) : undefined
    return f ? [{ pid: Number(name), ppid: Number(f[1]) }] : []
  })
  const postmaster = procs.find((p) => {
    try {
      return readFileSync(`/proc/${p.pid}/cmdline`, 'latin1').includes(pg.dir)
    } catch {
      return false
    }
  })
  if (!postmaster) throw new Error(`no PostgreSQL process found for ${pg.dir}`)
  return [postmaster.pid, ...procs.filter((p) => p.ppid === postmaster.pid).map((p) => p.pid)]
}

interface Replica {
  name: string
  host: Host
  child: ChildProcess
  url: string
  port: number
  logFile: string
}

/** `mailkey serve` on a free loopback port, its output to a file; resolves when it listens. */
async function startReplica(fleet: FleetStore, name: string, cacheMs: number): Promise<Replica> {
  const host = await fleet.host(name)
  const logFile = join(host.home.dir, 'serve.log')
  const fd = openSync(logFile, 'w')
  const args = [BIN, 'serve', '--listen', '127.0.0.1:0', '--cache-ms', String(cacheMs)]
  const child = spawn(process.execPath, args, { env: host.env, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  const end = performance.now() + 30_000
  for (;;) {
    const m = /"event":"listening","url":"(http:\/\/127\.0\.0\.1:(\d+))"/.exec(readFileSync(logFile, 'utf8'))
    if (m) return { name, host, child, url: m[1] as string, port: Number(m[2]), logFile }
    if (child.exitCode !== null || performance.now() > end)
      throw new Error(`replica ${name} did not start: ${readFileSync(logFile, 'utf8')}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function stopReplica(r: Replica): Promise<void> {
  if (r.child.exitCode !== null) return
  const exited = new Promise((resolve) => r.child.once('exit', resolve))
  r.child.kill('SIGTERM')
  await exited
}

interface Target {
  port: number
  path: string
  headers: Record<string, string>
}

/** One GET; resolves with the status and the body. */
function get(agent: Agent, t: Target): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: t.port, path: t.path, headers: t.headers, agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

interface LoadResult {
  ms: number[]
  bad: number
  firstBad: string[]
  seconds: number
}

/** CLIENTS clients for `seconds`, request i to targets[i % n]; every answer checked. */
async function load(targets: Target[], token: string, seconds: number): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, scheduling: 'fifo' }) // fifo: no socket idles into the server's 5 s keep-alive timeout
  const r: LoadResult = { ms: [], bad: 0, firstBad: [], seconds: 0 }
  let next = 0
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  const client = async (): Promise<void> => {
    while (performance.now() < end) {
      const t = targets[next++ % targets.length] as Target
      const s = performance.now()
      let why: string | undefined
      try {
        const a = await get(agent, t)
        r.ms.push(performance.now() - s)
        if (a.status !== 200) why = `status ${a.status}: ${a.body.slice(0, 200)}`
        else if ((JSON.parse(a.body) as { access_token?: unknown }).access_token !== token) why = 'not the stored token'
      } catch (e) {
        why = `request failed: ${String(e)}`
      }
      if (why !== undefined && r.bad++ < 3) r.firstBad.push(why)
    }
  }
  await Promise.all(Array.from({ length: CLIENTS }, client))
  r.seconds = (performance.now() - t0) / 1000
  agent.destroy()
  return r
}

/** A replica writes a request's log line just after its answer: let the last lines land. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300))

interface World {
  pg: PgServer
  lab: LabServer
  fleet: FleetStore
  key: string
}

const rows: string[][] = []
const rates = new Map<string, { rps: number; p50: number; cpu: number }>()

/** Where the answers logged since `from` (byte offsets) came from, per replica and in all. */
function sources(reps: Replica[], from: number[]): { memory: number; store: number; other: number; per: number[] } {
  const out = { memory: 0, store: 0, other: 0, per: [] as number[] }
  for (const [i, r] of reps.entries()) {
    const text = readFileSync(r.logFile).subarray(from[i]).toString('utf8')
    let n = 0
    for (const line of text.split('\n')) {
      if (!line.includes('"event":"request"')) continue
      n++
      if (line.includes('"source":"memory"')) out.memory++
      else if (line.includes('"source":"store"')) out.store++
      else out.other++
    }
    out.per.push(n)
  }
  return out
}

/** One case's figures, summed over its rounds. */
interface Sample {
  label: string
  reps: Replica[]
  cached: boolean
  ms: number[]
  seconds: number
  /** requests/s of each round */
  rounds: number[]
  repCpu: number
  pgCpu: number
  genCpu: number
  memory: number
  store: number
  per: number[]
}

const sample = (label: string, reps: Replica[], cached: boolean): Sample => ({
  label,
  reps,
  cached,
  ms: [],
  seconds: 0,
  rounds: [],
  repCpu: 0,
  pgCpu: 0,
  genCpu: 0,
  memory: 0,
  store: 0,
  per: reps.map(() => 0),
})

/** One round of a load case (warm-up, then `seconds`): figures added to `s`, and the checks. */
async function serviceRound(w: World, s: Sample, seconds: number): Promise<void> {
  const token = (await w.fleet.record(EMAIL))?.grant?.accessToken as string
  const targets = s.reps.map((r) => ({
    port: r.port,
    path: `/v1/accounts/${encodeURIComponent(EMAIL)}/token`,
    headers: { authorization: `Bearer ${w.key}` },
  }))
  const warm = await load(targets, token, WARM_SECONDS)
  await settle()
  const from = s.reps.map((r) => statSync(r.logFile).size)
  const refreshes = w.lab.refreshLog.length
  const pids = s.reps.map((r) => r.child.pid as number)
  const [rep0, pg0, gen0] = [cpuMs(pids), cpuMs(pgProcesses(w.pg)), process.cpuUsage()]
  const r = await load(targets, token, seconds)
  const gen = process.cpuUsage(gen0)
  s.repCpu += cpuSince(rep0, cpuMs(pids))
  s.pgCpu += cpuSince(pg0, cpuMs(pgProcesses(w.pg)))
  s.genCpu += (gen.user + gen.system) / 1000
  s.seconds += r.seconds
  s.rounds.push(r.ms.length / r.seconds)
  for (const x of r.ms) s.ms.push(x)
  await settle()
  const src = sources(s.reps, from)
  ;[s.memory, s.store] = [s.memory + src.memory, s.store + src.store]
  for (const [i, n] of src.per.entries()) s.per[i] = (s.per[i] ?? 0) + n
  const label = s.label
  if (warm.bad + r.bad) failures.push(`${label}: ${warm.bad + r.bad} bad answers: ${[...warm.firstBad, ...r.firstBad]}`)
  if (w.lab.refreshLog.length !== refreshes) failures.push(`${label}: ${w.lab.refreshLog.length - refreshes} refreshes`)
  if (src.memory + src.store !== r.ms.length)
    failures.push(`${label}: ${r.ms.length} answers, logged ${src.memory}+${src.store}+${src.other}`)
  if (!s.cached && src.memory) failures.push(`${label}: ${src.memory} answers from memory with --cache-ms 0`)
  if ((await w.fleet.record(EMAIL))?.grant?.accessToken !== token) failures.push(`${label}: the stored token changed`)
  console.log(`  ${label}: ${r.ms.length} requests in ${f1(r.seconds)} s`)
}

/** A case's row of the table. */
function summarize(s: Sample): void {
  const n = s.ms.length
  rates.set(s.label, { rps: n / s.seconds, p50: pct(s.ms, 50), cpu: (s.repCpu / n) * 1000 })
  rows.push([
    s.label,
    thousands(n),
    `${thousands(n / s.seconds)} (${s.rounds.map(thousands).join(', ')})`,
    f2(pct(s.ms, 50)),
    f2(pct(s.ms, 99)),
    per1000(s.repCpu / n),
    per1000(s.pgCpu / n),
    per1000(s.genCpu / n),
    `${thousands(s.memory)} / ${thousands(s.store)}${s.reps.length > 1 ? ` (${s.per.map(thousands).join(', ')})` : ''}`,
  ])
}

interface ProcCase {
  label: string
  email: string
  env: Record<string, string>
  /** the stored access token */
  expect: string
  ms: number[]
  cpu: number
}

/** `mailkey token` once; wall ms and the CPU of the process (reaped: this process's cutime). */
function tokenRun(c: ProcCase): Promise<void> {
  return new Promise((resolve, reject) => {
    const cpu0 = childrenCpuMs()
    const t0 = performance.now()
    const child = spawn(process.execPath, [BIN, 'token', c.email], {
      env: c.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.once('error', reject)
    child.once('close', (code) => {
      c.ms.push(performance.now() - t0)
      c.cpu += childrenCpuMs() - cpu0
      if (code !== 0 || out !== `${c.expect}\n`) failures.push(`${c.label}: exit ${code}: ${out.slice(0, 300)}`)
      resolve()
    })
  })
}

const procRows: string[][] = []
const procs = new Map<string, ProcCase>()

/** `mailkey token` on the file store and through the service, interleaved run by run. */
async function processCases(cases: ProcCase[], replica: Replica): Promise<void> {
  for (let i = 0; i < 3; i++) for (const c of cases) await tokenRun(c)
  for (const c of cases) [c.ms, c.cpu] = [[], 0]
  const pid = replica.child.pid as number
  const rep0 = cpuMs([pid])
  for (let i = 0; i < RUNS; i++) for (const c of cases) await tokenRun(c)
  const repCpu = cpuSince(rep0, cpuMs([pid]))
  for (const c of cases) {
    procs.set(c.label, c)
    const service = c.env.MAILKEY_STORE_URL !== undefined
    procRows.push([
      c.label,
      String(c.ms.length),
      f1(pct(c.ms, 50)),
      f1(pct(c.ms, 99)),
      per1000(c.cpu / c.ms.length),
      service ? per1000(repCpu / c.ms.length) : '-',
    ])
    console.log(`  ${c.label}: ${procRows.at(-1)?.slice(1).join(' | ')}`)
  }
}

/** PostgreSQL, the lab, the store, EMAIL signed in, the key. */
async function world(): Promise<World & { admin: Host; version: string }> {
  const [pg, lab] = await Promise.all([
    startPostgres({ durable: true }),
    startOAuthServer({ accessTokenTtlSec: TOKEN_TTL_SEC, deviceInterval: 1 }),
  ])
  const version = (await pg.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? '?'
  const fleet = await makeFleet(pg)
  const admin = await fleet.host('admin')
  const init = await admin.cli(['store', 'init'])
  if (init.code !== 0) throw new Error(`store init: ${init.stderr}`)
  await signInShared(lab, admin, fleet, EMAIL)
  const add = await admin.cli(['serve', 'key', 'add', 'bench', '--all', '--json'])
  if (add.code !== 0) throw new Error(`serve key add: ${add.stderr}`)
  const { key } = JSON.parse(add.stdout) as { key: string }
  return { pg, lab, fleet, key, admin, version: version.split(' ')[0] as string }
}

/** A host with only the service's URL and a key file. */
async function workerEnv(home: TmpHome, replica: Replica, key: string): Promise<Record<string, string>> {
  const keyFile = join(home.dir, 'api.key')
  await writeFile(keyFile, `${key}\n`, { mode: 0o600 })
  return { ...home.env, MAILKEY_STORE_URL: replica.url, MAILKEY_API_KEY_FILE: keyFile }
}

async function measure(w: World, homes: { file: TmpHome; worker: TmpHome }, reps: Replica[]): Promise<void> {
  const [c1, c2, c3, s1, s2, s3] = reps as [Replica, Replica, Replica, Replica, Replica, Replica]
  console.log(`\n# token requests, ${CLIENTS} clients, ${SECONDS} s each in ${ROUNDS} rounds`)
  const cases = [
    sample(CASES[0], [c1], true),
    sample(CASES[1], [s1], false),
    sample(CASES[2], [c1, c2, c3], true),
    sample(CASES[3], [s1, s2, s3], false),
  ]
  for (let round = 0; round < ROUNDS; round++) for (const c of cases) await serviceRound(w, c, SECONDS / ROUNDS)
  for (const c of cases) summarize(c)
  console.log(`\n# mailkey token processes, ${RUNS} runs each, interleaved`)
  const fileToken = JSON.parse(
    readFileSync(join(homes.file.env.XDG_STATE_HOME as string, 'mailkey', 'accounts', `${FILE_EMAIL}.json`), 'utf8'),
  ) as { grant: { accessToken: string } }
  const stored = (await w.fleet.record(EMAIL))?.grant?.accessToken as string
  await processCases(
    [
      {
        label: '`mailkey token`, file store',
        email: FILE_EMAIL,
        env: homes.file.env,
        expect: fileToken.grant.accessToken,
        ms: [],
        cpu: 0,
      },
      {
        label: '`mailkey token` through the service (1 replica, cache)',
        email: EMAIL,
        env: await workerEnv(homes.worker, c1, w.key),
        expect: stored,
        ms: [],
        cpu: 0,
      },
    ],
    c1,
  )
}

async function main(): Promise<void> {
  const t0 = performance.now()
  const load0 = loadavg()
  const w = await world()
  const homes = { file: await makeTmpHome(), worker: await makeTmpHome() }
  const reps: Replica[] = []
  try {
    await signIn(w.lab, homes.file.env, FILE_EMAIL)
    for (const [p, cache] of [
      ['c', 1000],
      ['s', 0],
    ] as const)
      for (let i = 1; i <= 3; i++) reps.push(await startReplica(w.fleet, `${p}${i}`, cache))
    await measure(w, homes, reps)
    report(w.version, load0, performance.now() - t0)
  } finally {
    await Promise.all(reps.map(stopReplica))
    await Promise.all([w.fleet.cleanup(), homes.file.cleanup(), homes.worker.cleanup()])
    await Promise.all([w.pg.close(), w.lab.close()])
  }
}

const x = (a: number, b: number): string => `${(a / b).toFixed(2)}x`

function ratios(): string[] {
  const g = (k: string): { rps: number; p50: number; cpu: number } => rates.get(k) ?? { rps: NaN, p50: NaN, cpu: NaN }
  const [c1, s1, c3, s3] = CASES.map(g) as [
    ReturnType<typeof g>,
    ReturnType<typeof g>,
    ReturnType<typeof g>,
    ReturnType<typeof g>,
  ]
  const file = procs.get('`mailkey token`, file store')
  const svc = procs.get('`mailkey token` through the service (1 replica, cache)')
  const out = [
    `3 replicas / 1 replica, requests/s: cache ${x(c3.rps, c1.rps)}, store read ${x(s3.rps, s1.rps)}`,
    `cache / store read, requests/s: 1 replica ${x(c1.rps, s1.rps)}, 3 replicas ${x(c3.rps, s3.rps)}; replica CPU per request: store read / cache ${x(s1.cpu, c1.cpu)}`,
  ]
  if (file && svc) {
    const fileCpu = file.cpu / file.ms.length
    out.push(
      `\`mailkey token\` (file store) / one service request (1 replica, cache): p50 ${x(pct(file.ms, 50), c1.p50)}, CPU ${x(fileCpu * 1000, c1.cpu)}`,
      `\`mailkey token\` through the service / on the file store: p50 ${x(pct(svc.ms, 50), pct(file.ms, 50))}, CPU ${x(svc.cpu, file.cpu)}`,
    )
  }
  return out
}

function report(pgVersion: string, load0: number[], ms: number): void {
  console.log('\n## Token service\n')
  console.log(
    `| ${CLIENTS} clients, ${SECONDS} s | requests | requests/s (each round) | p50 ms | p99 ms | CPU s / 1,000 req: replicas | PostgreSQL | generator | answers from memory / store (per replica) |`,
  )
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const r of rows) console.log(`| ${r.join(' | ')} |`)
  console.log(`\n| process | runs | p50 ms | p99 ms | CPU s / 1,000 runs | replica CPU s / 1,000 |`)
  console.log('|---|---|---|---|---|---|')
  for (const r of procRows) console.log(`| ${r.join(' | ')} |`)
  console.log('')
  for (const r of ratios()) console.log(`- ${r}`)
  console.log(
    `\nmachine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, PostgreSQL ${pgVersion}; ` +
      `load average ${load0.map(f2).join(' ')} at the start, ${loadavg().map(f2).join(' ')} at the end; ` +
      `${(ms / 1000).toFixed(0)} s in all; clock tick ${TICK_MS} ms`,
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
