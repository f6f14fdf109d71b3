// mailkey proxy benchmark (not a CI gate). Run: npm run bench:proxy
//
// One run, everything on 127.0.0.1, NODE_EXTRA_CA_CERTS removed from the children's environment:
// 1. bulk FETCH: `FETCH 1:* BODY.PEEK[]` of an INBOX of BENCH_PROXY_MSGS x 1 MiB messages, raw
//    client (node:tls / node:net, counts bytes until the tagged OK), straight to Dovecot's imaps
//    port vs through `mailkey proxy` (plain towards the client on loopback, imaps upstream).
//    Interleaved rounds, medians.
// 2. login latency: connect -> tagged OK of LOGIN through the proxy (local scrypt check + upstream
//    TLS + XOAUTH2) vs connect -> tagged OK of AUTHENTICATE XOAUTH2 straight to Dovecot (imaps) with a
//    token from `mailkey token`; plus a wrong-password LOGIN through the proxy (scrypt check only).
// 3. RSS: the proxy's VmRSS before and after BENCH_PROXY_SESSIONS idle logged-in IMAP sessions. The
//    upstream for this part is a scripted TLS IMAP server in this process (greeting, CAPABILITY,
//    AUTHENTICATE -> OK, then idle): the harness Dovecot keeps one imap process per session and has
//    no knob for its process limits (default 100).
import { readFileSync } from 'node:fs'
import { readFile, writeFile, chown, mkdir } from 'node:fs/promises'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, createServer as tlsCreateServer, type TLSSocket } from 'node:tls'
import { cpus, totalmem, loadavg } from 'node:os'
import { join } from 'node:path'
import { startOAuthServer, introspectionUrl } from '../test/harness/oauth-server.js'
import { makeTmpHome } from '../test/harness/tmp-home.js'
import { runCli, spawnCli, type LiveCli } from '../test/harness/cli.js'
import { labFlags, signIn } from '../test/harness/sign-in.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT } from '../test/harness/dovecot.js'
import { median } from './lib.js'

const MSGS = Number(process.env.BENCH_PROXY_MSGS ?? 200)
const MSG_BYTES = 1024 * 1024
const FETCH_ROUNDS = Number(process.env.BENCH_PROXY_FETCH_ROUNDS ?? 7)
const LOGINS = Number(process.env.BENCH_PROXY_LOGINS ?? 200)
const SESSIONS = Number(process.env.BENCH_PROXY_SESSIONS ?? 2000)
const ALICE = 'alice@example.test' // Dovecot
const BOB = 'bob@example.test' // scripted upstream
const LOCAL_PW = 'bench local pw'

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(s.length * p) - 1)] as number
}

/** A raw IMAP connection: accumulates text only while waiting for a tagged reply; counts every byte. */
class Raw {
  bytes = 0
  private tail = ''
  private waiter: { tag: string; resolve: (line: string) => void; reject: (e: Error) => void } | undefined
  private closed: Promise<void>
  readonly sock: Socket | TLSSocket
  constructor(sock: Socket | TLSSocket) {
    this.sock = sock
    this.closed = new Promise((resolve) => sock.once('close', () => resolve()))
    sock.on('data', (d: Buffer) => {
      this.bytes += d.length
      // keep a short tail only: enough to find "\r\n<tag> OK ..." across chunk borders
      this.tail = (this.tail + d.toString('latin1', Math.max(0, d.length - 512))).slice(-1024)
      this.check()
    })
    sock.on('error', (e) => this.waiter?.reject(e))
    sock.once('close', () => this.waiter?.reject(new Error('connection closed')))
  }
  private check(): void {
    const w = this.waiter
    if (!w) return
    const text = '\r\n' + this.tail
    const at = w.tag === '*' ? text.indexOf('\r\n* OK') : text.indexOf(`\r\n${w.tag} `)
    if (at < 0) return
    const end = text.indexOf('\r\n', at + 2)
    if (end < 0) return
    this.waiter = undefined
    this.tail = ''
    w.resolve(text.slice(at + 2, end))
  }
  /** resolves with the tagged line ("*" waits for the greeting) */
  wait(tag: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.waiter = { tag, resolve, reject }
      this.check()
    })
  }
  async cmd(tag: string, text: string): Promise<string> {
    const p = this.wait(tag)
    this.sock.write(`${tag} ${text}\r\n`)
    return p
  }
  async logout(): Promise<void> {
    this.sock.write('z LOGOUT\r\n')
    this.sock.end()
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, 2000))])
    this.sock.destroy()
  }
}

