// A real Dovecot 2.3 (IMAP + POP3) for tests, OAuth only: XOAUTH2 and OAUTHBEARER checked by RFC 7662
// introspection against the lab OAuth server (oauth2 passdb). Everything lives in one temp dir: the
// generated dovecot.conf, base_dir/state_dir, the TLS certs, the Maildirs and the log. Nothing under
// /etc is read or written. Must run as root (Dovecot drops privileges; mail belongs to nobody:nogroup
// because Dovecot refuses uid 0). It must not log tokens: auth_debug and auth_verbose stay off.
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { accessSync, closeSync, constants, openSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { makeTestCA } from './certs.js'

export const DEFAULT_MAIL_USERS = ['alice@example.test', 'bob@example.test']

/** Where the dovecot binary is looked for after $LAB_DOVECOT. */
export const DOVECOT_CANDIDATES = ['/usr/sbin/dovecot', '/usr/local/sbin/dovecot']

export const DOVECOT_INSTALL_HINT = 'apt-get install dovecot-imapd dovecot-pop3d'

/** Where dovecot-imapd / dovecot-pop3d put the imap and pop3 binaries. */
const DOVECOT_LIBEXEC = ['/usr/lib/dovecot', '/usr/libexec/dovecot', '/usr/local/libexec/dovecot']

export interface DovecotOptions {
  /** Introspection endpoint with HTTP Basic credentials in it: `http://mail-rs:secret@127.0.0.1:PORT/token/introspection`. */
  introspectionUrl: string
  /** Mailboxes to create (default alice@ and bob@example.test). */
  users?: string[]
  /** Messages seeded into each INBOX (default 3). */
  seedMessages?: number
  /** Log every auth step (auth_debug, auth_verbose). It can log tokens: never in CI. */
  authDebug?: boolean
  /** Startup deadline in ms (default 10000). */
  startTimeoutMs?: number
}

export interface DovecotPorts {
  /** IMAP, STARTTLS available. */
  imap: number
  /** IMAP over implicit TLS. */
  imaps: number
  /** POP3, STLS available. */
  pop3: number
  /** POP3 over implicit TLS. */
  pop3s: number
}

export interface Dovecot {
  host: '127.0.0.1'
  ports: DovecotPorts
  /** The test CA (PEM file and contents) that signed the server certificate. */
  caFile: string
  caPem: string
  /** Server certificate and key (for other servers of the same testbed, e.g. SMTP). */
  certFile: string
  keyFile: string
  /** The temp dir holding everything; removed by stop(). */
  dir: string
  /** A user's Maildir (with cur/ new/ tmp/). */
  mailDir(user: string): string
  /** Dovecot's log (log_path). */
  logFile: string
  /** The log so far (for assertion messages when something fails). */
  readLog(): Promise<string>
  stop(): Promise<void>
}

export function dovecotPath(): string | undefined {
  const candidates = [process.env.LAB_DOVECOT, ...DOVECOT_CANDIDATES].filter((p): p is string => Boolean(p))
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/** True when Dovecot with the IMAP and POP3 servers is installed. */
export function dovecotAvailable(): boolean {
  const bin = dovecotPath()
  if (!bin) return false
  // dovecot-imapd / dovecot-pop3d install these next to the master's other helpers.
  return ['imap', 'pop3'].every((proto) =>
    DOVECOT_LIBEXEC.some((dir) => {
      try {
        accessSync(join(dir, proto), constants.X_OK)
        return true
      } catch {
        return false
      }
    }),
  )
}

function idOf(kind: 'passwd' | 'group', name: string): number {
  const line = execFileSync('getent', [kind, name], { encoding: 'utf8' }).trim()
  const id = Number(line.split(':')[2])
  if (!Number.isInteger(id)) throw new Error(`dovecot harness: no ${kind} entry for ${name}`)
  return id
}

/** The kernel's ephemeral port range: listen(0) and outgoing connections take their ports from it. */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    if (Number.isInteger(lo) && Number.isInteger(hi)) return [lo as number, hi as number]
  } catch {
    /* not Linux: the usual default */
  }
  return [32768, 60999]
}

