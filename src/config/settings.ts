/**
 * The broker's tunables as one snapshot, with one precedence for every key:
 * options (the library caller, the refresh worker) > environment (MAILKEY_*) > config.toml > defaults.
 * The broker takes a new snapshot whenever config.toml changes (config/config-file.ts), so every
 * key follows the file alike; the refresh worker receives its parent's snapshot; the CLI's fast
 * path asks `fastPathAllowed` instead of looking into the file itself.
 *
 * Owns: the defaults, the named timeouts and the precedence. Must not: do I/O or parse TOML.
 */
import type { Env } from './paths.js'

export interface Settings {
  /** refresh when less than this is left (config.toml refresh_margin_sec, MAILKEY_REFRESH_MARGIN_SEC) */
  refreshMarginSec: number
  /** how long to wait for the token endpoint (config.toml http_timeout_sec) */
  httpTimeoutMs: number
  /** how long to wait for another process's refresh of the same account */
  lockTimeoutMs: number
  /** attempts for transient failures */
  maxAttempts: number
  /** longest Retry-After mailkey waits out itself; longer ones fail at once */
  maxRetryAfterSec: number
}

/** What config.toml contributes (a parsed Config is one). */
export interface FileSettings {
  refreshMarginSec?: number
  httpTimeoutSec?: number
  providers?: ReadonlyMap<string, unknown>
}

export const DEFAULT_REFRESH_MARGIN_SEC = 300

export const DEFAULT_SETTINGS: Readonly<Settings> = Object.freeze({
  refreshMarginSec: DEFAULT_REFRESH_MARGIN_SEC,
  httpTimeoutMs: 30_000,
  lockTimeoutMs: 110_000,
  maxAttempts: 3,
  maxRetryAfterSec: 10,
})

/** How long sign-in, removal and env seeding wait for an account's lock before they write. */
export const WRITE_LOCK_TIMEOUT_MS = 30_000

/** How long `mailkey remove` waits for the revocation endpoint (RFC 7009) before removing anyway. */
export const REVOKE_TIMEOUT_MS = 10_000

/** A record read by a refresh whose last connection died with no answer within this is "answer maybe lost". */
export const LOST_ANSWER_WINDOW_MS = 15 * 60_000

/** A cached token with at least this much life left is handed out when the server is down. */
export const CACHED_FALLBACK_MIN_MS = 30_000

/** MAILKEY_REFRESH_MARGIN_SEC, when it is a whole number of seconds. */
export function marginFromEnv(value: string | undefined): number | undefined {
  return value !== undefined && /^\d{1,5}$/.test(value) ? Number(value) : undefined
}

/** The environment's layer (only the margin has a variable today). */
export function envSettings(env: Env): Partial<Settings> {
  const margin = marginFromEnv(env.MAILKEY_REFRESH_MARGIN_SEC)
  return margin === undefined ? {} : { refreshMarginSec: margin }
}

function fileLayer(file: FileSettings | undefined): Partial<Settings> {
  const out: Partial<Settings> = {}
  if (file?.refreshMarginSec !== undefined) out.refreshMarginSec = file.refreshMarginSec
  if (file?.httpTimeoutSec !== undefined) out.httpTimeoutMs = file.httpTimeoutSec * 1000
  return out
}

/** Drop keys whose value is undefined, so that a layer never hides a lower one with "unset". */
function defined(layer: Partial<Settings>): Partial<Settings> {
  return Object.fromEntries(Object.entries(layer).filter(([, v]) => v !== undefined)) as Partial<Settings>
}

/** The snapshot: options > env > config.toml > defaults, key by key. */
export function resolveSettings(options: Partial<Settings>, env: Env, file: FileSettings | undefined): Settings {
  return { ...DEFAULT_SETTINGS, ...fileLayer(file), ...envSettings(env), ...defined(options) }
}

/** Does the snapshot need config.toml at all? (No, when options or env give the keys the file could.) */
export function needsFile(options: Partial<Settings>, env: Env): boolean {
  return { ...envSettings(env), ...defined(options) }.refreshMarginSec === undefined
}

/**
 * May the CLI's fast path (cli/fast.ts) print a cached token with this file? Only when the file
 * sets no margin (the full CLI applies it and says which one) and defines no providers (their grant
 * horizons can make `token` warn).
 */
export function fastPathAllowed(file: FileSettings | undefined): boolean {
  return file?.refreshMarginSec === undefined && (file?.providers?.size ?? 0) === 0
}

/** Pick the snapshot's keys out of a larger object (BrokerOptions), leaving the rest behind. */
export function settingsOptions(o: Partial<Settings>): Partial<Settings> {
  return defined({
    refreshMarginSec: o.refreshMarginSec,
    httpTimeoutMs: o.httpTimeoutMs,
    lockTimeoutMs: o.lockTimeoutMs,
    maxAttempts: o.maxAttempts,
    maxRetryAfterSec: o.maxRetryAfterSec,
  })
}
