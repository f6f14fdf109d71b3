/**
 * What a Broker (broker/broker.ts) can be given.
 *
 * Owns: BrokerOptions. Must not: hold code.
 */
import type { Env, Paths } from '../config/paths.js'
import type { Settings } from '../config/settings.js'
import type { HooksConfig } from '../core/hooks.js'
import type { Sleep } from './retry.js'
import type { RefreshOutcome } from './failures.js'

/** Settings keys (config/settings.ts: refreshMarginSec, httpTimeoutMs, lockTimeoutMs, maxAttempts, maxRetryAfterSec) win over env and config.toml. */
export interface BrokerOptions extends Partial<Settings> {
  /** environment to read XDG paths and MAILKEY_* from (default: process.env) */
  env?: Env
  paths?: Paths
  /** run refreshes in a detached worker process (default: when the worker is available) */
  isolateRefresh?: boolean
  fetch?: typeof fetch
  now?: () => number
  /** how the refresh waits between attempts (default: a timer); tests pass one that does not wait */
  sleep?: Sleep
  /** [hooks] to run instead of those of config.toml (core/hooks.ts); {} turns them off */
  hooks?: HooksConfig
  /** a refresh this process led (the single flight's leader) ended so (the token service counts them) */
  onRefresh?: (account: string, outcome: RefreshOutcome) => void
  /** non-fatal notes (e.g. a cached token was returned because the server is down) */
  onWarning?: (message: string) => void
  /** an encrypted store: ask for its passphrase on a terminal (the CLI passes this) */
  askPassphrase?: (prompt: string) => Promise<string | undefined>
  /** an encrypted store: data keys already unlocked (handed to the refresh worker) */
  storeKeys?: ReadonlyMap<string, Buffer>
}