function holdPort(port: number): Promise<Server | undefined> {
  const server = createServer()
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      e.code === 'EADDRINUSE' || e.code === 'EACCES' ? resolve(undefined) : reject(e),
    )
    server.listen(port, '127.0.0.1', () => resolve(server))
  })
}

/**
 * Ports that were free a moment ago (all held at once, so they are distinct), for servers that
 * bind them a little later. Test files run side by side, so they come from below the ephemeral
 * range: a port found free there is not handed to another test's listen(0) or outgoing
 * connection before its user binds it (only another freePorts caller could pick it, 1 in ~20,000).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = []
  const lowest = 10_000
  const [ephemeralLow] = ephemeralRange()
  try {
    for (let tries = 0; servers.length < count; tries++) {
      const candidate =
        ephemeralLow - lowest > 1000 && tries < 200 ? lowest + Math.floor(Math.random() * (ephemeralLow - lowest)) : 0
      const server = await holdPort(candidate)
      if (server) servers.push(server)
    }
    return servers.map((s) => (s.address() as AddressInfo).port)
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  }
}

/** Resolves with the first bytes the server sends on a fresh connection (rejects if it refuses). */
function greeting(port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no greeting on port ${port}`))
    }, timeoutMs)
    socket.once('data', (data) => {
      clearTimeout(timer)
      socket.end()
      resolve(data.toString('latin1'))
    })
    socket.once('error', (err) => {
      clearTimeout(timer)
      socket.destroy()
      reject(err)
    })
  })
}

function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

function seedMessage(user: string, n: number, date: Date): string {
  return [
    `Return-Path: <sender@example.test>`,
    `From: Lab Sender <sender@example.test>`,
    `To: <${user}>`,
    `Subject: Seed message ${n}`,
    `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <seed-${n}-${date.getTime()}@mailkey.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `Seed message ${n} for ${user}.`,
    '',
  ].join('\r\n')
}

function userParts(user: string): { local: string; domain: string } {
  const at = user.lastIndexOf('@')
  if (at <= 0 || at === user.length - 1 || !/^[\w.+@-]+$/.test(user)) {
    throw new Error(`dovecot harness: user must look like local@domain: ${user}`)
  }
  return { local: user.slice(0, at).toLowerCase(), domain: user.slice(at + 1).toLowerCase() }
}

/** Our own child: Node reaps it, so exitCode/signalCode tell the truth (kill(pid, 0) would not for a zombie). */
function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

// Dovecot's config parser: values are used verbatim to end of line; refuse anything that would
// break out of it.
function confValue(value: string): string {
  if (/[\r\n]/.test(value)) throw new Error('dovecot harness: newline in a config value')
  return value
}

/**
 * Starts Dovecot; should one of its ports have been taken meanwhile (by a test file running beside
 * this one), starts it again on others.
 */
export async function startDovecot(opts: DovecotOptions): Promise<Dovecot> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDovecotOnce(opts)
    } catch (e) {
      if (attempt >= 3 || !/EADDRINUSE|Address already in use/.test((e as Error).message)) throw e
    }
  }
}

