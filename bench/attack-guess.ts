// Password guessing against `mailkey proxy` (issue 11, item 3). Not a CI gate.
// Run: npm run build && node --import tsx bench/attack-guess.ts
//
// Everything on 127.0.0.1: the lab OAuth server, Dovecot (the upstream), and the built proxy of this
// checkout (`mailkey proxy --imap-port 0`, default settings). Then, for BENCH_ATTACK_SEC seconds:
// - BENCH_ATTACKERS (200) parallel connections send IMAP LOGIN with a fresh wrong password each
//   time, reconnecting when the proxy closes them; every tagged reply is counted:
//   AUTHENTICATIONFAILED = a wrong guess that was checked, UNAVAILABLE = refused unchecked. The
//   attackers run in a child process as another local user (BENCH_ATTACKER_UID, default 65534
//   "nobody", via setpriv; needs root) — the "other local users" — or, with
//   BENCH_ATTACKER_UID=same, as the same user as the owner;
// - BENCH_OWNER_AFTER_SEC (3) seconds in, the owner logs in with the right password: the first
//   login of this process (not remembered), retried every second after a temporary refusal as a
//   mail client would; once in, the owner logs in again (remembered). Each time from connect to
//   the tagged OK, and the number of attempts.
// The attack runs until BENCH_ATTACK_SEC have passed and the owner is done, at most
// BENCH_MAX_SEC (150): the run always stops by itself. Guesses/s are over the attack's length.
import { mkdir } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { cpus } from 'node:os'
import { spawn } from 'node:child_process'
import { startOAuthServer, introspectionUrl } from '../test/harness/oauth-server.js'
import { makeTmpHome } from '../test/harness/tmp-home.js'
import { runCli, spawnCli } from '../test/harness/cli.js'
import { labFlags, signIn } from '../test/harness/sign-in.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT } from '../test/harness/dovecot.js'

const ATTACKERS = Math.min(500, Number(process.env.BENCH_ATTACKERS ?? 200))
const ATTACK_SEC = Math.min(120, Number(process.env.BENCH_ATTACK_SEC ?? 30))
const OWNER_AFTER_SEC = Number(process.env.BENCH_OWNER_AFTER_SEC ?? 3)
const MAX_SEC = Math.min(300, Number(process.env.BENCH_MAX_SEC ?? 150))
const ATTACKER_UID = process.env.BENCH_ATTACKER_UID ?? (process.getuid?.() === 0 ? '65534' : 'same')
const ALICE = 'alice@example.test'
const LOCAL_PW = 'bench-local-pw'

/** One IMAP connection to the proxy: greeting, then LOGIN after LOGIN until it closes or `stop`. */
function session(port: number): { sock: Socket; next: () => Promise<string | undefined> } {
  const sock = connect(port, '127.0.0.1')
  sock.setNoDelay(true)
  let buf = ''
  let closed = false
  let waiter: (() => void) | undefined
  sock.setEncoding('latin1').on('data', (d: string) => {
    buf += d
    waiter?.()
  })
  sock.on('close', () => {
    closed = true
    waiter?.()
  })
  sock.on('error', () => {})
  /** the next complete line, or undefined once closed */
  const next = async (): Promise<string | undefined> => {
    for (;;) {
      const nl = buf.indexOf('\r\n')
      if (nl >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 2)
        return line
      }
      if (closed) return undefined
      await new Promise<void>((r) => (waiter = r))
      waiter = undefined
    }
  }
  return { sock, next }
}

/**
 * The attackers, in a child process (plain node:net, no imports: it may run as another user that
 * cannot read this checkout): N loops of connect -> LOGIN with a new wrong password -> count the
 * reply, until told to stop on stdin; then the counts as JSON on stdout.
 */
const ATTACKER_JS = `
const net = require('net')
const [port, n, user] = [Number(process.argv[1]), Number(process.argv[2]), process.argv[3]]
const counts = { checked: 0, refusedUnchecked: 0, other: 0, connections: 0 }
let stop = false
let guess = 0
const open = new Set()
process.stdin.on('data', () => { stop = true; for (const s of open) s.destroy() })
function one() {
  return new Promise((done) => {
    if (stop) return done()
    const s = net.connect(port, '127.0.0.1')
    open.add(s)
    counts.connections++
    s.setNoDelay(true)
    let buf = '', greeted = false, tag = ''
    const send = () => { tag = 'x' + (guess++); s.write(tag + ' LOGIN "' + user + '" "wrong-' + guess + '-' + Math.random().toString(36).slice(2) + '"\\r\\n') }
    s.setEncoding('latin1').on('data', (d) => {
      buf += d
      let nl
      while ((nl = buf.indexOf('\\r\\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 2)
        if (!greeted) { greeted = true; if (!stop) send(); continue }
        if (!line.startsWith(tag + ' ')) continue
        if (stop) return s.destroy()
        if (/AUTHENTICATIONFAILED/.test(line)) counts.checked++
        else if (/UNAVAILABLE/.test(line)) counts.refusedUnchecked++
        else counts.other++
        send()
      }
    })
    s.on('error', () => {})
    s.on('close', () => { open.delete(s); done() })
  })
}
async function loop() { while (!stop) await one() }
Promise.all(Array.from({ length: n }, loop)).then(() => { process.stdout.write(JSON.stringify(counts)); process.exit(0) })
`

