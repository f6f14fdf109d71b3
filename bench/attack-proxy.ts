// The literal flood against `mailkey proxy` (issue 11, item 1), measured (not a CI gate).
// Run: npm run bench:attack   (builds, then node --import tsx bench/attack-proxy.ts)
//
// Loopback only, bounded in count and time, stops by itself. It starts `mailkey proxy --imap-port 0`
// in a throw-away home (no account is needed: the attack never logs in), then opens
// BENCH_ATTACK_CONNS unauthenticated IMAP connections that each chain BENCH_ATTACK_LITERALS
// non-synchronizing literals into one LOGIN command:
//
//   a LOGIN {8192+}\r\n<8192 x> {8192+}\r\n<8192 x> {8192+}\r\n ...
//
// and reports the proxy's VmRSS (and VmHWM, the peak) before, during (every connection has sent
// all it could and is held open) and after (every connection closed by the attacker), and how the
// proxy answered: connections greeted, refused at connect, closed mid-command, bytes it took.
//
// Knobs: BENCH_ATTACK_CONNS (150), BENCH_ATTACK_LITERALS (1600, ~13 MB per connection),
// BENCH_ATTACK_SOURCES (1: every connection from 127.0.0.1, as in the report; N: spread over N
// loopback addresses 127.0.1.x, so a per-source cap does not hide the byte limits),
// BENCH_ATTACK_HOLD_MS (3000), BENCH_ATTACK_AFTER_MS (20000: how long to watch after the close),
// BENCH_MAILKEY_BIN (another build's dist/cli/mailkey.cjs, e.g. of the commit before a fix).
// The whole run is cut off after BENCH_ATTACK_DEADLINE_MS (110000, below the proxy's 120 s
// pre-auth timeout, so the old code's timeout never does the attacker's work).
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { cpus, totalmem, loadavg } from 'node:os'
import { makeTmpHome } from '../test/harness/tmp-home.js'
import { BIN } from '../test/harness/cli.js'

const CONNS = Number(process.env.BENCH_ATTACK_CONNS ?? 150)
const LITERALS = Number(process.env.BENCH_ATTACK_LITERALS ?? 1600)
const SOURCES = Math.max(1, Number(process.env.BENCH_ATTACK_SOURCES ?? 1))
const HOLD_MS = Number(process.env.BENCH_ATTACK_HOLD_MS ?? 3000)
const AFTER_MS = Number(process.env.BENCH_ATTACK_AFTER_MS ?? 20_000)
const DEADLINE_MS = Number(process.env.BENCH_ATTACK_DEADLINE_MS ?? 110_000)
const MAILKEY = process.env.BENCH_MAILKEY_BIN ?? BIN
const LITERAL = 8192
/** a connection not greeted within this long counts as refused */
const GREETING_MS = 15_000

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function memOf(pid: number): { rssMiB: number; hwmMiB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN)
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 }
}

/** `mailkey proxy --imap-port 0`: resolves with its port once it prints where it listens */
function startProxy(env: Record<string, string>): Promise<{ child: ChildProcess; port: number; stderr: () => string }> {
  const child = spawn(process.execPath, [MAILKEY, 'proxy', '--imap-port', '0'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d
  })
  return new Promise((resolve, reject) => {
    let out = ''
    const t = setTimeout(() => reject(new Error(`the proxy did not start: ${err}`)), 20_000)
    child.once('exit', (code) => reject(new Error(`the proxy exited (${code}): ${err}`)))
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d
      const m = /"event":"listening".*?"port":(\d+)/.exec(out)
      if (m) {
        clearTimeout(t)
        resolve({ child, port: Number(m[1]), stderr: () => err })
      }
    })
  })
}

interface Attacker {
  sock: Socket
  /** bytes written before the proxy closed the connection or the attack ended */
  sent: number
  greeted: boolean
  /** the proxy's first line (the greeting, or a refusal) and its last one */
  first: string
  last: string
  closedByProxy: boolean
  done: Promise<void>
  /** the attacker hangs up */
  stop(): void
}

/** One connection: wait for the greeting, then chain LITERALS literals into one LOGIN command. */
function attack(port: number, source: string, block: Buffer, blocks: number, stopAt: number): Attacker {
  const sock = connect({ port, host: '127.0.0.1', localAddress: source })
  let ended = false
  const a: Attacker = {
    sock,
    sent: 0,
    greeted: false,
    first: '',
    last: '',
    closedByProxy: false,
    done: Promise.resolve(),
    stop: () => {
      ended = true
      sock.destroy()
    },
  }
  let text = ''
  sock.on('error', () => {})
  sock.once('close', () => {
    if (!ended) a.closedByProxy = true
  })
  a.done = new Promise<void>((resolve) => {
    // done: everything sent, or the connection closed, or no greeting within GREETING_MS
    const noGreeting = setTimeout(resolve, GREETING_MS)
    sock.once('close', () => {
      clearTimeout(noGreeting)
      resolve()
    })
    sock.setEncoding('latin1').on('data', (d: string) => {
      text = (text + d).slice(-2048)
      const lines = text.split('\r\n').filter(Boolean)
      if (!a.first && lines[0]) a.first = lines[0]
      a.last = lines.at(-1) ?? a.last
      if (a.greeted || !/^\* OK/.test(a.first)) return
      a.greeted = true
      clearTimeout(noGreeting)
      void (async () => {
        const send = async (b: Buffer): Promise<void> => {
          a.sent += b.length
          if (!sock.write(b))
            await new Promise<void>((r) => {
              sock.once('drain', r)
              sock.once('close', r)
            })
        }
        await send(Buffer.from(`a LOGIN {${LITERAL}+}\r\n`))
        for (let i = 0; i < blocks && !sock.destroyed && Date.now() < stopAt; i++) await send(block)
        resolve()
      })()
    })
  })
  return a
}