async function startDovecotOnce(opts: DovecotOptions): Promise<Dovecot> {
  const bin = dovecotPath()
  if (!bin || !dovecotAvailable())
    throw new Error(`dovecot harness: Dovecot is not installed (${DOVECOT_INSTALL_HINT})`)
  if (process.getuid?.() !== 0) throw new Error('dovecot harness: must run as root (Dovecot drops privileges itself)')
  const users = opts.users ?? DEFAULT_MAIL_USERS
  const seedCount = opts.seedMessages ?? 3
  const debug = opts.authDebug === true

  const dir = await mkdtemp(join(tmpdir(), 'mailkey-dovecot-'))
  let child: ChildProcess | undefined
  let unguard: (() => void) | undefined
  const relays: Relay[] = []
  let stopped: Promise<void> | undefined

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await Promise.all(relays.map((r) => r.close()))
      if (child) await killGroup(child)
      unguard?.()
      await rm(dir, { recursive: true, force: true, maxRetries: 3 })
    })()
    return stopped
  }

  try {
    // Unprivileged Dovecot processes (imap/pop3 as nobody, auth as dovecot) must traverse it.
    await chmod(dir, 0o755)
    const uid = idOf('passwd', 'nobody')
    const gid = idOf('group', 'nogroup')
    const dovecotGid = idOf('group', 'dovecot')
    const paths = {
      conf: join(dir, 'dovecot.conf'),
      oauth2: join(dir, 'oauth2.conf.ext'),
      base: join(dir, 'run'),
      state: join(dir, 'state'),
      mail: join(dir, 'mail'),
      tls: join(dir, 'tls'),
      log: join(dir, 'dovecot.log'),
    }
    await mkdir(paths.tls, { mode: 0o700 })
    await mkdir(paths.state, { mode: 0o750 })
    await mkdir(paths.mail, { mode: 0o755 })
    await chown(paths.mail, uid, gid) // users that were not seeded get their Maildir at first login
    const ca = await makeTestCA(paths.tls)

    // Per-user homes and Maildirs, owned by nobody:nogroup.
    const mailDir = (user: string): string => {
      const { local, domain } = userParts(user)
      return join(paths.mail, domain, local, 'Maildir')
    }
    const now = Date.now()
    for (const user of users) {
      const { domain } = userParts(user)
      const maildir = mailDir(user)
      for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(maildir, sub), { recursive: true, mode: 0o700 })
      for (let n = 1; n <= seedCount; n++) {
        const date = new Date(now - (seedCount - n + 1) * 60_000)
        const body = seedMessage(user, n, date)
        const name = `${Math.floor(date.getTime() / 1000)}.M${n}P${process.pid}.mailkey,S=${Buffer.byteLength(body)}`
        const file = join(maildir, 'new', name)
        await writeFile(file, body, { mode: 0o600 })
        await chown(file, uid, gid)
      }
      for (const path of [
        join(paths.mail, domain),
        join(maildir, '..'),
        maildir,
        join(maildir, 'cur'),
        join(maildir, 'new'),
        join(maildir, 'tmp'),
      ]) {
        await chown(path, uid, gid)
      }
    }

    const [imap, imaps, pop3, pop3s, imapInner, pop3Inner] = (await freePorts(6)) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ]
    const ports: DovecotPorts = { imap, imaps, pop3, pop3s }

    // RFC 7662 introspection (oauth2 passdb). The file holds the introspection secret: auth reads it
    // as the dovecot user, so 0640 root:dovecot.
    await writeFile(
      paths.oauth2,
      [
        'introspection_mode = post',
        `introspection_url = ${confValue(opts.introspectionUrl)}`,
        'force_introspection = yes',
        'username_attribute = email',
        'active_attribute = active',
        'active_value = true',
        'send_auth_headers = yes',
        'timeout_msecs = 5000',
        `debug = ${debug ? 'yes' : 'no'}`,
        '',
      ].join('\n'),
      { mode: 0o640 },
    )
    await chown(paths.oauth2, 0, dovecotGid)

    const dh = '/usr/share/dovecot/dh.pem'
    let hasDh = true
    try {
      accessSync(dh, constants.R_OK)
    } catch {
      hasDh = false
    }

    await writeFile(
      paths.conf,
      [
        '# Generated by mailkey test/harness/dovecot.ts; nothing from /etc/dovecot is included.',
        `instance_name = mailkey-${process.pid}-${ports.imap}`,
        `base_dir = ${paths.base}`,
        `state_dir = ${paths.state}`,
        `log_path = ${paths.log}`,
        'protocols = imap pop3',
        'listen = 127.0.0.1',
        'shutdown_clients = yes',
        '',
        'ssl = yes',
        `ssl_cert = <${ca.certFile}`,
        `ssl_key = <${ca.keyFile}`,
        ...(hasDh ? [`ssl_dh = <${dh}`] : []),
        'ssl_min_protocol = TLSv1.2',
        '',
        '# OAuth only: no PLAIN/LOGIN mechanism exists, so IMAP LOGIN and POP3 USER/PASS are refused.',
        'auth_mechanisms = xoauth2 oauthbearer',
        'auth_cache_size = 0',
        'auth_failure_delay = 0',
        `auth_verbose = ${debug ? 'yes' : 'no'}`,
        `auth_debug = ${debug ? 'yes' : 'no'}`,
        'auth_debug_passwords = no',
        'passdb {',
        '  driver = oauth2',
        '  mechanisms = xoauth2 oauthbearer',
        `  args = ${paths.oauth2}`,
        '}',
        'userdb {',
        '  driver = static',
        `  args = uid=${uid} gid=${gid} home=${paths.mail}/%d/%n`,
        '}',
        `mail_location = maildir:${paths.mail}/%d/%n/Maildir`,
        '',
        'service imap-login {',
        `  inet_listener imap {\n    address = 127.0.0.1\n    port = ${imapInner}\n  }`,
        `  inet_listener imaps {\n    address = 127.0.0.1\n    port = ${ports.imaps}\n    ssl = yes\n  }`,
        '}',
        'service pop3-login {',
        `  inet_listener pop3 {\n    address = 127.0.0.1\n    port = ${pop3Inner}\n  }`,
        `  inet_listener pop3s {\n    address = 127.0.0.1\n    port = ${ports.pop3s}\n    ssl = yes\n  }`,
        '}',
        '# No per-IP auth penalty: consecutive failed logins from 127.0.0.1 would take 0.5, 4.5, 8.5 s...',
        'service anvil {',
        '  unix_listener anvil-auth-penalty {',
        '    mode = 0',
        '  }',
        '}',
        '# imap/pop3 run as nobody and report to stats-writer (default 0660 dovecot): let them.',
        'service stats {',
        '  unix_listener stats-writer {\n    mode = 0666\n  }',
        '}',
        '',
      ].join('\n'),
    )

    // With the penalty listener disabled, a stale socket from an earlier run makes auth retry it
    // for 5 s at startup. The base_dir is fresh, but be safe.
    await rm(join(paths.base, 'anvil-auth-penalty'), { force: true })

    // Dovecot keeps the stderr it was started with: give it a file, never a pipe of ours.
    const logFd = openSync(paths.log, 'a', 0o600)
    try {
      child = spawn(bin, ['-F', '-c', paths.conf], {
        cwd: dir,
        detached: true, // its own process group, so stop() can reach every Dovecot process
        stdio: ['ignore', logFd, logFd],
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      })
    } finally {
      closeSync(logFd)
    }
    const started = child
    started.unref() // a forgotten stop() must not keep the test process alive: the guard kills it
    unguard = guardProcessExit(started, dir)
    await new Promise<void>((resolve, reject) => {
      started.once('spawn', resolve)
      started.once('error', reject)
    })

    const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000)
    relays.push(await startRelay(ports.imap, imapInner), await startRelay(ports.pop3, pop3Inner))
    const all = [ports.imaps, ports.pop3s, imapInner, pop3Inner]
    for (;;) {
      if (!alive(started)) throw new Error(`dovecot exited during startup (${started.exitCode ?? started.signalCode})`)
      const ready = await Promise.all(all.map(acceptsConnections))
      if (ready.every(Boolean)) break
      if (Date.now() > deadline) throw new Error('dovecot did not open all four ports in time')
      await sleep(20)
    }
    const hello = await greeting(ports.imap, Math.max(1000, deadline - Date.now()))
    if (!hello.startsWith('* OK')) throw new Error(`unexpected IMAP greeting: ${hello.slice(0, 80)}`)

    return {
      host: '127.0.0.1',
      ports,
      caFile: ca.caFile,
      caPem: ca.caPem,
      certFile: ca.certFile,
      keyFile: ca.keyFile,
      dir,
      mailDir,
      logFile: paths.log,
      readLog: () => readFile(paths.log, 'utf8').catch(() => ''),
      stop,
    }
  } catch (err) {
    const log = await readFile(join(dir, 'dovecot.log'), 'utf8').catch(() => '')
    await stop()
    const tail = log.trim().split('\n').slice(-15).join('\n')
    throw new Error(`${(err as Error).message}${tail ? `\n--- dovecot.log ---\n${tail}` : ''}`, { cause: err })
  }
}

