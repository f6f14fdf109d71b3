/**
 * Connecting to Redis as its users expect: redis://USER@HOST:PORT/DB (rediss:// for TLS, verified
 * against the system's CAs), the password from the URL or REDISCLI_AUTH (redis-cli's own variable),
 * timeouts that turn a dead server into STORE_UNAVAILABLE within seconds and no endless reconnect
 * loop. A plain redis:// to a host off loopback is refused: the records are sealed, but the
 * password would cross the network in the clear.
 *
 * And the persistence check: mailkey refuses a Redis that can acknowledge a write it has not put on
 * disk (appendonly yes and appendfsync always are required), because the write it would lose is a
 * rotated refresh token: the old one is already spent at the provider, so the grant goes with it.
 * And one that would drop them when it reads its AOF back: Redis replays the AOF as the `default`
 * user and, before the fix of redis/redis#14541 (seen on Debian 12's 7.0.15), discards every
 * MULTI/EXEC (a script's writes: all of mailkey's) that user may not run, silently. So the default
 * user must be allowed mailkey's writes (it can stay off: "user default off ~* &* +@all").
 * Even then, Redis replication is asynchronous: a failover to a replica can lose writes the old
 * primary acknowledged (WAIT narrows but does not close that window; docs/adr/0011).
 *
 * Owns: client options, Redis error mapping, the persistence check. Must not: know the key layout.
 */
import { isIP } from 'node:net'
import {
  ErrorReply,
  type RedisClientOptions,
  type RedisFunctions,
  type RedisModules,
  type RedisScripts,
} from '@redis/client'
import { ConfigError, ERR, StoreError, shortageCode, shortageText } from '../../errors.js'
import type { Env } from '../../config/paths.js'
import { cleanServerText } from '../../core/server-text.js'
import { isLoopbackHost } from '../../core/net.js'
import { CONNECT_TIMEOUT_MS, STATEMENT_TIMEOUT_MS, unavailable } from './pg-connect.js'

export { CONNECT_TIMEOUT_MS, STATEMENT_TIMEOUT_MS }

export type RedisOptions = RedisClientOptions<RedisModules, RedisFunctions, RedisScripts, 2>

/** The client options for `rawUrl`; throws ConfigError for a plain connection off loopback. */
export function redisOptions(rawUrl: string, label: string, env: Env): RedisOptions {
  const u = new URL(rawUrl)
  const host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1'
  const tls = u.protocol === 'rediss:'
  if (!tls && !isLoopbackHost(host)) {
    throw new ConfigError(ERR.CONFIG_INVALID, `the shared store ${label} would be reached without TLS`, {
      hint: 'Use rediss:// (Redis over TLS) for a server off this machine: the tokens are sealed, but the Redis password would travel in the clear.',
    })
  }
  const db = u.pathname.replace(/^\//, '')
  if (db !== '' && !/^\d+$/.test(db)) {
    throw new ConfigError(ERR.CONFIG_INVALID, `the shared store ${label} names no database number`, {
      hint: 'Use redis://USER@HOST:6379/0 (the path is the database number).',
    })
  }
  const password = u.password ? decodeURIComponent(u.password) : env.REDISCLI_AUTH || undefined
  const common = { host, port: u.port ? Number(u.port) : 6379, connectTimeout: CONNECT_TIMEOUT_MS }
  return {
    socket: tls
      ? { ...common, tls: true, ...(isIP(host) ? {} : { servername: host }), reconnectStrategy: false }
      : { ...common, tls: false, reconnectStrategy: false },
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(db !== '' ? { database: Number(db) } : {}),
    // RESP2: plain arrays for HGETALL, CONFIG GET and script replies
    RESP: 2,
    disableOfflineQueue: true,
    commandOptions: { timeout: STATEMENT_TIMEOUT_MS, rejectInFlight: true },
  }
}

// replies that mean "the server is there but cannot serve right now"
const BUSY_REPLIES = /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|READONLY|MISCONF)\b/
const AUTH_REPLIES = /^(WRONGPASS|NOAUTH)\b/
const TLS_FAILURE = /certificate|self[- ]signed|SSL|TLS|altname/i

