// A real PostgreSQL server for tests (the shared token store, issue 13): a fresh cluster per call
// in its own temp dir (initdb, scram-sha-256 passwords, 127.0.0.1 on a free port, no Unix socket,
// no system service), a database `mailkey` owned by a non-superuser role `mailkey`, and the
// crash controls the fleet tests need (kill -9, fast stop, start again on the same port and data).
// Nothing under /etc is read or written. As root, initdb and postgres run as the `postgres` system
// user (initdb refuses root). Passwords never reach argv or the log: initdb reads a 0600 pwfile,
// the role's password goes in over the connection. Also the process-group helpers redis.ts uses.
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { accessSync, closeSync, constants, openSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { appendFile, chmod, chown, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { freePorts } from './dovecot.js'

export const POSTGRES_INSTALL_HINT = 'apt-get install postgresql (Debian 12: PostgreSQL 15)'

export interface PgOptions {
  /** true: PostgreSQL's defaults (fsync, full_page_writes on). Default false: both off (synchronous_commit stays on, so a kill -9 of the server loses no commit). */
  durable?: boolean
  /** Serve TLS (ssl = on) with this certificate and key (PEM file paths; copied into the server's dir). */
  tls?: { cert: string; key: string }
  /** More postgresql.conf settings, written verbatim (`name = value`). */
  settings?: Record<string, string>
  /** Deadline for each start (initdb excluded), ms (default 15000). */
  startTimeoutMs?: number
}

export interface PgServer {
  host: '127.0.0.1'
  port: number
  database: 'mailkey'
  /** the non-superuser role that owns `mailkey` */
  user: 'mailkey'
  password: string
  /** postgres://mailkey@127.0.0.1:PORT/mailkey, without the password (give it through env()) */
  url: string
  urlWithPassword: string
  /** { PGPASSWORD } for a child process that gets `url` */
  env(): { PGPASSWORD: string }
  /** the superuser `postgres` with its password, database `postgres` (admin queries) */
  superUrl: string
  /** the cluster's temp dir (data/, postgres.log) */
  dir: string
  /** postgres.log so far (for assertion messages) */
  readLog(): Promise<string>
  /** SIGKILL to the postmaster and every backend (a crash); resolves once none is left. */
  kill(): Promise<void>
  /** fast shutdown (SIGINT): open transactions are rolled back, then the server exits */
  stop(): Promise<void>
  /** starts again on the same port and data dir (after kill or stop); resolves once it accepts connections */
  start(): Promise<void>
  /** a query as the superuser (one connection per call), in database `postgres` unless `database` is given */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: unknown[],
    database?: string,
  ): Promise<pg.QueryResult<R>>
  /** stop, then remove the dir */
  close(): Promise<void>
}

/** The newest /usr/lib/postgresql/N/bin holding initdb and postgres ($LAB_PG_BIN first). */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql'
  let versions: string[] = []
  try {
    versions = readdirSync(root)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
  } catch {
    /* not installed */
  }
  const dirs = [process.env.LAB_PG_BIN, ...versions.map((v) => join(root, v, 'bin'))]
  return dirs.find((dir): dir is string => {
    if (!dir) return false
    try {
      for (const bin of ['initdb', 'postgres']) accessSync(join(dir, bin), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

export function postgresAvailable(): boolean {
  return postgresBinDir() !== undefined
}

/** Our own child: Node reaps it, so exitCode/signalCode tell the truth. */
export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

export function exited(child: ChildProcess, ms: number): Promise<boolean> {
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

/** Live (not zombie) processes of a process group, from /proc/PID/stat. */
export function groupMembers(pgid: number): number[] {
  const members: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1')
    } catch {
      continue // exited meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') members.push(Number(name))
  }
  return members
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {
    /* gone */
  }
}

/**
 * SIGKILL to the leader first (the crash), then to its whole group; resolves when the leader has
 * exited and no live member is left (backends hold the shared memory a restart needs).
 */
export async function killGroup(child: ChildProcess): Promise<void> {
  const pid = child.pid
  if (!pid) return
  if (alive(child)) child.kill('SIGKILL')
  signalGroup(pid, 'SIGKILL')
  await exited(child, 5000)
  const deadline = Date.now() + 5000
  while (groupMembers(pid).length > 0) {
    if (Date.now() > deadline) throw new Error(`process group ${pid} outlived SIGKILL for 5 s`)
    signalGroup(pid, 'SIGKILL')
    await sleep(10)
  }
}

const FATAL_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * If this process ends before close(), SIGKILL the current server group (`current()` changes
 * with restarts) and remove `dir`; a signal is re-raised when no other handler is left. Returns the
 * function that removes the guard.
 */
export function guardProcessExit(current: () => ChildProcess | undefined, dir: string): () => void {
  const cleanup = (): void => {
    const child = current()
    if (child?.pid && alive(child)) signalGroup(child.pid, 'SIGKILL')
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

/** uid/gid of the `postgres` system user when we are root (initdb refuses root), else ourselves. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const entry = (name: string, kind: 'passwd' | 'group'): number => {
    let line = ''
    try {
      line = execFileSync('getent', [kind, name], { encoding: 'utf8' }).trim()
    } catch {
      /* missing: below */
    }
    const id = Number(line.split(':')[2])
    if (!line || !Number.isInteger(id)) {
      throw new Error(`postgres harness: running as root needs a "${name}" ${kind === 'passwd' ? 'user' : 'group'}`)
    }
    return id
  }
  return { uid: entry('postgres', 'passwd'), gid: entry('postgres', 'group') }
}

function secret(): string {
  return randomBytes(18).toString('base64url')
}

/** Runs a PostgreSQL tool to completion (as `who`), failing with its output. */
function runTool(bin: string, args: string[], who: { uid: number; gid: number } | undefined, cwd: string): void {
  try {
    execFileSync(bin, args, {
      cwd,
      stdio: 'pipe',
      encoding: 'utf8',
      ...who,
      env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
    })
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string }
    throw new Error(`postgres harness: ${bin} failed: ${(err.stderr || err.stdout || err.message).trim()}`)
  }
}

interface Cluster {
  bin: string
  dir: string
  data: string
  log: string
  who: { uid: number; gid: number } | undefined
  superPassword: string
}

/** A temp dir owned by the server's user (0700), an initdb'd data dir inside, the log file. */
async function makeCluster(opts: PgOptions): Promise<Cluster> {
  const binDir = postgresBinDir()
  if (!binDir) throw new Error(`postgres harness: PostgreSQL is not installed (${POSTGRES_INSTALL_HINT})`)
  const who = runAs()
  const dir = await mkdtemp(join(tmpdir(), 'mailkey-pg-'))
  const own = async (path: string): Promise<void> => {
    if (who) await chown(path, who.uid, who.gid)
  }
  await chmod(dir, 0o700)
  await own(dir)
  const cluster: Cluster = {
    bin: join(binDir, 'postgres'),
    dir,
    data: join(dir, 'data'),
    log: join(dir, 'postgres.log'),
    who,
    superPassword: secret(),
  }
  try {
    const pwfile = join(dir, 'pwfile')
    await writeFile(pwfile, `${cluster.superPassword}\n`, { mode: 0o600 })
    await own(pwfile)
    const initdb = [...['-D', cluster.data, '-U', 'postgres', `--pwfile=${pwfile}`, '-A', 'scram-sha-256']]
    runTool(join(binDir, 'initdb'), [...initdb, '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'], who, dir)
    await rm(pwfile)
    await appendFile(join(cluster.data, 'postgresql.conf'), await confLines(cluster, opts, own))
    await writeFile(cluster.log, '', { mode: 0o600 })
    await own(cluster.log)
    return cluster
  } catch (e) {
    await rm(dir, { recursive: true, force: true })
    throw e
  }
}

function confValue(value: string): string {
  if (/[\r\n]/.test(value)) throw new Error('postgres harness: newline in a setting')
  return value
}

async function confLines(cluster: Cluster, opts: PgOptions, own: (p: string) => Promise<void>): Promise<string> {
  const lines = [
    '# mailkey test harness (test/harness/postgres.ts)',
    "listen_addresses = '127.0.0.1'",
    "unix_socket_directories = ''",
    "password_encryption = 'scram-sha-256'",
    'max_connections = 200',
  ]
  // synchronous_commit stays on: a kill -9 of the server (the crash tests) then loses no commit; fsync
  // and full_page_writes only matter when the machine itself crashes
  if (!opts.durable) lines.push('fsync = off', 'full_page_writes = off')
  if (opts.tls) {
    for (const [name, from] of [
      ['server.crt', opts.tls.cert],
      ['server.key', opts.tls.key],
    ] as const) {
      const to = join(cluster.data, name)
      await copyFile(from, to)
      await chmod(to, 0o600)
      await own(to)
    }
    lines.push('ssl = on', "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'")
  }
  for (const [name, value] of Object.entries(opts.settings ?? {})) lines.push(`${name} = ${confValue(value)}`)
  return `\n${lines.join('\n')}\n`
}

function connectionOk(config: pg.ClientConfig): Promise<boolean> {
  const client = new pg.Client({ ...config, connectionTimeoutMillis: 1000 })
  client.on('error', () => {
    /* the server went away */
  })
  return client
    .connect()
    .then(() => client.query('SELECT 1'))
    .then(
      () => true,
      () => false,
    )
    .finally(() => client.end().catch(() => undefined))
}

async function tailOf(log: string): Promise<string> {
  const text = await readFile(log, 'utf8').catch(() => '')
  const tail = text.trim().split('\n').slice(-15).join('\n')
  return tail ? `\n--- postgres.log ---\n${tail}` : ''
}

/** Spawns the postmaster on `port` (own process group, stderr to the log) and waits until a query works. */
async function launch(cluster: Cluster, port: number, timeoutMs: number): Promise<ChildProcess> {
  const logFd = openSync(cluster.log, 'a')
  let child: ChildProcess
  try {
    child = spawn(cluster.bin, ['-D', cluster.data, '-p', String(port)], {
      cwd: cluster.dir,
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
      ...cluster.who,
    })
  } finally {
    closeSync(logFd)
  }
  child.unref()
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
  const superConfig = {
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password: cluster.superPassword,
    database: 'postgres',
  }
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (!alive(child)) {
      throw new Error(
        `postgres exited during startup (${child.exitCode ?? child.signalCode})${await tailOf(cluster.log)}`,
      )
    }
    if (await connectionOk(superConfig)) return child
    if (Date.now() > deadline) {
      await killGroup(child)
      throw new Error(`postgres did not accept connections within ${timeoutMs} ms${await tailOf(cluster.log)}`)
    }
    await sleep(15)
  }
}

/** The first start: on a port taken between freePorts and bind, another port (3 tries). */
async function firstLaunch(cluster: Cluster, timeoutMs: number): Promise<{ child: ChildProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const [port] = (await freePorts(1)) as [number]
    try {
      return { child: await launch(cluster, port, timeoutMs), port }
    } catch (e) {
      if (attempt >= 3 || !/could not bind|Address already in use/.test((e as Error).message)) throw e
    }
  }
}

/** Creates the role `mailkey` (LOGIN, no superuser) and the database `mailkey` it owns. */
async function createOwner(superUrl: string, password: string): Promise<void> {
  const client = new pg.Client({ connectionString: superUrl })
  await client.connect()
  try {
    // CREATE ROLE takes no bind parameters; the password is base64url, so it needs no quoting.
    if (!/^[\w-]+$/.test(password)) throw new Error('postgres harness: unexpected password characters')
    await client.query(`CREATE ROLE mailkey LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${password}'`)
    await client.query('CREATE DATABASE mailkey OWNER mailkey')
  } finally {
    await client.end()
  }
}

/** A fresh PostgreSQL cluster on 127.0.0.1 with database and role `mailkey`; see PgServer. */
export async function startPostgres(opts: PgOptions = {}): Promise<PgServer> {
  const timeoutMs = opts.startTimeoutMs ?? 15_000
  const cluster = await makeCluster(opts)
  let child: ChildProcess | undefined
  const unguard = guardProcessExit(() => child, cluster.dir)
  let port: number
  try {
    ;({ child, port } = await firstLaunch(cluster, timeoutMs))
  } catch (e) {
    unguard()
    await rm(cluster.dir, { recursive: true, force: true })
    throw e
  }
  const password = secret()
  const base = `127.0.0.1:${port}`
  const superUrl = `postgres://postgres:${cluster.superPassword}@${base}/postgres`
  let closed: Promise<void> | undefined
  const server: PgServer = {
    host: '127.0.0.1',
    port,
    database: 'mailkey',
    user: 'mailkey',
    password,
    url: `postgres://mailkey@${base}/mailkey`,
    urlWithPassword: `postgres://mailkey:${password}@${base}/mailkey`,
    env: () => ({ PGPASSWORD: password }),
    superUrl,
    dir: cluster.dir,
    readLog: () => readFile(cluster.log, 'utf8').catch(() => ''),
    async kill() {
      if (child) await killGroup(child)
    },
    async stop() {
      if (!child || !alive(child)) return
      child.kill('SIGINT')
      if (!(await exited(child, 10_000))) throw new Error(`postgres did not stop in 10 s${await tailOf(cluster.log)}`)
      await killGroup(child) // stragglers, if any
    },
    async start() {
      if (child && alive(child)) throw new Error('postgres harness: start() while the server is running')
      child = await launch(cluster, port, timeoutMs)
    },
    async query(sql, params, database) {
      const url = new URL(superUrl)
      if (database) url.pathname = `/${database}`
      const client = new pg.Client({ connectionString: url.href })
      client.on('error', () => undefined)
      await client.connect()
      try {
        return await client.query(sql, params)
      } finally {
        await client.end().catch(() => undefined)
      }
    },
    close() {
      closed ??= (async () => {
        if (child) await killGroup(child) // everything is thrown away: no clean shutdown needed
        unguard()
        await rm(cluster.dir, { recursive: true, force: true, maxRetries: 3 })
      })()
      return closed
    },
  }
  try {
    await createOwner(superUrl, password)
  } catch (e) {
    await server.close()
    throw new Error(`postgres harness: creating role and database failed: ${(e as Error).message}`, { cause: e })
  }
  return server
}