async function main(): Promise<void> {
  const home = await makeTmpHome()
  const env = { ...home.env }
  delete env.NODE_EXTRA_CA_CERTS
  const t0 = Date.now()
  const stopAt = t0 + DEADLINE_MS
  const proxy = await startProxy(env)
  const pid = proxy.child.pid as number
  const attackers: Attacker[] = []
  try {
    await sleep(1000)
    const before = memOf(pid)
    // One block = 8 literals: "<8192 x> {8192+}\r\n" each (the first literal's "{8192+}" is on the LOGIN line).
    const unit = Buffer.concat([Buffer.alloc(LITERAL, 'x'), Buffer.from(` {${LITERAL}+}\r\n`)])
    const per = 8
    const block = Buffer.concat(Array.from({ length: per }, () => unit))
    const blocks = Math.ceil(LITERALS / per)
    let peakDuring = before.rssMiB
    const sampler = setInterval(() => {
      try {
        peakDuring = Math.max(peakDuring, memOf(pid).rssMiB)
      } catch {
        /* gone */
      }
    }, 200)
    for (let i = 0; i < CONNS; i++) {
      const source =
        SOURCES === 1 ? '127.0.0.1' : `127.0.${1 + Math.floor((i % SOURCES) / 250)}.${1 + ((i % SOURCES) % 250)}`
      attackers.push(attack(proxy.port, source, block, blocks, stopAt))
    }
    // every connection has sent all it could (or was closed, or never greeted)
    let deadline: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(attackers.map((a) => a.done)),
      new Promise((r) => {
        deadline = setTimeout(r, Math.max(0, stopAt - Date.now()))
      }),
    ])
    clearTimeout(deadline)
    const sendMs = Date.now() - t0
    await sleep(HOLD_MS)
    clearInterval(sampler)
    const during = memOf(pid)
    peakDuring = Math.max(peakDuring, during.rssMiB)
    const stillOpen = attackers.filter((a) => !a.sock.destroyed).length
    for (const a of attackers) a.stop()
    const after: [number, number][] = []
    for (const at of [1000, AFTER_MS]) {
      await sleep(at - (after.at(-1)?.[0] ?? 0))
      after.push([at, memOf(pid).rssMiB])
    }
    const greeted = attackers.filter((a) => a.greeted).length
    const refused = attackers.filter((a) => !a.greeted)
    const sentMiB = attackers.reduce((s, a) => s + a.sent, 0) / 2 ** 20
    const firsts = new Map<string, number>()
    for (const a of refused)
      firsts.set(a.first || '(closed without a line)', (firsts.get(a.first || '(closed without a line)') ?? 0) + 1)
    const lasts = new Map<string, number>()
    for (const a of attackers.filter((x) => x.greeted)) lasts.set(a.last, (lasts.get(a.last) ?? 0) + 1)
    const f = (n: number): string => n.toFixed(0)
    console.log(`# literal flood against mailkey proxy (${MAILKEY === BIN ? 'this build' : MAILKEY})`)
    console.log(
      `machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${f(totalmem() / 2 ** 30)} GiB, Node ${process.version}, load ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    )
    console.log(
      `${CONNS} connections from ${SOURCES} source address(es), up to ${LITERALS} literals of ${LITERAL} bytes each (${((LITERALS * (LITERAL + 10)) / 1e6).toFixed(1)} MB per connection)`,
    )
    console.log(
      `greeted ${greeted}, refused at connect ${refused.length}${refused.length ? ` (${[...firsts].map(([l, n]) => `${n}x "${l.slice(0, 80)}"`).join(', ')})` : ''}`,
    )
    console.log(
      `still open after sending: ${stillOpen}; bytes handed to the attackers' sockets: ${sentMiB.toFixed(0)} MiB in ${(sendMs / 1000).toFixed(1)} s`,
    )
    console.log(
      `last line from the proxy on greeted connections: ${[...lasts].map(([l, n]) => `${n}x "${l.slice(0, 80)}"`).join(', ')}`,
    )
    console.log('')
    console.log('| proxy VmRSS | MiB |')
    console.log('|---|---|')
    console.log(`| before | ${f(before.rssMiB)} |`)
    console.log(`| during (peak of 200 ms samples) | ${f(peakDuring)} |`)
    console.log(`| during (all sent, held ${HOLD_MS / 1000} s) | ${f(during.rssMiB)} |`)
    for (const [at, rss] of after) console.log(`| after close +${at / 1000} s | ${f(rss)} |`)
    console.log(`| VmHWM (peak over the run) | ${f(memOf(pid).hwmMiB)} |`)
  } finally {
    for (const a of attackers) a.sock.destroy()
    // SIGKILL: a graceful stop would wait for sessions; nothing of the proxy's state matters here
    proxy.child.kill('SIGKILL')
    await new Promise((r) => proxy.child.once('exit', r))
    await home.cleanup()
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