interface Relay {
  close(): Promise<void>
}

/** A second loopback address for the relay's outgoing leg; Linux routes all of 127/8 to lo. */
const RELAY_SOURCE = '127.0.0.2'

/**
 * Dovecot 2.3 treats a connection whose remote IP equals its local IP (any loopback client) as
 * "secured" and accepts XOAUTH2/OAUTHBEARER in cleartext. On the plain ports that would hide a client
 * that sends its token before STARTTLS. So the public plain ports are TCP relays that reach Dovecot
 * from 127.0.0.2: Dovecot then answers AUTHENTICATE/AUTH before STARTTLS/STLS with
 * `NO [PRIVACYREQUIRED]` / `-ERR`, like a real server. STARTTLS passes through untouched.
 */
async function startRelay(publicPort: number, innerPort: number): Promise<Relay> {
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: innerPort, localAddress: RELAY_SOURCE })
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
    }
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(publicPort, '127.0.0.1', () => resolve())
  })
  server.unref()
  return {
    close() {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

const FATAL_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * If this process ends (normally or by a signal) before stop(), SIGKILL the Dovecot group and
 * remove its dir synchronously. A signal is re-raised when no other handler is left, so the
 * default action (termination) still happens. Returns the function that removes the guard.
 */
function guardProcessExit(child: ChildProcess, dir: string): () => void {
  const cleanup = (): void => {
    try {
      if (child.pid && alive(child)) process.kill(-child.pid, 'SIGKILL')
    } catch {
      /* already gone */
    }
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch {
      /* best effort */
    }
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    cleanup()
    for (const other of FATAL_SIGNALS) process.off(other, onSignal)
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  }
  process.on('exit', cleanup)
  for (const signal of FATAL_SIGNALS) process.on(signal, onSignal)
  return () => {
    process.off('exit', cleanup)
    for (const signal of FATAL_SIGNALS) process.off(signal, onSignal)
  }
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (!alive(child)) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', done)
      resolve(false)
    }, ms)
    function done(): void {
      clearTimeout(timer)
      resolve(true)
    }
    child.once('exit', done)
  })
}

