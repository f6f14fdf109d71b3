/**
 * The shared store on Redis (docs/adr/0011), mirroring postgres.ts: per account a hash
 * `mailkey:acct:ID` with the columns of the PostgreSQL row (times in the server's ms), the set
 * `mailkey:accounts` of ids, the refresh log as the stream `mailkey:log`, and the schema version in
 * `mailkey:schema`. Every check-and-set is one Lua script on the server's clock
 * (redis-scripts.ts). Refuses a Redis whose persistence could lose an acknowledged write
 * (redis-connect.ts). Target: a single primary; Redis replication is asynchronous, so a failover
 * can lose writes the old primary acknowledged (see redis-connect.ts).
 *
 * One connection, opened on first use and again after it broke (never a reconnect loop: a dead
 * server is STORE_UNAVAILABLE within CONNECT_TIMEOUT_MS / STATEMENT_TIMEOUT_MS), and unref'd while
 * idle so it never keeps a process alive.
 *
 * Owns: the Redis key layout. Must not: seal, decide freshness, or talk OAuth.
 */
import { createHash } from 'node:crypto'
import {
  ErrorReply,
  RedisClient,
  type RedisFunctions,
  type RedisModules,
  type RedisScripts,
  type TypeMapping,
} from '@redis/client'
import type { Env } from '../../config/paths.js'
import type { LastError, SealedBox } from '../../domain/account.js'
import type { Claim, LogEntry, RowWrite, SharedBackend, SharedRow } from './backend.js'
import {
  CONNECT_TIMEOUT_MS,
  STATEMENT_TIMEOUT_MS,
  checkAofReplay,
  checkPersistence,
  redisError,
  redisOptions,
  redisSchemaError,
  type RedisOptions,
} from './redis-connect.js'
import * as lua from './redis-scripts.js'
import { RedisItems, itemsKey } from './redis-items.js'
import type { ItemStore } from '../items.js'

export const REDIS_SCHEMA_VERSION = 1

/** after a failed connection, how long before another is tried (operations fail at once meanwhile) */
const RECONNECT_AFTER_MS = 1_000
/** a connection attempt that failed after this long waited for a timeout (a silent server) */
const SLOW_FAILURE_MS = 1_000

export const KEYS = {
  account: (id: string): string => `mailkey:acct:${id}`,
  accounts: 'mailkey:accounts',
  log: 'mailkey:log',
  schema: 'mailkey:schema',
  /** fences come from one counter, so a removed and re-added account never repeats one */
  fence: 'mailkey:fence',
}

// every write the scripts make, on the keys they make it on: the AOF replay must be allowed them all
const ACCT = KEYS.account('x')
const AOF_WRITES: string[][] = [
  ['HSET', ACCT, 'f', 'v'],
  ['HDEL', ACCT, 'f'],
  ['HINCRBY', ACCT, 'f', '1'],
  ['DEL', ACCT],
  ['SADD', KEYS.accounts, 'x'],
  ['SREM', KEYS.accounts, 'x'],
  ['XADD', KEYS.log, '*', 'f', 'v'],
  ['SET', KEYS.schema, '1'],
  ['INCR', KEYS.fence],
  ['HSET', itemsKey('x'), 'f', 'v'],
  ['HSETNX', itemsKey('x'), 'f', 'v'],
  ['HDEL', itemsKey('x'), 'f'],
]

// the bare client: only sendCommand is used, and createClient's hundreds of command methods cost
// every `mailkey token` about 100 ms of start-up
type Client = RedisClient<RedisModules, RedisFunctions, RedisScripts, 2, TypeMapping>
type Reply = string | number | null | Reply[]

const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex')
const shas = new Map<string, string>()
const opt = (v: number | string | undefined): string => (v === undefined ? '' : String(v))
const json = (v: unknown): string => (v === undefined ? '' : JSON.stringify(v))

/** A row from HGETALL's flat [field, value, ...] and the server's time; undefined when empty. */
export function rowOf(flat: Reply, serverNow: Reply): SharedRow | undefined {
  if (!Array.isArray(flat) || flat.length === 0) return undefined
  const m = new Map<string, string>()
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(String(flat[i]), String(flat[i + 1]))
  const num = (f: string): number | undefined => (m.has(f) ? Number(m.get(f)) : undefined)
  const row: SharedRow = {
    id: m.get('id') ?? '',
    version: num('version') ?? 0,
    fence: num('fence') ?? 0,
    state: m.get('state') === 'reauth' ? 'reauth' : 'active',
    updatedAt: num('updated_at') ?? 0,
    serverNow: Number(serverNow),
  }
  if (m.has('lease_owner')) row.leaseOwner = m.get('lease_owner')
  if (m.has('lease_until')) row.leaseUntil = num('lease_until')
  if (m.has('intent_fence'))
    row.intent = { fence: num('intent_fence') ?? 0, owner: m.get('intent_owner') ?? '', at: num('intent_at') ?? 0 }
  if (m.has('last_error')) row.lastError = JSON.parse(m.get('last_error') as string) as LastError
  if (m.has('sealed')) row.box = JSON.parse(m.get('sealed') as string) as SealedBox
  return row
}

