// Mail submission through `mailkey proxy`: Microsoft Graph (issue 16) beside SMTP, as ratios in one
// run (not a CI gate). Run: npm run bench:graph
//
// Everything on 127.0.0.1, in this process unless said: the lab OAuth server, the SMTP testbed
// (test/harness/smtp-server.ts: STARTTLS, XOAUTH2 checked by introspection once per login) and the
// Graph emulator (test/harness/graph-server.ts: HTTPS with a test CA, every request's token checked
// by introspection at the lab). One home, two accounts: one sends over SMTP (the proxy logs in
// upstream and splices), one with --graph (the proxy reads each message and POSTs it to
// /me/sendMail). The built `mailkey proxy --smtp-port 0` is a child process; NODE_EXTRA_CA_CERTS is
// removed from its environment (makeTmpHome). The client is a minimal raw SMTP client here (AUTH
// PLAIN with the local password, one command at a time, no pipelining).
//
// Three cases, interleaved in every round (the order rotates): SMTP; Graph; Graph with the
// emulator's introspection answered from a cache (what is left is the proxy's own path: reading
// the message, the token, one HTTPS request per message). Measured per case and round:
// (a) messages/s of N sequential messages on one connection, (b) messages/s of C connections
// sending M each at once, (c) one 2 MB message, DATA sent -> 250 received. Also the proxy's CPU
// per message (/proc/PID/stat), this process's CPU (servers + client), logins, and the proxy's
// VmRSS and open descriptors before and after. Checked: every message got 250 and arrived once.
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { Agent, request } from 'node:https'
import { connect, type Socket } from 'node:net'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { makeTestCA } from '../test/harness/certs.js'
import { runCli, spawnCli, type LiveCli } from '../test/harness/cli.js'
import { startGraphServer } from '../test/harness/graph-server.js'
import { startOAuthServer, type LabServer } from '../test/harness/oauth-server.js'
import { labFlags } from '../test/harness/sign-in.js'
import { startSmtp } from '../test/harness/smtp-server.js'
import { makeTmpHome, recordFile } from '../test/harness/tmp-home.js'
import { median } from './lib.js'

const SEQ = Number(process.env.BENCH_GRAPH_SEQ ?? 200)
const CONNS = Number(process.env.BENCH_GRAPH_CONNS ?? 8)
const PER_CONN = Number(process.env.BENCH_GRAPH_PER_CONN ?? 50)
const ROUNDS = Number(process.env.BENCH_GRAPH_ROUNDS ?? 7)
const SMALL = 10 * 1024
const BIG = 2 * 1024 * 1024
const SMTP_USER = 'smtp-sender@example.test'
const GRAPH_USER = 'graph-sender@example.test'
const RCPT = 'rcpt@example.test'
const LOCAL_PW = 'bench graph local pw'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(s.length * p) - 1)] as number
}

/** A minimal SMTP client: one command at a time, replies read whole (multi-line included). */
class SmtpClient {
  private text = ''
  private lines: string[] = []
  private replies: string[] = []
  private waiters: { resolve: (r: string) => void; reject: (e: Error) => void }[] = []
  private failure: Error | undefined
  readonly sock: Socket
  constructor(sock: Socket) {
    this.sock = sock
    sock.setNoDelay(true)
    sock.setEncoding('latin1').on('data', (d: string) => this.onData(d))
    const fail = (e: Error): void => {
      this.failure ??= e
      for (const w of this.waiters.splice(0)) w.reject(e)
    }
    sock.on('error', fail)
    sock.once('close', () => fail(new Error('connection closed')))
  }
  private onData(d: string): void {
    this.text += d
    let nl
    while ((nl = this.text.indexOf('\r\n')) >= 0) {
      const line = this.text.slice(0, nl)
      this.text = this.text.slice(nl + 2)
      this.lines.push(line)
      if (/^\d{3}(?: |$)/.test(line)) {
        const r = this.lines.join('\n')
        this.lines = []
        const w = this.waiters.shift()
        if (w) w.resolve(r)
        else this.replies.push(r)
      }
    }
  }
  reply(): Promise<string> {
    const r = this.replies.shift()
    if (r !== undefined) return Promise.resolve(r)
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }
  async cmd(line: string | Buffer, expect: string): Promise<string> {
    this.sock.write(line)
    const r = await this.reply()
    if (!r.startsWith(expect)) throw new Error(`expected ${expect} after ${String(line).slice(0, 40)}: ${r}`)
    return r
  }
  /** one message: MAIL, RCPT, DATA, the (dot-stuffing-free) message and ".", 250 expected */
  async send(from: string, msg: Buffer): Promise<void> {
    await this.cmd(`MAIL FROM:<${from}>\r\n`, '250')
    await this.cmd(`RCPT TO:<${RCPT}>\r\n`, '250')
    await this.cmd('DATA\r\n', '354')
    this.sock.write(msg)
    await this.cmd('.\r\n', '250')
  }
  async quit(): Promise<void> {
    await this.cmd('QUIT\r\n', '221').catch(() => undefined)
    this.sock.destroy()
  }
}