/** A Redis failure as mailkey's error, naming the store by its label. */
export function redisError(e: unknown, label: string, doing: string): StoreError | ConfigError {
  if (e instanceof StoreError || e instanceof ConfigError) return e
  const err = e as { code?: unknown; message?: unknown }
  const text = cleanServerText(typeof err?.message === 'string' ? err.message : String(e))
  const shortage = shortageCode(e)
  if (shortage) {
    return new StoreError(ERR.RESOURCES_EXHAUSTED, `cannot ${doing} on ${label}: ${shortageText(shortage)}`, {
      cause: e,
      hint: 'Nothing was lost; try again in a moment.',
    })
  }
  if (e instanceof ErrorReply) {
    if (AUTH_REPLIES.test(text) || /^NOPERM\b/.test(text)) {
      return new ConfigError(ERR.CONFIG_INVALID, `the shared store ${label} refused mailkey: ${text}`, {
        hint: 'Check the user and password (REDISCLI_AUTH or the URL) of MAILKEY_STORE_URL, and that the ACL user may run EVAL, HGETALL, SMEMBERS, XADD and CONFIG GET.',
      })
    }
    if (BUSY_REPLIES.test(text)) return unavailable(label, doing, text, e)
    return new StoreError(ERR.STORE_IO, `cannot ${doing} on ${label}: ${text}`, { cause: e })
  }
  const code = typeof err?.code === 'string' ? err.code : ''
  if (TLS_FAILURE.test(`${code} ${text}`) && !/ECONN|timeout/i.test(text)) {
    return new ConfigError(ERR.CONFIG_INVALID, `cannot set up TLS to the shared store ${label}: ${text}`, {
      hint: 'The server certificate must be valid for the host name and signed by a CA this system trusts (NODE_EXTRA_CA_CERTS adds one).',
    })
  }
  // everything else is the connection: refused, reset, closed, timed out
  return unavailable(label, doing, text, e)
}

export function redisSchemaError(label: string): StoreError {
  return new StoreError(ERR.STORE_SCHEMA, `the shared store ${label} has no mailkey schema yet, or an older one`, {
    hint: 'Run "mailkey store init" once (with the same MAILKEY_STORE_URL) to create or upgrade it.',
  })
}

export type ConfigGet = (name: string) => Promise<string | undefined>

/**
 * Refuses a Redis that may lose an acknowledged write: AOF on, fsync on every write, and no
 * eviction of keys without a TTL. `get` reads one setting (CONFIG GET); when the server refuses
 * CONFIG (managed Redis, renamed command), MAILKEY_REDIS_PERSISTENCE=verified is the operator's
 * word that it is set up so.
 */
export async function checkPersistence(get: ConfigGet, label: string, env: Env): Promise<void> {
  let settings: (string | undefined)[]
  try {
    settings = await Promise.all(['appendonly', 'appendfsync', 'maxmemory-policy'].map(get))
  } catch (e) {
    // a refused password or a busy server is not a refused CONFIG
    if (!(e instanceof ErrorReply) || AUTH_REPLIES.test(e.message) || BUSY_REPLIES.test(e.message)) throw e
    if (env.MAILKEY_REDIS_PERSISTENCE === 'verified') return
    throw persistenceError(label, `it does not let mailkey read its settings (${cleanServerText(e.message)})`)
  }
  const [aof, fsync, policy] = settings
  const wrong: string[] = []
  if (aof !== 'yes') wrong.push('appendonly yes')
  if (fsync !== 'always') wrong.push('appendfsync always')
  if (policy?.startsWith('allkeys-')) wrong.push('maxmemory-policy noeviction')
  if (wrong.length === 0) return
  const now = `appendonly ${aof ?? '?'}, appendfsync ${fsync ?? '?'}, maxmemory-policy ${policy ?? '?'}`
  throw persistenceError(label, `it may lose a write it acknowledged (${now}); set ${wrong.join(', ')}`)
}

export type AclDryRun = (command: string[]) => Promise<string>

/**
 * Refuses a Redis whose AOF replay would drop mailkey's writes (see the top): `dryrun` runs
 * ACL DRYRUN default COMMAND..., once for each of `writes`. A Redis without ACL DRYRUN (before 7.0)
 * is not checked; one that refuses it to mailkey's user needs MAILKEY_REDIS_PERSISTENCE=verified.
 */
export async function checkAofReplay(dryrun: AclDryRun, writes: string[][], label: string, env: Env): Promise<void> {
  let answers: string[]
  try {
    answers = await Promise.all(writes.map(dryrun))
  } catch (e) {
    if (!(e instanceof ErrorReply) || AUTH_REPLIES.test(e.message) || BUSY_REPLIES.test(e.message)) throw e
    if (/unknown subcommand|unknown command/i.test(e.message)) return
    if (env.MAILKEY_REDIS_PERSISTENCE === 'verified') return
    throw persistenceError(label, `it does not let mailkey check its ACL (${cleanServerText(e.message)})`)
  }
  const denied = answers.findIndex((a) => a !== 'OK')
  if (denied < 0) return
  const why = cleanServerText(String(answers[denied]))
  throw persistenceError(
    label,
    `it would drop mailkey's writes when it reads its AOF back, as its default user may not run ${writes[denied]?.[0]} (${why}); ` +
      'allow the default user mailkey\'s commands and keys, it may stay off ("user default off ~* &* +@all")',
  )
}

function persistenceError(label: string, why: string): ConfigError {
  return new ConfigError(ERR.CONFIG_INVALID, `mailkey will not keep tokens on the shared store ${label}: ${why}`, {
    hint:
      'A rotated refresh token that Redis acknowledged but had not written to disk is lost on a crash, and the sign-in with it. ' +
      'Set "appendonly yes" and "appendfsync always" (and no allkeys-* maxmemory-policy) in redis.conf or with CONFIG SET. ' +
      'Where CONFIG is not allowed (a managed Redis), check those settings yourself and set MAILKEY_REDIS_PERSISTENCE=verified.',
  })
}