function openRaw(kind: 'tls' | 'plain', port: number, ca?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const sock =
      kind === 'tls'
        ? tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ...(ca ? { ca } : {}) })
        : netConnect({ host: '127.0.0.1', port })
    sock.once('error', reject)
    sock.once(kind === 'tls' ? 'secureConnect' : 'connect', () => {
      sock.off('error', reject)
      resolve(new Raw(sock))
    })
  })
}

const ok = (line: string, what: string): void => {
  if (!/^\S+ OK\b/.test(line)) throw new Error(`${what}: ${line.slice(0, 120)}`)
}

function vmRss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1])
}

async function main(): Promise<void> {
  if (!dovecotAvailable()) throw new Error(`Dovecot is needed: ${DOVECOT_INSTALL_HINT}`)
  const lab = await startOAuthServer({ deviceInterval: 1 })
  const dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer), users: [ALICE] })
  const home = await makeTmpHome()
  const env = { ...home.env }
  delete env.NODE_EXTRA_CA_CERTS
  // The wrong-password case measures the KDF check; the proxy's growing delay after repeated
  // failures (penalty.ts) would otherwise dominate it after the third try.
  await mkdir(join(env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
  await writeFile(
    join(env.XDG_CONFIG_HOME as string, 'mailkey', 'config.toml'),
    '[proxy]\nfailed_login_delay_max_sec = 0\n',
  )
  const procs: LiveCli[] = []
  const children: ChildProcess[] = []
  const scripted = new Set<TLSSocket>()
  const fake = tlsCreateServer(
    { cert: await readFile(dovecot.certFile), key: await readFile(dovecot.keyFile) },
    (s) => {
      scripted.add(s)
      s.on('close', () => scripted.delete(s))
      s.on('error', () => s.destroy())
      s.write('* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] scripted\r\n')
      let buf = ''
      s.setEncoding('latin1').on('data', (d: string) => {
        buf += d
        let nl
        while ((nl = buf.indexOf('\r\n')) >= 0) {
          const line = buf.slice(0, nl)
          buf = buf.slice(nl + 2)
          const [tag, verb] = line.split(' ')
          if (/^CAPABILITY$/i.test(verb ?? ''))
            s.write(`* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2\r\n${tag} OK done\r\n`)
          else if (/^LOGOUT$/i.test(verb ?? '')) s.end(`* BYE\r\n${tag} OK bye\r\n`)
          else s.write(`${tag} OK done\r\n`)
        }
      })
    },
  )
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()))
  const fakePort = (fake.address() as { port: number }).port

  try {
    // --- seed: MSGS x 1 MiB into alice's new/, owned like the harness's seeded files
    const nobody = execFileSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).split(':')
    const [uid, gid] = [
      Number(nobody[2]),
      Number(execFileSync('getent', ['group', 'nogroup'], { encoding: 'utf8' }).split(':')[2]),
    ]
    const line =
      'The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFG'.slice(0, 76) + '\r\n'
    const now = Date.now()
    for (let n = 1; n <= MSGS; n++) {
      const head = `From: Bench <bench@example.test>\r\nTo: <${ALICE}>\r\nSubject: bulk ${n}\r\nDate: ${new Date(now).toUTCString().replace('GMT', '+0000')}\r\nMessage-ID: <bulk-${n}@mailkey.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n`
      const body = line.repeat(Math.ceil((MSG_BYTES - head.length) / line.length))
      const msg = (head + body).slice(0, MSG_BYTES)
      const file = join(dovecot.mailDir(ALICE), 'new', `${Math.floor(now / 1000)}.M${n}Pbench.mailkey,S=${MSG_BYTES}`)
      await writeFile(file, msg, { mode: 0o600 })
      await chown(file, uid, gid)
    }

    // --- accounts: alice -> Dovecot imaps, bob -> the scripted upstream (same CA)
    for (const [email, url] of [
      [ALICE, `imaps://localhost:${dovecot.ports.imaps}`],
      [BOB, `imaps://localhost:${fakePort}`],
    ] as const) {
      await signIn(lab, env, email, [...labFlags(lab), '--imap-url', url, '--ca', dovecot.caFile])
      const pw = await runCli(['proxy', 'password', email], env, { stdin: LOCAL_PW + '\n' })
      if (pw.code !== 0) throw new Error(`proxy password failed: ${pw.stderr}`)
    }
    const tok = await runCli(['token', ALICE], env)
    if (tok.code !== 0) throw new Error('mailkey token failed')
    const xoauth2 = Buffer.from(`user=${ALICE}\x01auth=Bearer ${tok.stdout.trim()}\x01\x01`).toString('base64')

    const startProxy = async (): Promise<{ port: number; pid: number; p: LiveCli }> => {
      const p = spawnCli(['proxy', '--imap-port', '0'], env)
      procs.push(p)
      const l = await p.event('listening', 15_000)
      return { port: Number(l.port), pid: p.child.pid as number, p }
    }
    const proxy = await startProxy()

    // Baseline for the extra hop: a minimal Node TLS -> plain relay (a child process, like the proxy).
    const RELAY = `const net=require('net'),tls=require('tls');net.createServer((c)=>{const u=tls.connect({host:'127.0.0.1',port:+process.env.UP,servername:'localhost',ca:process.env.CA});c.pipe(u);u.pipe(c);const e=()=>{c.destroy();u.destroy()};for(const s of [c,u]){s.on('error',e);s.on('close',e)}}).listen(0,'127.0.0.1',function(){console.log(this.address().port)})`
    const startRelay = async (upstreamPort: number): Promise<{ port: number; pid: number }> => {
      const relay = spawn(process.execPath, ['-e', RELAY], {
        env: { ...env, UP: String(upstreamPort), CA: dovecot.caPem },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      children.push(relay)
      const port = await new Promise<number>((resolve, reject) => {
        relay.stdout.setEncoding('utf8').once('data', (d: string) => resolve(Number(d.trim())))
        relay.once('exit', () => reject(new Error('relay exited')))
      })
      return { port, pid: relay.pid as number }
    }
    const relayPort = (await startRelay(dovecot.ports.imaps)).port

    const direct = async (): Promise<Raw> => {
      const r = await openRaw('tls', dovecot.ports.imaps, dovecot.caPem)
      await r.wait('*')
      ok(await r.cmd('a1', `AUTHENTICATE XOAUTH2 ${xoauth2}`), 'direct AUTHENTICATE')
      return r
    }
    const viaProxy = async (port: number, user: string, pw = LOCAL_PW): Promise<{ r: Raw; line: string }> => {
      const r = await openRaw('plain', port)
      await r.wait('*')
      return { r, line: await r.cmd('a1', `LOGIN ${user} "${pw}"`) }
    }

    // ---------------------------------------------------------------- 1. bulk FETCH
    const fetchAll = async (r: Raw): Promise<{ mbps: number; bytes: number }> => {
      ok(await r.cmd('a2', 'EXAMINE INBOX'), 'EXAMINE')
      const b0 = r.bytes
      const t0 = performance.now()
      ok(await r.cmd('a3', 'FETCH 1:* BODY.PEEK[]'), 'FETCH')
      const ms = performance.now() - t0
      const bytes = r.bytes - b0
      await r.logout()
      return { mbps: bytes / 1e6 / (ms / 1000), bytes }
    }
    const fetchCases: Record<string, () => Promise<Raw>> = {
      'direct (imaps)': direct,
      'minimal Node relay (plain -> imaps, pipe)': async () => {
        const r = await openRaw('plain', relayPort)
        await r.wait('*')
        ok(await r.cmd('a1', `AUTHENTICATE XOAUTH2 ${xoauth2}`), 'relay AUTHENTICATE')
        return r
      },
      'via proxy (plain -> imaps upstream)': async () => {
        const { r, line } = await viaProxy(proxy.port, ALICE)
        ok(line, 'proxy LOGIN')
        return r
      },
    }
    const fetchRes = new Map<string, number[]>(Object.keys(fetchCases).map((k) => [k, []]))
    let fetchedBytes = 0
    for (const open of Object.values(fetchCases)) await fetchAll(await open()) // warm-up (Dovecot indexes new/ here)
    for (let i = 0; i < FETCH_ROUNDS; i++) {
      const order = Object.entries(fetchCases)
      if (i % 2) order.reverse()
      for (const [name, open] of order) {
        const { mbps, bytes } = await fetchAll(await open())
        fetchRes.get(name)?.push(mbps)
        fetchedBytes = bytes
      }
    }

    // ---------------------------------------------------------------- 2. login latency
    const timeIt = async (f: () => Promise<Raw>): Promise<number> => {
      const t0 = performance.now()
      const r = await f()
      const ms = performance.now() - t0
      await r.logout()
      return ms
    }
    const loginCases: Record<string, () => Promise<Raw>> = {
      'direct AUTHENTICATE XOAUTH2 (imaps)': direct,
      'proxy LOGIN (scrypt + upstream imaps XOAUTH2)': async () => {
        const { r, line } = await viaProxy(proxy.port, ALICE)
        ok(line, 'proxy LOGIN')
        return r
      },
      'minimal Node relay, AUTHENTICATE XOAUTH2 through it (any extra hop)': async () => {
        const r = await openRaw('plain', relayPort)
        await r.wait('*')
        ok(await r.cmd('a1', `AUTHENTICATE XOAUTH2 ${xoauth2}`), 'relay AUTHENTICATE')
        return r
      },
      'proxy LOGIN, wrong password (scrypt only, NO)': async () => {
        const { r, line } = await viaProxy(proxy.port, ALICE, 'wrong password')
        if (!/^a1 NO\b/.test(line)) throw new Error(`wrong password: ${line}`)
        return r
      },
    }
    const loginRes = new Map<string, number[]>(Object.keys(loginCases).map((k) => [k, []]))
    for (const f of Object.values(loginCases)) for (let i = 0; i < 5; i++) await timeIt(f) // warm-up
    for (let i = 0; i < LOGINS; i++) {
      const order = Object.entries(loginCases)
      if (i % 2) order.reverse()
      for (const [name, f] of order) loginRes.get(name)?.push(await timeIt(f))
    }

    // ---------------------------------------------------------------- 3. RSS with idle sessions
    const CONC = 8
    /** VmRSS of `pid` before and with SESSIONS idle sessions opened by `open` (8 at a time) */
    const idleRss = async (
      pid: number,
      open: () => Promise<Raw>,
    ): Promise<{ before: number; after: number; hwm: number; closed: number; sessions: number; openMs: number }> => {
      for (let i = 0; i < 10; i++) await (await open()).logout()
      await new Promise((r) => setTimeout(r, 2000))
      const before = vmRss(pid)
      const idle: Raw[] = []
      const t0 = performance.now()
      let next = 0
      await Promise.all(
        Array.from({ length: CONC }, async () => {
          while (next < SESSIONS) {
            next++
            idle.push(await open())
          }
        }),
      )
      const openMs = performance.now() - t0
      await new Promise((r) => setTimeout(r, 3000))
      // every session still alive and answering through the splice
      const noop = await Promise.all(idle.slice(0, 50).map((r) => r.cmd('n1', 'NOOP')))
      noop.forEach((l) => ok(l, 'NOOP'))
      const after = vmRss(pid)
      const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])
      for (const r of idle) r.sock.destroy()
      await new Promise((r) => setTimeout(r, 3000))
      return { before, after, hwm, closed: vmRss(pid), sessions: idle.length, openMs }
    }
    const rssProxy = await startProxy()
    const proxyRss = await idleRss(rssProxy.pid, async () => {
      const { r, line } = await viaProxy(rssProxy.port, BOB)
      ok(line, 'scripted LOGIN')
      return r
    })
    const rssRelay = await startRelay(fakePort)
    const relayRss = await idleRss(rssRelay.pid, async () => {
      const r = await openRaw('plain', rssRelay.port)
      await r.wait('*')
      ok(await r.cmd('a1', `AUTHENTICATE XOAUTH2 ${xoauth2}`), 'relay AUTHENTICATE')
      return r
    })

    // ---------------------------------------------------------------- report
    const out: string[] = []
    const dMed = median(fetchRes.get('direct (imaps)') as number[])
    out.push(
      `\n### bulk FETCH 1:* BODY.PEEK[]: ${MSGS} x 1 MiB (${(fetchedBytes / 1e6).toFixed(1)} MB on the wire per fetch), ${FETCH_ROUNDS} interleaved rounds\n`,
    )
    out.push('| path | median MB/s | min | max | vs direct |')
    out.push('|---|---|---|---|---|')
    for (const [name, xs] of fetchRes) {
      out.push(
        `| ${name} | ${median(xs).toFixed(0)} | ${Math.min(...xs).toFixed(0)} | ${Math.max(...xs).toFixed(0)} | ${(median(xs) / dMed).toFixed(2)}x |`,
      )
    }
    const lDirect = loginRes.get('direct AUTHENTICATE XOAUTH2 (imaps)') as number[]
    out.push(`\n### login latency: connect -> tagged reply, ${LOGINS} sequential logins each, interleaved\n`)
    out.push('| login | p50 ms | p99 ms | added p50 vs direct |')
    out.push('|---|---|---|---|')
    for (const [name, xs] of loginRes) {
      out.push(
        `| ${name} | ${median(xs).toFixed(1)} | ${pct(xs, 0.99).toFixed(1)} | ${name.startsWith('direct') ? '-' : `+${(median(xs) - median(lDirect)).toFixed(1)} ms`} |`,
      )
    }
    out.push(
      `\n### RSS with ${proxyRss.sessions} idle logged-in IMAP sessions (scripted TLS upstream in the bench process)\n`,
    )
    out.push(
      '| process | VmRSS before | VmRSS with sessions | per session | VmHWM | VmRSS 3 s after closing them | time to open all |',
    )
    out.push('|---|---|---|---|---|---|---|')
    const perSession = (x: typeof proxyRss): number => (x.after - x.before) / x.sessions
    for (const [name, x] of [
      ['mailkey proxy', proxyRss],
      ['minimal Node relay (same upstream)', relayRss],
    ] as const) {
      out.push(
        `| ${name} | ${(x.before / 1024).toFixed(1)} MiB | ${(x.after / 1024).toFixed(1)} MiB | ${perSession(x).toFixed(1)} KiB | ${(x.hwm / 1024).toFixed(1)} MiB | ${(x.closed / 1024).toFixed(1)} MiB | ${(x.openMs / 1000).toFixed(1)} s (${CONC} at a time) |`,
      )
    }
    out.push(`\nproxy / relay per session: ${(perSession(proxyRss) / perSession(relayRss)).toFixed(2)}x`)
    out.push(
      `\nmachine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}, load average after ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    )
    console.log(out.join('\n'))
  } finally {
    for (const s of scripted) s.destroy()
    fake.close()
    for (const c of children) c.kill('SIGTERM')
    for (const p of procs) p.child.kill('SIGTERM')
    await Promise.all(procs.map((p) => Promise.race([p.done, new Promise((r) => setTimeout(r, 12_000))])))
    await dovecot.stop()
    await lab.close()
    await home.cleanup()
  }
}

await main()