/**
 * SIGTERM to the master (it stops its children), SIGKILL to the whole group after 500 ms (a clean
 * shutdown takes Dovecot 1-3 s, and everything it has is thrown away anyway); then waits
 * until no live process of the group is left. Node reaps the master itself; the master's children
 * are reaped by init, which may be late, so zombies (state Z, `kill -0` still succeeds) are ignored.
 */
async function killGroup(child: ChildProcess): Promise<void> {
  const pid = child.pid
  if (!pid) return
  if (alive(child)) {
    try {
      process.kill(pid, 'SIGTERM')
    } catch {
      /* gone */
    }
    if (!(await exited(child, 500))) {
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {
        /* gone */
      }
      await exited(child, 3000)
    }
  }
  // Children that outlived the master (they normally exit with it).
  const deadline = Date.now() + 2000
  while (groupMembers(pid).length > 0 && Date.now() < deadline) {
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {
      /* gone */
    }
    await sleep(20)
  }
}

/** Live (not zombie) processes of a process group, from /proc/PID/stat. */
function groupMembers(pgid: number): number[] {
  const members: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1')
    } catch {
      continue // exited meanwhile
    }
    // pid (comm) state ppid pgrp ...: comm may contain spaces and parentheses
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') members.push(Number(name))
  }
  return members
}