/** connect, 220, EHLO, AUTH PLAIN with the local password -> 235; resolves with the login's ms too */
async function login(port: number, user: string): Promise<{ c: SmtpClient; ms: number }> {
  const t0 = performance.now()
  const sock = connect({ host: '127.0.0.1', port })
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve)
    sock.once('error', reject)
  })
  const c = new SmtpClient(sock)
  const greeting = await c.reply()
  if (!greeting.startsWith('220')) throw new Error(`greeting: ${greeting}`)
  await c.cmd('EHLO bench.example\r\n', '250')
  await c.cmd(`AUTH PLAIN ${Buffer.from(`\0${user}\0${LOCAL_PW}`).toString('base64')}\r\n`, '235')
  return { c, ms: performance.now() - t0 }
}

/** A message of exactly `bytes` bytes, CRLF lines of 78 characters, no line starting with "." */
function message(from: string, bytes: number, tag: string): Buffer {
  const head = [
    `From: Bench <${from}>`,
    `To: <${RCPT}>`,
    `Subject: bench ${tag}`,
    'Date: Sun, 06 Dec 2026 10:00:00 +0000',
    `Message-ID: <${tag}.${Date.now()}@bench.example>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    '',
  ].join('\r\n')
  const line = 'The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwx\r\n'
  const body = line.repeat(Math.ceil((bytes - head.length) / line.length) + 1)
  return Buffer.from((head + body).slice(0, bytes - 2) + '\r\n', 'latin1')
}

/** CPU seconds (utime + stime) of a process, from /proc/PID/stat (10 ms ticks) */
function cpuOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
  return (Number(rest[11]) + Number(rest[12])) / 100
}
const selfCpu = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}
const vmRss = (pid: number): number =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024
const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length

/** the proxy's JSON log lines (stderr) */
function proxyLog(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

interface Case {
  name: string
  user: string
  cachedIntrospection: boolean
}
const CASES: Case[] = [
  { name: 'SMTP (splice to the SMTP server)', user: SMTP_USER, cachedIntrospection: false },
  { name: 'Graph (emulator introspects each request)', user: GRAPH_USER, cachedIntrospection: false },
  { name: 'Graph, emulator introspection cached', user: GRAPH_USER, cachedIntrospection: true },
]

interface Sample {
  value: number
  proxyCpuMs: number // per message
  selfCpuMs: number // per message
  introspectMs: number // emulator introspection, mean per message
}

/** What the bench measures with: the running proxy, its lab, and the counters of what arrived. */
interface Rig {
  port: number
  pid: number
  lab: LabServer
  arrived: () => { smtp: number; graph: number }
  introspection: { cached: boolean; ms: number; calls: number }
  logins: Map<string, number[]>
}

/** Runs `work` (sending `msgs` messages) under CPU and introspection accounting; checks arrivals. */
async function measured(rig: Rig, k: Case, msgs: number, work: () => Promise<number>): Promise<Sample> {
  rig.introspection.cached = k.cachedIntrospection
  const before = rig.arrived()
  const [p0, s0, i0, n0] = [cpuOf(rig.pid), selfCpu(), rig.introspection.ms, rig.introspection.calls]
  const value = await work()
  const [p1, s1] = [cpuOf(rig.pid), selfCpu()]
  const after = rig.arrived()
  const isGraph = k.user === GRAPH_USER
  const got = isGraph ? after.graph - before.graph : after.smtp - before.smtp
  const other = isGraph ? after.smtp - before.smtp : after.graph - before.graph
  if (got !== msgs || other !== 0) throw new Error(`${k.name}: ${msgs} sent, ${got} arrived (${other} elsewhere)`)
  const calls = rig.introspection.calls - n0
  return {
    value,
    proxyCpuMs: ((p1 - p0) * 1000) / msgs,
    selfCpuMs: ((s1 - s0) * 1000) / msgs,
    introspectMs: calls ? (rig.introspection.ms - i0) / msgs : 0,
  }
}

async function open(rig: Rig, k: Case): Promise<SmtpClient> {
  const { c, ms } = await login(rig.port, k.user)
  rig.logins.get(k.name)?.push(ms)
  return c
}

/** (a) SEQ messages of 10 KB, one after the other, on one connection: messages/s */
async function sequential(rig: Rig, k: Case, n: number): Promise<Sample> {
  const c = await open(rig, k)
  const msgs = Array.from({ length: n }, (_, i) => message(k.user, SMALL, `seq-${i}`))
  const s = await measured(rig, k, n, async () => {
    const t0 = performance.now()
    for (const m of msgs) await c.send(k.user, m)
    return n / ((performance.now() - t0) / 1000)
  })
  await c.quit()
  return s
}

/** (b) CONNS connections logged in first, then PER_CONN messages of 10 KB on each at once: messages/s */
async function concurrent(rig: Rig, k: Case, conns: number, per: number): Promise<Sample> {
  const cs = await Promise.all(Array.from({ length: conns }, () => open(rig, k)))
  const msgs = Array.from({ length: per }, (_, i) => message(k.user, SMALL, `conc-${i}`))
  const s = await measured(rig, k, conns * per, async () => {
    const t0 = performance.now()
    await Promise.all(
      cs.map(async (c) => {
        for (const m of msgs) await c.send(k.user, m)
      }),
    )
    return (conns * per) / ((performance.now() - t0) / 1000)
  })
  await Promise.all(cs.map((c) => c.quit()))
  return s
}

/** (c) one 2 MB message on a logged-in connection, envelope sent: DATA's message written -> 250, ms */
async function big(rig: Rig, k: Case, msg: Buffer): Promise<Sample> {
  const c = await open(rig, k)
  const s = await measured(rig, k, 1, async () => {
    await c.cmd(`MAIL FROM:<${k.user}>\r\n`, '250')
    await c.cmd(`RCPT TO:<${RCPT}>\r\n`, '250')
    await c.cmd('DATA\r\n', '354')
    const t0 = performance.now()
    c.sock.write(msg)
    await c.cmd('.\r\n', '250')
    return performance.now() - t0
  })
  await c.quit()
  return s
}

/** `mailkey add EMAIL --device` in the lab, approving every device code it shows (two with --graph) */
async function add(lab: LabServer, env: Record<string, string>, email: string, flags: string[]): Promise<void> {
  const cli = spawnCli(['add', email, '--device', '--json', ...labFlags(lab), ...flags], env)
  let approved = 0
  while (cli.child.exitCode === null || cli.events('device_code').length > approved) {
    const codes = cli.events('device_code')
    if (codes.length > approved) {
      await lab.approveDevice(String(codes[approved]?.user_code), { login: email })
      approved++
    } else await sleep(100)
  }
  const r = await cli.done
  if (r.code !== 0) throw new Error(`mailkey add ${email} failed: ${r.stderr}`)
  const pw = await runCli(['proxy', 'password', email], env, { stdin: LOCAL_PW + '\n' })
  if (pw.code !== 0) throw new Error(`proxy password failed: ${pw.stderr}`)
}

/**
 * (d) The HTTPS floor, in this process: the same sendMail request (10 KB message, the Graph
 * account's token, introspection cached) straight to the emulator, on a fresh connection per
 * request (as the proxy did before it kept connections per account) and on one keep-alive connection. ms/request and
 * this process's CPU per request (client and emulator both).
 */
async function httpsFloor(rig: Rig, url: string, ca: string, token: string): Promise<Map<string, Sample[]>> {
  rig.introspection.cached = true
  const body = Buffer.from(message(GRAPH_USER, SMALL, 'floor').toString('base64'))
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'text/plain', 'content-length': body.length }
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1, ca })
  const post = (agent: Agent | false): Promise<void> =>
    new Promise((resolve, reject) => {
      const r = request(`${url}/me/sendMail`, { method: 'POST', agent, ca, headers }, (a) => {
        a.resume().once('end', () => (a.statusCode === 202 ? resolve() : reject(new Error(`${a.statusCode}`))))
      })
      r.once('error', reject).end(body)
    })
  const kinds = [
    ['HTTPS POST, fresh connection each (the proxy before keep-alive)', false],
    ['HTTPS POST, one keep-alive connection', keepAlive],
  ] as const
  const res = new Map<string, Sample[]>(kinds.map(([name]) => [name, []]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, agent] of r % 2 ? [...kinds].reverse() : kinds) {
      const s0 = selfCpu()
      const t0 = performance.now()
      for (let i = 0; i < SEQ; i++) await post(agent)
      const ms = (performance.now() - t0) / SEQ
      res.get(name)?.push({ value: ms, proxyCpuMs: 0, selfCpuMs: ((selfCpu() - s0) * 1000) / SEQ, introspectMs: 0 })
      rig.arrived()
    }
  }
  keepAlive.destroy()
  return res
}

type Results = Map<string, { seq: Sample[]; conc: Sample[]; big: Sample[] }>

/** ROUNDS rounds; in each, every case runs (a), (b) and (c), the case order rotating per round. */
async function measure(rig: Rig): Promise<Results> {
  const res: Results = new Map(CASES.map((k) => [k.name, { seq: [], conc: [], big: [] }]))
  const bigMsg = new Map(CASES.map((k) => [k.name, message(k.user, BIG, 'big')]))
  for (const k of CASES) {
    await sequential(rig, k, 20) // warm-up, not counted
    await big(rig, k, bigMsg.get(k.name) as Buffer)
  }
  rig.logins.forEach((xs) => (xs.length = 0))
  for (let r = 0; r < ROUNDS; r++) {
    const order = CASES.map((_, i) => CASES[(i + r) % CASES.length] as Case)
    for (const k of order) res.get(k.name)?.seq.push(await sequential(rig, k, SEQ))
    for (const k of order) res.get(k.name)?.conc.push(await concurrent(rig, k, CONNS, PER_CONN))
    for (const k of order) res.get(k.name)?.big.push(await big(rig, k, bigMsg.get(k.name) as Buffer))
    const at = `load ${loadavg()[0]?.toFixed(2)}, proxy VmRSS ${vmRss(rig.pid).toFixed(1)} MiB, fds ${fds(rig.pid)}`
    process.stderr.write(`round ${r + 1}/${ROUNDS} done: ${at}\n`)
  }
  return res
}

function table(res: Results, which: 'seq' | 'conc' | 'big', unit: string, higherIsBetter: boolean): string[] {
  const base = median((res.get(CASES[0]?.name as string)?.[which] ?? []).map((s) => s.value))
  const out = [
    `| case | median ${unit} | min | max | Graph/SMTP | proxy CPU ms/msg | bench-process CPU ms/msg | emulator introspection ms/msg |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const k of CASES) {
    const xs = res.get(k.name)?.[which] ?? []
    const v = xs.map((s) => s.value)
    const m = median(v)
    const ratio = k === CASES[0] ? '1.00' : (m / base).toFixed(2)
    const f = (g: (s: Sample) => number): string => median(xs.map(g)).toFixed(2)
    out.push(
      `| ${k.name} | ${m.toFixed(1)} | ${Math.min(...v).toFixed(1)} | ${Math.max(...v).toFixed(1)} | ${ratio}x | ${f((s) => s.proxyCpuMs)} | ${f((s) => s.selfCpuMs)} | ${f((s) => s.introspectMs)} |`,
    )
  }
  if (!higherIsBetter) out.push(`\n(Graph/SMTP for ${unit}: above 1 = Graph slower)`)
  else out.push(`\n(Graph/SMTP for ${unit}: below 1 = Graph slower)`)
  return out
}