export class RedisBackend implements SharedBackend {
  readonly label: string
  readonly items: ItemStore
  readonly #options: RedisOptions
  readonly #env: Env
  #conn: Promise<Client> | undefined
  #connectFailed: { at: number; error: unknown } | undefined
  #busy = 0
  #persistenceOk = false
  #schemaOk = false

  constructor(url: string, label: string, env: Env) {
    this.label = label
    this.#env = env
    this.#options = redisOptions(url, label, env)
    this.items = new RedisItems(
      label,
      (doing, args) => this.#cmd(doing, args),
      () => this.checkSchema(),
    )
  }

  /** The open connection, or a new one (the last one broke, or there was none). */
  async #client(): Promise<Client> {
    const cur = this.#conn && (await this.#conn.catch(() => undefined))
    if (cur?.isOpen) return cur
    cur?.destroy()
    // a connection that just timed out is not tried again at once: one operation (the persistence
    // check's commands, then its own) must not wait out the handshake deadline once per command
    const failed = this.#connectFailed
    if (failed && Date.now() - failed.at < RECONNECT_AFTER_MS) throw failed.error
    const c = new RedisClient(this.#options)
    c.on('error', () => undefined) // surfaced by the command that failed
    // the connect timeout covers TCP only: a server that accepts and then says nothing (stopped,
    // wedged, behind a silent link) must not hold the handshake (HELLO, AUTH, SELECT) forever
    const p = withDeadline(c.connect(), CONNECT_TIMEOUT_MS + STATEMENT_TIMEOUT_MS, () => c.destroy()).then(() => c)
    this.#conn = p
    const started = Date.now()
    p.then(
      () => (this.#connectFailed = undefined),
      (error: unknown) => {
        // only a slow failure (no answer until a timeout) is remembered: a refused connection
        // costs nothing to try again, and a server just restarted must be reached at once
        if (Date.now() - started >= SLOW_FAILURE_MS) this.#connectFailed = { at: Date.now(), error }
        if (this.#conn === p) this.#conn = undefined
        c.destroy()
      },
    )
    return await p
  }

  async #send(args: string[]): Promise<Reply> {
    this.#busy++
    let c: Client | undefined
    try {
      c = await this.#client()
      c.ref()
      return (await c.sendCommand(args)) as Reply
    } catch (e) {
      // anything but a reply from the server leaves the connection in doubt: the next use opens another
      if (c && !(e instanceof ErrorReply)) c.destroy()
      throw e
    } finally {
      if (--this.#busy === 0 && c?.isOpen) c.unref()
    }
  }

  async #cmd(doing: string, args: string[]): Promise<Reply> {
    try {
      return await this.#send(args)
    } catch (e) {
      throw redisError(e, this.label, doing)
    }
  }

  /** EVALSHA, loading the script with EVAL when the server does not have it yet. */
  async #eval(doing: string, script: string, keys: string[], argv: string[]): Promise<Reply> {
    const sha = shas.get(script) ?? sha1(script)
    shas.set(script, sha)
    const tail = [String(keys.length), ...keys, ...argv]
    try {
      return await this.#send(['EVALSHA', sha, ...tail])
    } catch (e) {
      if (!(e instanceof ErrorReply && e.message.startsWith('NOSCRIPT'))) throw redisError(e, this.label, doing)
    }
    return await this.#cmd(doing, ['EVAL', script, ...tail])
  }

