/**
 * Which store a host uses: MAILKEY_STORE_URL, else `[store] url` of config.toml, else the local
 * file store. A shared store URL names its engine by scheme: postgres:// (postgresql://) or
 * redis:// (rediss:// for TLS). The URL may carry a password, as both engines' own tools allow;
 * it is never shown: every message names the store by its label, the URL without the password.
 *
 * Owns: reading and labelling store URLs. Must not: connect.
 */
import { ConfigError, ERR } from '../../errors.js'
import type { Env } from '../../config/paths.js'

export type Engine = 'postgres' | 'redis'

export interface StoreUrl {
  engine: Engine
  /** the URL as given (may hold a password: never print it) */
  url: string
  /** the URL without password or query, for messages */
  label: string
}

/** The shared store URL in effect, or undefined for the file store. */
export function storeUrlSetting(env: Env, configured: string | undefined): string | undefined {
  const v = env.MAILKEY_STORE_URL?.trim()
  if (v) return v
  return configured?.trim() || undefined
}

const SCHEMES: Record<string, Engine> = {
  'postgres:': 'postgres',
  'postgresql:': 'postgres',
  'redis:': 'redis',
  'rediss:': 'redis',
}

export function parseStoreUrl(raw: string): StoreUrl {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw badUrl('it is not a URL')
  }
  const engine = SCHEMES[u.protocol]
  if (u.protocol === 'https:' || u.protocol === 'http:')
    throw badUrl('a token service (https://) is named in MAILKEY_STORE_URL, with its key in MAILKEY_API_KEY_FILE')
  if (!engine) throw badUrl(`mailkey stores accounts on postgres:// or redis://, not ${u.protocol}//`)
  return { engine, url: raw, label: labelOf(u) }
}

/** The URL without its password and query (which may name files and options), for messages. */
export function labelOf(u: URL): string {
  const user = u.username ? `${decodeURIComponent(u.username)}@` : ''
  return `${u.protocol}//${user}${u.host}${u.pathname === '/' ? '' : u.pathname}`
}

function badUrl(why: string): ConfigError {
  return new ConfigError(
    ERR.CONFIG_INVALID,
    `the store URL (MAILKEY_STORE_URL or [store] url) cannot be used: ${why}`,
    {
      hint: 'Use postgres://USER@HOST:5432/DATABASE or redis://USER@HOST:6379/0, with the password in PGPASSWORD, ~/.pgpass or REDISCLI_AUTH rather than in the URL.',
    },
  )
}