function report(rig: Rig, res: Results, floor: Map<string, Sample[]>, notes: string[]): string {
  const out: string[] = []
  out.push(`\n### (a) ${SEQ} x 10 KB sequential on one connection, ${ROUNDS} interleaved rounds\n`)
  out.push(...table(res, 'seq', 'msgs/s', true))
  out.push(`\n### (b) ${CONNS} connections x ${PER_CONN} x 10 KB at once, ${ROUNDS} rounds\n`)
  out.push(...table(res, 'conc', 'msgs/s', true))
  out.push(`\n### (c) one 2 MB message: message written -> 250, ${ROUNDS} rounds\n`)
  out.push(...table(res, 'big', 'ms', false))
  out.push(
    `\n### (d) the HTTPS floor: ${SEQ} sendMail requests straight to the emulator (introspection cached), ${ROUNDS} rounds\n`,
  )
  out.push('| request | median ms/request | min | max | bench-process CPU ms/request (client + emulator) |')
  out.push('|---|---:|---:|---:|---:|')
  for (const [name, xs] of floor) {
    const v = xs.map((s) => s.value)
    const cpu = median(xs.map((s) => s.selfCpuMs)).toFixed(2)
    out.push(
      `| ${name} | ${median(v).toFixed(2)} | ${Math.min(...v).toFixed(2)} | ${Math.max(...v).toFixed(2)} | ${cpu} |`,
    )
  }
  out.push('\n### logins (connect -> 235, every connection of the rounds)\n')
  out.push('| case | n | p50 ms | p90 ms |', '|---|---:|---:|---:|')
  for (const [name, xs] of rig.logins)
    out.push(`| ${name} | ${xs.length} | ${median(xs).toFixed(1)} | ${pct(xs, 0.9).toFixed(1)} |`)
  out.push('', ...notes)
  out.push(
    `\nmachine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}`,
  )
  return out.join('\n')
}

