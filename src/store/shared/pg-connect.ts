/**
 * Connecting to PostgreSQL as its users expect: the libpq URL forms (sslmode, sslrootcert,
 * sslcert, sslkey, connect_timeout), the password from the URL, PGPASSWORD or the pgpass file
 * (PGPASSFILE, else ~/.pgpass, used only when private: store/shared/private-file.ts, which also
 * takes a systemd credential), timeouts that turn a dead server into a transient error within
 * seconds, and TLS verified by default when the server is not on loopback (libpq's own default
 * would send everything in the clear; say `sslmode=disable` to mean it).
 *
 * Owns: pg pool options and error mapping. Must not: know the schema.
 */
import { readFileSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, ERR, StoreError } from '../../errors.js'
import type { Env } from '../../config/paths.js'
import { cleanServerText } from '../../core/server-text.js'
import { isLoopbackHost } from '../../core/net.js'
import { privateMode } from './private-file.js'
import { shortageCode, shortageText } from '../../errors.js'

/** how long a connection attempt, and then one statement, may take before the store counts as down */
export const CONNECT_TIMEOUT_MS = 3_000
export const STATEMENT_TIMEOUT_MS = 3_000

export interface PgPoolOptions {
  connectionString: string
  connectionTimeoutMillis: number
  query_timeout: number
  statement_timeout: number
  idleTimeoutMillis: number
  max: number
  allowExitOnIdle: boolean
  keepAlive: boolean
  application_name: string
  ssl?: { rejectUnauthorized: true }
}

export function poolOptions(rawUrl: string, env: Env): PgPoolOptions {
  const u = new URL(rawUrl)
  const urlPassword = u.password ? decodeURIComponent(u.password) : undefined
  const sslmode = u.searchParams.get('sslmode')
  const host = u.hostname.replace(/^\[|\]$/g, '')
  // pg lets the connection string's (missing) password override a `password` option, so the
  // password found in PGPASSWORD or pgpass goes into the string itself (in memory only; messages
  // name the store by its label)
  const password = urlPassword ?? env.PGPASSWORD ?? pgpassLookup(u, env)
  if (password !== undefined && !urlPassword) u.password = encodeURIComponent(password)
  const o: PgPoolOptions = {
    connectionString: u.href,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: STATEMENT_TIMEOUT_MS + 1_000,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    idleTimeoutMillis: 10_000,
    max: 4,
    allowExitOnIdle: true,
    keepAlive: true,
    application_name: 'mailkey',
  }
  if (!sslmode && host !== '' && !isLoopbackHost(host)) o.ssl = { rejectUnauthorized: true }
  return o
}

/** The password of the first matching pgpass line (host:port:database:user:password, * wildcards). */
export function pgpassLookup(u: URL, env: Env): string | undefined {
  const file = env.PGPASSFILE || join(env.HOME || homedir(), '.pgpass')
  let text: string
  try {
    const st = statSync(file)
    // libpq ignores a pgpass others can read; a systemd credential shows its ACL mask as group read
    if (!st.isFile() || !privateMode(st.mode, file, env)) return undefined
    text = readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
  const want = [u.hostname || 'localhost', u.port || '5432', u.pathname.slice(1) || '*', decodeURIComponent(u.username)]
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('#') || line.trim() === '') continue
    const f = splitPgpass(line)
    if (f.length < 5) continue
    if (want.every((w, i) => f[i] === '*' || f[i] === w)) return f.slice(4).join(':')
  }
  return undefined
}

function splitPgpass(line: string): string[] {
  const out: string[] = []
  let cur = ''
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (c === '\\' && i + 1 < line.length) cur += line[++i]
    else if (c === ':') {
      out.push(cur)
      cur = ''
    } else cur += c
  }
  out.push(cur)
  return out
}

// SQLSTATE classes and codes (PostgreSQL Appendix A) that mean "the server is not there right now"
const UNAVAILABLE_STATES = /^(08|53|57P0[1-4]|58)/
const AUTH_STATES = /^(28|3D000)/

/** A pg failure as mailkey's error, naming the store by its label. */
export function pgError(e: unknown, label: string, doing: string): StoreError | ConfigError {
  const err = e as { code?: unknown; message?: unknown }
  const code = typeof err?.code === 'string' ? err.code : ''
  const text = cleanServerText(typeof err?.message === 'string' ? err.message : String(e))
  if (code === '42P01' || code === '42703') return schemaError(label)
  const shortage = shortageCode(e)
  if (shortage) {
    return new StoreError(ERR.RESOURCES_EXHAUSTED, `cannot ${doing} on ${label}: ${shortageText(shortage)}`, {
      cause: e,
      hint: 'Nothing was lost; try again in a moment.',
    })
  }
  if (AUTH_STATES.test(code)) {
    return new ConfigError(ERR.CONFIG_INVALID, `the shared store ${label} refused mailkey: ${text}`, {
      hint: 'Check the user, database and password (PGPASSWORD, ~/.pgpass or the URL) of MAILKEY_STORE_URL.',
    })
  }
  if (/certificate|self[- ]signed|SSL|TLS/i.test(text) && !UNAVAILABLE_STATES.test(code)) {
    return new ConfigError(ERR.CONFIG_INVALID, `cannot set up TLS to the shared store ${label}: ${text}`, {
      hint: 'Name the CA with ?sslrootcert=FILE in the URL; on a private network you trust, ?sslmode=disable turns TLS off.',
    })
  }
  // the network or the server's state, never a bug of ours (an error without a code is one of
  // those only when it says so); a serialization failure or a deadlock is tried again later too
  const network = /timeout|timed out|terminated|ECONN|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE|socket/i
  if (UNAVAILABLE_STATES.test(code) || /^(40001|40P01)$/.test(code) || network.test(`${code} ${text}`)) {
    return unavailable(label, doing, text, e)
  }
  return new StoreError(ERR.STORE_IO, `cannot ${doing} on ${label}: ${text}`, { cause: e })
}

export function unavailable(label: string, doing: string, text: string, cause?: unknown): StoreError {
  return new StoreError(ERR.STORE_UNAVAILABLE, `the shared store ${label} is unavailable (${doing}): ${text}`, {
    cause,
    hint: 'Nothing was lost; try again in a moment. Access tokens this host already holds keep working while they are valid.',
  })
}

export function schemaError(label: string): StoreError {
  return new StoreError(ERR.STORE_SCHEMA, `the shared store ${label} has no mailkey tables yet, or older ones`, {
    hint: 'Run "mailkey store init" once (with the same MAILKEY_STORE_URL) to create or upgrade them.',
  })
}
