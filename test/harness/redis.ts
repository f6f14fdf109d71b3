// A real Redis server for tests (the shared token store, issue 13): /usr/bin/redis-server on
// 127.0.0.1 and a free port, its own temp dir (config, AOF, log), the default user off (but allowed the AOF's commands) and an ACL
// user `mailkey` with a random password, protected mode on; plus the crash controls the fleet tests
// need (kill -9, stop, start again on the same port and dir) and a tiny RESP client. The password is
// only in the 0600 config file, never in argv. Nothing under /etc is read or written.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { accessSync, closeSync, constants, openSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePorts } from './dovecot.js'
import { alive, exited, guardProcessExit, killGroup } from './postgres.js'

export const REDIS_INSTALL_HINT = 'apt-get install redis-server'

export interface RedisOptions {
  /** appendonly yes (default false: no persistence at all unless `save` is given) */
  appendonly?: boolean
  /** appendfsync (Redis's default everysec) */
  appendfsync?: 'always' | 'everysec' | 'no'
  /** RDB snapshots, as Redis's `save` directive (default '': none) */
  save?: string
  /** the password of the ACL user `mailkey` (default: random) */
  password?: string
  /**
   * The ACL rules of the `default` user (default 'off ~* &* +@all': no one can log in as it). Redis
   * replays the AOF as `default` and, before the fix of redis/redis#14541 (7.0.15 here), silently
   * drops every MULTI/EXEC (a script's writes) that user may not run: a plain 'off' loses them.
   */
  defaultUser?: string
  /** More redis.conf lines, written verbatim (`directive value`). */
  config?: string[]
  /** Deadline for each start, ms (default 10000). */
  startTimeoutMs?: number
}

export type RespValue = string | number | null | RespValue[]

export interface RedisServer {
  host: '127.0.0.1'
  port: number
  /** redis://mailkey@127.0.0.1:PORT, without the password */
  url: string
  urlWithPassword: string
  user: 'mailkey'
  password: string
  /** the temp dir (redis.conf, appendonlydir/, redis.log) */
  dir: string
  readLog(): Promise<string>
  /** SIGKILL (a crash); resolves once the server (and any fork of it) is gone */
  kill(): Promise<void>
  /** SIGTERM: Redis's own shutdown (fsyncs the AOF), resolves once it has exited */
  stop(): Promise<void>
  /** starts again on the same port and dir; resolves once it answers PING (AOF loaded) */
  start(): Promise<void>
  /** one command as `mailkey` on a fresh connection; an error reply rejects */
  command(...args: (string | number | Buffer)[]): Promise<RespValue>
  close(): Promise<void>
}