async function main(): Promise<void> {
  const load0 = loadavg()
  const t0 = Date.now()
  const lab = await startOAuthServer({ deviceInterval: 1 })
  const certDir = await mkdtemp(join(tmpdir(), 'mailkey-bench-graph-'))
  const pki = await makeTestCA(certDir)
  const smtp = await startSmtp({ introspect: (t, s) => lab.introspect(t, { service: s }), tls: pki })
  const introspection = { cached: false, ms: 0, calls: 0 }
  const cache = new Map<string, Record<string, unknown>>()
  const graph = await startGraphServer({
    tls: pki,
    introspect: async (t) => {
      const hit = introspection.cached ? cache.get(t) : undefined
      if (hit) return hit
      const a = performance.now()
      const info = await lab.introspectGraph(t)
      introspection.ms += performance.now() - a
      introspection.calls++
      cache.set(t, info)
      return info
    },
  })
  const home = await makeTmpHome()
  let proxy: LiveCli | undefined
  try {
    const servers = ['--smtp-url', `smtp://localhost:${smtp.ports.submission}`, '--ca', pki.caFile]
    await add(lab, home.env, SMTP_USER, servers)
    await add(lab, home.env, GRAPH_USER, [...servers, '--graph', '--graph-url', graph.url])
    proxy = spawnCli(['proxy', '--smtp-port', '0'], home.env)
    const port = Number((await proxy.event('listening', 15_000)).port)
    const pid = proxy.child.pid as number
    let [smtpSeen, graphSeen] = [0, 0]
    const arrived = (): { smtp: number; graph: number } => {
      // count, then drop what the servers keep (the emulator holds every message's bytes)
      smtpSeen += smtp.received.splice(0).length
      graphSeen += (graph.received as unknown[]).splice(0).length
      return { smtp: smtpSeen, graph: graphSeen }
    }
    const logins = new Map(CASES.map((k) => [k.name, [] as number[]]))
    const rig: Rig = { port, pid, lab, arrived, introspection, logins }
    const refresh0 = lab.counts.refresh
    const graphReq0 = graph.requests.length
    await sequential(rig, CASES[1] as Case, 5) // the proxy's first Graph message, before the baseline
    await sleep(1000)
    const [rss0, fd0] = [vmRss(pid), fds(pid)]
    const res = await measure(rig)
    await sleep(3000)
    const [rss1, fd1] = [vmRss(pid), fds(pid)]
    const logLines = proxyLog(proxy.stderr())
    const submits = logLines.filter((e) => e.event === 'graph-submit')
    const statuses = graph.requests.slice(graphReq0).map((q) => q.status)
    const arrivedInRounds = rig.arrived()
    const rec = JSON.parse(readFileSync(recordFile(home.env, GRAPH_USER), 'utf8')) as Record<string, any>
    const floor = await httpsFloor(rig, graph.url, pki.caPem, String(rec.grant.resources.graph.accessToken))
    const notes = [
      `- Graph requests through the proxy (warm-ups included): ${statuses.length}, all 202: ${statuses.every((s) => s === 202)}; ` +
        `messages arrived: SMTP ${arrivedInRounds.smtp}, Graph ${arrivedInRounds.graph}; token refreshes at the lab: ${lab.counts.refresh - refresh0}`,
      `- proxy VmRSS ${rss0.toFixed(1)} -> ${rss1.toFixed(1)} MiB, open descriptors ${fd0} -> ${fd1} (before the rounds -> 3 s after)`,
      `- proxy log lines (stderr): ${logLines.length}; graph-submit: ${submits.length}, outcome not "accepted": ${submits.filter((e) => e.outcome !== 'accepted').length}; warn/error: ${logLines.filter((e) => e.level !== 'info').length}`,
      `- load average at the start ${load0.map((x) => x.toFixed(2)).join(' ')}, at the end ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}; ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    ]
    console.log(report(rig, res, floor, notes))
  } finally {
    proxy?.child.kill('SIGTERM')
    await Promise.race([proxy?.done, sleep(12_000)])
    await graph.close()
    await smtp.stop()
    await lab.close()
    await home.cleanup()
    await rm(certDir, { recursive: true, force: true })
  }
}

await main()