function startAttackers(
  port: number,
  n: number,
  _over: () => boolean,
): { stop: () => Promise<{ checked: number; refusedUnchecked: number; other: number; connections: number }> } {
  const args = [process.execPath, '-e', ATTACKER_JS, String(port), String(n), ALICE]
  const child =
    ATTACKER_UID === 'same'
      ? spawn(args[0] as string, args.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] })
      : spawn('setpriv', [`--reuid=${ATTACKER_UID}`, `--regid=${ATTACKER_UID}`, '--clear-groups', ...args], {
          stdio: ['pipe', 'pipe', 'inherit'],
          cwd: '/',
        })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  return {
    async stop() {
      child.stdin.write('stop\n')
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(t)
      return JSON.parse(out || '{"checked":0,"refusedUnchecked":0,"other":0,"connections":0}')
    },
  }
}

/** LOGIN on a fresh connection; the tagged reply (undefined: closed before it). */
async function loginOnce(port: number, user: string, pw: string): Promise<string | undefined> {
  const s = session(port)
  try {
    const greeting = await s.next()
    if (!greeting?.startsWith('* OK')) return undefined
    s.sock.write(`o1 LOGIN "${user}" "${pw}"\r\n`)
    for (;;) {
      const line = await s.next()
      if (line === undefined || line.startsWith('o1 ')) return line
    }
  } finally {
    s.sock.destroy()
  }
}

async function main(): Promise<void> {
  if (!dovecotAvailable()) throw new Error(`Dovecot is needed: ${DOVECOT_INSTALL_HINT}`)
  const hardStop = setTimeout(
    () => {
      console.error(`bench: still running after ${MAX_SEC + 60} s, giving up`)
      process.exit(2)
    },
    (MAX_SEC + 60) * 1000,
  )
  hardStop.unref()
  const lab = await startOAuthServer({ deviceInterval: 1 })
  const dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer), users: [ALICE] })
  const home = await makeTmpHome()
  const env = { ...home.env }
  delete env.NODE_EXTRA_CA_CERTS
  await mkdir(join(env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
  let proxy: ReturnType<typeof spawnCli> | undefined
  try {
    await signIn(lab, env, ALICE, [
      ...labFlags(lab),
      '--imap-url',
      `imaps://localhost:${dovecot.ports.imaps}`,
      '--ca',
      dovecot.caFile,
    ])
    const pw = await runCli(['proxy', 'password', ALICE], env, { stdin: LOCAL_PW + '\n' })
    if (pw.code !== 0) throw new Error(`proxy password failed: ${pw.stderr}`)
    proxy = spawnCli(['proxy', '--imap-port', '0'], env)
    const port = Number((await proxy.event('listening', 15_000)).port)

    const t0 = performance.now()
    const elapsed = (): number => (performance.now() - t0) / 1000
    let ownerDone = false
    const attackOver = (): boolean => (elapsed() >= ATTACK_SEC && ownerDone) || elapsed() >= MAX_SEC
    const attack = startAttackers(port, ATTACKERS, () => attackOver())
    const owner = async (): Promise<{
      firstMs?: number
      firstAttempts: number
      againMs?: number
      againReply?: string
    }> => {
      await new Promise((r) => setTimeout(r, OWNER_AFTER_SEC * 1000))
      const start = performance.now()
      let attempts = 0
      let firstMs: number | undefined
      while (elapsed() < MAX_SEC - 1) {
        attempts++
        const reply = await loginOnce(port, ALICE, LOCAL_PW)
        if (reply && /^o1 OK/.test(reply)) {
          firstMs = performance.now() - start
          break
        }
        await new Promise((r) => setTimeout(r, 1000))
      }
      if (firstMs === undefined) return { firstAttempts: attempts }
      const again0 = performance.now()
      const again = await loginOnce(port, ALICE, LOCAL_PW)
      return { firstMs, firstAttempts: attempts, againMs: performance.now() - again0, againReply: again?.slice(0, 60) }
    }

    const ownerRun = owner().finally(() => {
      ownerDone = true
    })
    const o = await ownerRun
    while (!attackOver()) await new Promise((r) => setTimeout(r, 100))
    const counts = await attack.stop()
    const seconds = elapsed()
    const result = {
      node: process.version,
      cpus: cpus().length,
      attackers: ATTACKERS,
      attackerUid: ATTACKER_UID,
      attackSeconds: Number(seconds.toFixed(1)),
      wrongGuessesChecked: counts.checked,
      wrongGuessesPerSec: Number((counts.checked / seconds).toFixed(2)),
      refusedUnchecked: counts.refusedUnchecked,
      otherReplies: counts.other,
      attackerConnections: counts.connections,
      ownerFirstLoginMs: o.firstMs === undefined ? `none within ${MAX_SEC} s` : Math.round(o.firstMs),
      ownerFirstLoginAttempts: o.firstAttempts,
      ownerRememberedLoginMs: o.againMs === undefined ? 'n/a' : Math.round(o.againMs),
      ownerRememberedReply: o.againReply ?? 'n/a',
    }
    console.log(JSON.stringify(result, null, 2))
    // BENCH_DEBUG=1: the proxy's log lines other than refusals, to see where time went
    if (process.env.BENCH_DEBUG)
      for (const l of proxy.stderr().split('\n')) if (l && !/"throttled"|"connect"/.test(l)) console.error(l)
  } finally {
    // the proxy under test may still be working through a queue of checks: 5 s, then SIGKILL
    proxy?.child.kill('SIGTERM')
    const kill = setTimeout(() => proxy?.child.kill('SIGKILL'), 5000)
    await proxy?.done
    clearTimeout(kill)
    await dovecot.stop()
    await lab.close()
    await home.cleanup()
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e)
    process.exit(1)
  },
)