export function redisServerPath(): string | undefined {
  const candidates = [process.env.LAB_REDIS_SERVER, '/usr/bin/redis-server', '/usr/local/bin/redis-server']
  return candidates.find((path): path is string => {
    if (!path) return false
    try {
      accessSync(path, constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

export function redisAvailable(): boolean {
  return redisServerPath() !== undefined
}

function encode(args: (string | number | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const arg of args) {
    const buf = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg))
    parts.push(Buffer.from(`$${buf.length}\r\n`), buf, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

class RespError extends Error {}

/** Parses one RESP2 reply at `at`; undefined when the buffer does not hold all of it yet. */
function parseReply(buf: Buffer, at: number): { value: RespValue | RespError; next: number } | undefined {
  const eol = buf.indexOf('\r\n', at)
  if (eol < 0) return undefined
  const line = buf.toString('utf8', at + 1, eol)
  switch (String.fromCharCode(buf[at] ?? 0)) {
    case '+':
      return { value: line, next: eol + 2 }
    case '-':
      return { value: new RespError(line), next: eol + 2 }
    case ':':
      return { value: Number(line), next: eol + 2 }
    case '$': {
      const n = Number(line)
      if (n < 0) return { value: null, next: eol + 2 }
      if (buf.length < eol + 2 + n + 2) return undefined
      return { value: buf.toString('utf8', eol + 2, eol + 2 + n), next: eol + 2 + n + 2 }
    }
    case '*': {
      const n = Number(line)
      if (n < 0) return { value: null, next: eol + 2 }
      const items: RespValue[] = []
      let next = eol + 2
      for (let i = 0; i < n; i++) {
        const item = parseReply(buf, next)
        if (!item) return undefined
        if (item.value instanceof RespError) throw item.value
        items.push(item.value)
        next = item.next
      }
      return { value: items, next }
    }
    default:
      throw new Error(`redis harness: not RESP: ${JSON.stringify(buf.toString('latin1', at, at + 20))}`)
  }
}

/** Sends `commands` on one connection and resolves with their replies (error replies as RespError). */
function exchange(
  port: number,
  commands: (string | number | Buffer)[][],
  timeoutMs = 5000,
): Promise<(RespValue | RespError)[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    let buf = Buffer.alloc(0)
    const replies: (RespValue | RespError)[] = []
    const fail = (err: Error): void => {
      socket.destroy()
      reject(err)
    }
    socket.setTimeout(timeoutMs, () => fail(new Error(`redis harness: no reply on port ${port} in ${timeoutMs} ms`)))
    socket.once('error', fail)
    socket.once('close', () => fail(new Error(`redis harness: connection to port ${port} closed before the reply`)))
    socket.on('data', (data) => {
      buf = Buffer.concat([buf, data])
      try {
        for (let reply = parseReply(buf, 0); reply; reply = parseReply(buf, 0)) {
          replies.push(reply.value)
          buf = buf.subarray(reply.next)
        }
      } catch (e) {
        fail(e as Error)
        return
      }
      if (replies.length === commands.length) {
        socket.removeAllListeners('close')
        socket.end()
        resolve(replies)
      }
    })
    socket.write(Buffer.concat(commands.map(encode)))
  })
}

async function authed(port: number, password: string, args: (string | number | Buffer)[]): Promise<RespValue> {
  const [auth, reply] = await exchange(port, [['AUTH', 'mailkey', password], args])
  if (auth instanceof RespError) throw new Error(`redis harness: AUTH failed: ${auth.message}`)
  if (reply instanceof RespError) throw new Error(reply.message)
  return reply as RespValue
}

function confValue(value: string): string {
  if (/[\r\n]/.test(value)) throw new Error('redis harness: newline in a config value')
  return value
}

function redisConf(dir: string, port: number, password: string, opts: RedisOptions): string {
  if (!/^[\x21-\x7e]+$/.test(password) || password.includes('"')) {
    throw new Error('redis harness: the password must be printable ASCII without spaces or quotes')
  }
  return [
    '# mailkey test harness (test/harness/redis.ts); nothing from /etc/redis is included',
    'bind 127.0.0.1',
    `port ${port}`,
    'protected-mode yes',
    'daemonize no',
    `dir ${dir}`,
    'logfile ""',
    `save "${confValue(opts.save ?? '')}"`,
    `appendonly ${opts.appendonly ? 'yes' : 'no'}`,
    `appendfsync ${opts.appendfsync ?? 'everysec'}`,
    'appendfilename "appendonly.aof"',
    'appenddirname "appendonlydir"',
    `user default ${confValue(opts.defaultUser ?? 'off ~* &* +@all')}`,
    `user mailkey on >${password} ~* &* +@all`,
    ...(opts.config ?? []).map(confValue),
    '',
  ].join('\n')
}

/** Spawns redis-server (own process group, output to the log) and waits for PING to answer PONG. */
async function launch(
  bin: string,
  dir: string,
  port: number,
  password: string,
  timeoutMs: number,
): Promise<ChildProcess> {
  const log = join(dir, 'redis.log')
  const logFd = openSync(log, 'a', 0o600)
  let child: ChildProcess
  try {
    child = spawn(bin, [join(dir, 'redis.conf')], {
      cwd: dir,
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: { PATH: '/usr/bin:/bin' },
    })
  } finally {
    closeSync(logFd)
  }
  child.unref()
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (!alive(child)) {
      const tail = (await readFile(log, 'utf8').catch(() => '')).trim().split('\n').slice(-15).join('\n')
      throw new Error(
        `redis-server exited during startup (${child.exitCode ?? child.signalCode})\n--- redis.log ---\n${tail}`,
      )
    }
    // LOADING (the AOF is being read) and refused connections both mean: not yet
    if ((await authed(port, password, ['PING']).catch(() => undefined)) === 'PONG') return child
    if (Date.now() > deadline) {
      await killGroup(child)
      throw new Error(`redis-server did not answer PING within ${timeoutMs} ms`)
    }
    await sleep(10)
  }
}

/** A fresh redis-server on 127.0.0.1 with the ACL user `mailkey`; see RedisServer. */
export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  const bin = redisServerPath()
  if (!bin) throw new Error(`redis harness: redis-server is not installed (${REDIS_INSTALL_HINT})`)
  const timeoutMs = opts.startTimeoutMs ?? 10_000
  const password = opts.password ?? randomBytes(18).toString('base64url')
  const dir = await mkdtemp(join(tmpdir(), 'mailkey-redis-'))
  await chmod(dir, 0o700)
  let child: ChildProcess | undefined
  const unguard = guardProcessExit(() => child, dir)
  let port = 0
  try {
    for (let attempt = 1; !child; attempt++) {
      ;[port] = (await freePorts(1)) as [number]
      await writeFile(join(dir, 'redis.conf'), redisConf(dir, port, password, opts), { mode: 0o600 })
      try {
        child = await launch(bin, dir, port, password, timeoutMs)
      } catch (e) {
        if (attempt >= 3 || !/Address already in use/.test((e as Error).message)) throw e
      }
    }
  } catch (e) {
    unguard()
    await rm(dir, { recursive: true, force: true })
    throw e
  }
  let closed: Promise<void> | undefined
  return {
    host: '127.0.0.1',
    port,
    url: `redis://mailkey@127.0.0.1:${port}`,
    urlWithPassword: `redis://mailkey:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    user: 'mailkey',
    password,
    dir,
    readLog: () => readFile(join(dir, 'redis.log'), 'utf8').catch(() => ''),
    async kill() {
      if (child) await killGroup(child)
    },
    async stop() {
      if (!child || !alive(child)) return
      child.kill('SIGTERM')
      if (!(await exited(child, 10_000))) throw new Error('redis-server did not stop in 10 s')
      await killGroup(child)
    },
    async start() {
      if (child && alive(child)) throw new Error('redis harness: start() while the server is running')
      child = await launch(bin, dir, port, password, timeoutMs)
    },
    command: (...args) => authed(port, password, args),
    close() {
      closed ??= (async () => {
        if (child) await killGroup(child)
        unguard()
        await rm(dir, { recursive: true, force: true, maxRetries: 3 })
      })()
      return closed
    },
  }
}