  #keys(id: string): string[] {
    return [KEYS.account(id), KEYS.accounts, KEYS.log]
  }

  async #persistence(): Promise<void> {
    if (this.#persistenceOk) return
    const get = async (name: string): Promise<string | undefined> => {
      const r = await this.#send(['CONFIG', 'GET', name])
      return Array.isArray(r) && r.length >= 2 ? String(r[1]) : undefined
    }
    try {
      await checkPersistence(get, this.label, this.#env)
      const dryrun = async (cmd: string[]): Promise<string> =>
        String(await this.#send(['ACL', 'DRYRUN', 'default', ...cmd]))
      await checkAofReplay(dryrun, AOF_WRITES, this.label, this.#env)
    } catch (e) {
      throw redisError(e, this.label, 'check the persistence settings')
    }
    this.#persistenceOk = true
  }

  async init(): Promise<{ from: number; to: number }> {
    await this.#persistence()
    const r = await this.#eval('create the schema', lua.INIT, [KEYS.schema], [String(REDIS_SCHEMA_VERSION)])
    const [from, to] = Array.isArray(r) ? r.map(Number) : [0, 0]
    this.#schemaOk = true
    return { from: from ?? 0, to: to ?? REDIS_SCHEMA_VERSION }
  }

  async checkSchema(): Promise<void> {
    if (this.#schemaOk) return
    await this.#persistence()
    const v = await this.#cmd('check the schema', ['GET', KEYS.schema])
    if (v === null || !(Number(v) >= REDIS_SCHEMA_VERSION)) throw redisSchemaError(this.label)
    this.#schemaOk = true
  }

  async get(id: string): Promise<SharedRow | undefined> {
    await this.checkSchema()
    const r = await this.#eval('read an account', lua.GET, [KEYS.account(id)], [id])
    return Array.isArray(r) ? rowOf(r[1] ?? null, r[0] ?? null) : undefined
  }

  async list(): Promise<SharedRow[]> {
    await this.checkSchema()
    const ids = await this.#cmd('list accounts', ['SMEMBERS', KEYS.accounts])
    if (!Array.isArray(ids) || ids.length === 0) return []
    const sorted = ids.map(String).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    const r = await this.#eval('list accounts', lua.GET_MANY, sorted.map(KEYS.account), [])
    if (!Array.isArray(r)) return []
    const rows = r.slice(1).map((flat) => rowOf(flat, r[0] ?? null))
    return rows.filter((row): row is SharedRow => row !== undefined) // removed in between
  }

  async claim(id: string, owner: string, leaseMs: number, reserve: boolean): Promise<Claim> {
    await this.checkSchema()
    const argv = [id, owner, String(Math.max(1, Math.round(leaseMs))), reserve ? '1' : '0']
    const r = await this.#eval('take a lease', lua.CLAIM, [...this.#keys(id), KEYS.fence], argv)
    const row = Array.isArray(r) ? rowOf(r[2] ?? null, r[1] ?? null) : undefined
    const kind = Array.isArray(r) ? r[0] : undefined
    if (!row) return { kind: 'missing' }
    return kind === 'mine' ? { kind: 'mine', row } : { kind: 'held', row }
  }

  async markIntent(id: string, fence: number, owner: string): Promise<boolean> {
    const r = await this.#eval('mark a refresh in flight', lua.MARK_INTENT, this.#keys(id), [id, String(fence), owner])
    return r === 1
  }

  async write(id: string, fence: number, version: number, w: RowWrite, log: LogEntry): Promise<boolean> {
    const argv = [
      id,
      String(fence),
      String(version),
      JSON.stringify(w.box),
      w.state,
      json(w.lastError),
      opt(w.expiresAt),
      opt(w.refreshTokenAt),
      opt(w.grantedAt),
      log.event,
      log.owner,
      json(log.detail),
    ]
    return (await this.#eval('write an account', lua.WRITE, this.#keys(id), argv)) === 1
  }

  async release(id: string, fence: number): Promise<void> {
    await this.#eval('release a lease', lua.RELEASE, this.#keys(id), [id, String(fence)])
  }

  async remove(id: string, fence: number, log: LogEntry): Promise<boolean> {
    const r = await this.#eval('remove an account', lua.REMOVE, this.#keys(id), [id, String(fence), log.owner])
    return r === 1
  }

  async log(id: string, e: LogEntry): Promise<void> {
    const argv = [id, e.event, e.owner, opt(e.fence), opt(e.version), json(e.detail)]
    await this.#eval('append to the refresh log', lua.LOG, this.#keys(id), argv)
  }

  async close(): Promise<void> {
    const c = this.#conn && (await this.#conn.catch(() => undefined))
    this.#conn = undefined
    if (!c?.isOpen) return
    await c.close().catch(() => c.destroy())
  }
}

/** `p`, or a rejection after `ms` (and `onTimeout` run) when it has not settled by then. */
function withDeadline<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout()
      reject(new Error(`no answer to the connection handshake within ${ms / 1000} s`))
    }, ms)
    timer.unref()
  })
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer))
}
