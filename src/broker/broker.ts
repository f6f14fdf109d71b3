/**
 * The one place that hands out tokens. `getAccessToken(account)` returns a token with enough life
 * left, refreshing it when needed, with these guarantees:
 *
 * - B1 single flight: concurrent callers in one process share one refresh; across processes the
 *   single flight (broker/single-flight.ts; today lock files, broker/lock-flight.ts) admits one
 *   refresher, and everyone re-reads the record after it is done (so 50 processes on an expired
 *   token cost one token request).
 * - B2 persist, then return: a rotated refresh token is in the store (atomic write, fsync) before
 *   the new access token is handed to anyone (broker/refresh.ts).
 * - B3 a killed caller loses nothing: by default the refresh itself runs in a small detached
 *   worker process (broker/worker.ts) that holds the lock, so `kill -9` of the caller in the middle
 *   of a refresh cannot drop a rotated refresh token on the floor.
 * - B4 failures are classified once (oauth/classify.ts): transient ones keep the grant and are
 *   retried with backoff, honouring Retry-After (broker/retry.ts); re-auth ones mark the record so
 *   nobody hammers the server with a dead grant, and say which command fixes it
 *   (broker/failures.ts).
 *
 * Its settings are one snapshot (config/settings.ts) that follows config.toml. The fast path
 * (fresh token on disk) loads no OAuth code: grants.ts is imported lazily.
 *
 * Owns: getAccessToken, the wiring of its parts, and a few read-only queries (settings, grant
 * policy, freshness). Must not: print, exit, or parse CLI arguments.
 */
import { InterruptedError, MailkeyError } from '../errors.js'
import { resolvePaths, type Env, type Paths } from '../config/paths.js'
import { ConfigFile } from '../config/config-file.js'
import type { Settings } from '../config/settings.js'
import { SettingsSource } from './settings-source.js'
import { openStore } from '../store/open.js'
import type { FileStore } from '../store/file-store.js'
import type { TokenStore } from '../store/token-store.js'
import { accountId } from '../domain/account.js'
import { sleep as realSleep } from '../core/wait.js'
import type { AccountRecord, AccountSettings } from '../domain/account.js'
import { runHook, type HookEvent } from '../core/hooks.js'
import { isFresh, tokenOf } from './freshness.js'
import type { GrantPolicy } from './horizon.js'
import { errorFromLast, hookForFailure, outcomeOf, unknownAccount } from './failures.js'
import { refreshScope, refreshUnderLock, type RefreshContext } from './refresh.js'
import type { SingleFlight } from './single-flight.js'
import { StoreChoice, type Chosen } from './store-choice.js'
import { HostCache } from '../store/host-cache.js'
import { HostTokens, storeDown } from './host-tokens.js'
import { grantPolicyOf } from './policy.js'
import type { BrokerOptions } from './options.js'
import { workerLaunchers } from './launchers.js'
import { syncEnvAccount } from './env-seed.js'
import { preloadRefreshModules } from './preload.js'
import { cachedInstead, toAccessToken, type AccessToken, type GetTokenOptions } from './access-token.js'

export type { AccessToken, GetTokenOptions } from './access-token.js'
export type { BrokerOptions } from './options.js'

export { DEFAULT_REFRESH_MARGIN_SEC } from '../config/settings.js'
export { ASSUMED_LIFETIME_SEC } from './grant.js'
export { errorFromLast, unknownAccount } from './failures.js'

export class Broker {
  readonly env: Env
  readonly paths: Paths
  /** the local file store: the accounts of a host without a shared store, and local things */
  readonly file: FileStore
  /** the store in use (broker/store-choice.ts): the file store, or a shared one */
  readonly store: TokenStore
  readonly config: ConfigFile
  readonly flight: SingleFlight
  readonly #choice: StoreChoice
  readonly #host: HostTokens
  readonly #opts: BrokerOptions
  readonly #inflight = new Map<string, Promise<AccountRecord>>()
  readonly #settings: SettingsSource

  constructor(opts: BrokerOptions = {}) {
    this.#opts = opts
    this.env = opts.env ?? process.env
    this.paths = opts.paths ?? resolvePaths(this.env)
    this.config = new ConfigFile(this.paths.configFile)
    this.#settings = new SettingsSource(opts, this.env, this.config)
    this.file = openStore({
      env: this.env,
      paths: this.paths,
      passphraseCommand: async () => (await this.config.loadOrNothing())?.store?.passphraseCommand,
      ...(opts.askPassphrase ? { askPassphrase: opts.askPassphrase } : {}),
      ...(opts.storeKeys ? { keys: opts.storeKeys } : {}),
    })
    this.#choice = new StoreChoice({
      env: this.env,
      config: this.config,
      file: this.file,
      now: () => this.now(),
      refreshHere: async (id, req) => refreshUnderLock(await this.#refreshContext(), id, req),
      ...workerLaunchers({
        env: this.env,
        paths: this.paths,
        settings: () => this.settings(),
        keys: () => this.file.keys?.unlocked(),
        use: () => this.#opts.isolateRefresh !== false && !this.#opts.fetch, // a custom fetch lives in this process only
      }),
    })
    this.#host = new HostTokens(new HostCache(this.paths))
    this.store = this.#choice.store
    this.flight = this.#choice.flight
  }

  /** The store in use, decided on first use (broker/store-choice.ts). */
  backend(): Promise<Chosen> {
    return this.#choice.chosen()
  }

  now(): number {
    return (this.#opts.now ?? Date.now)()
  }

  /** The settings snapshot (broker/settings-source.ts), following config.toml. */
  async settings(): Promise<Settings> {
    return await this.#settings.get()
  }

  /** Load now the modules a refresh loads on first use (broker/preload.ts). */
  async preload(): Promise<void> {
    await preloadRefreshModules(this.env)
  }

  /** Start the user's hook for `event` (core/hooks.ts); never throws, never waits for the hook. */
  async fireHook(event: HookEvent, vars: Record<string, string | number | undefined>): Promise<void> {
    try {
      const hooks = this.#opts.hooks ?? (await this.config.loadOrNothing())?.hooks
      runHook(hooks, event, vars, this.env)
    } catch {
      // a hook is a courtesy: its failure is never the caller's
    }
  }

  /** The provider's grant horizons (broker/horizon.ts), from the provider lookupProvider names (config first). */
  async grantPolicy(s: AccountSettings): Promise<GrantPolicy> {
    return await grantPolicyOf(this.config, s)
  }

  /** Is the record's access token good for at least `minSec` more (capped at half its life)? */
  isFresh(rec: AccountRecord | undefined, minSec: number): boolean {
    return isFresh(rec?.grant, this.now(), minSec)
  }

  /** The account's record without secrets; on a shared store that is down, what this host last saw of it. */
  async record(account: string): Promise<AccountRecord | undefined> {
    const id = accountId(account)
    try {
      return await this.store.read(id, { secrets: false })
    } catch (e) {
      if (!storeDown(e)) throw e
      return await this.#host.record(id, e)
    }
  }

  /** Forget this host's cached token of an account (it was removed). */
  forgetCached(account: string): Promise<void> {
    return this.#host.forget(accountId(account))
  }

  /** A token with enough life left; on a shared store that is down, this host's cached one while valid. */
  async getAccessToken(account: string, opts: GetTokenOptions = {}): Promise<AccessToken> {
    const id = accountId(account)
    if (opts.resource) return await this.#getAccessToken(id, account, opts) // this host caches the mail token only
    try {
      const t = await this.#getAccessToken(id, account, opts)
      if ((await this.backend()).shared)
        await this.#host.remember(id, t, async () => (await this.store.read(id))?.settings)
      return t
    } catch (e) {
      return await this.#host.instead(id, e, opts.forceRefresh === true, this.now(), this.#opts.onWarning)
    }
  }

  async #getAccessToken(id: string, account: string, opts: GetTokenOptions): Promise<AccessToken> {
    let rec = await this.store.read(id)
    rec = await syncEnvAccount(this.#seedContext(), id, rec)
    if (!rec) throw unknownAccount(account)
    const settings = await this.settings()
    const minSec = opts.minValiditySec ?? settings.refreshMarginSec
    // A grant the server refused is dead even if its last access token has time left: say so
    // now rather than hand out a token the mail server will refuse.
    if (rec.state === 'reauth' && !opts.forceRefresh) throw errorFromLast(rec)
    const resource = opts.resource
    if (resource) refreshScope(rec.settings, resource) // a grant without that resource: say so before anything
    if (!opts.forceRefresh && isFresh(tokenOf(rec.grant, resource), this.now(), minSec))
      return toAccessToken(rec, false, resource)
    // B1 in-process: one refresh per account and resource (a forced one piggybacks); resources take turns in the flight
    const key = resource ? `${id}\0${resource}` : id
    let p = this.#inflight.get(key)
    if (!p) {
      p = this.#refresh(id, settings, { ...opts, minSec }).finally(() => this.#inflight.delete(key))
      this.#inflight.set(key, p)
    }
    let after: AccountRecord
    try {
      after = await p
    } catch (e) {
      // a store that is down cannot give its cached token either: this host's own cache may (above)
      if (!(e instanceof MailkeyError && e.transient && !opts.forceRefresh) || storeDown(e)) throw e
      return await cachedInstead(this.store, id, e, this.now(), this.#opts.onWarning, resource)
    }
    return toAccessToken(after, true, resource)
  }

  /** B1, cross-process part: a record with a fresh token, or throws; the leader alone runs the failure hook. */
  async #refresh(id: string, settings: Settings, o: GetTokenOptions & { minSec: number }): Promise<AccountRecord> {
    const since = this.now()
    let mine = false
    try {
      const rec = await this.flight.refresh(id, {
        force: o.forceRefresh === true,
        minSec: o.minSec,
        ...(o.resource ? { resource: o.resource } : {}),
        since,
        deadline: since + settings.lockTimeoutMs,
        onMine: () => (mine = true),
        ...(o.signal ? { signal: o.signal } : {}),
      })
      if (mine) this.#opts.onRefresh?.(id, 'ok')
      return rec
    } catch (e) {
      if (mine && !(e instanceof InterruptedError)) this.#opts.onRefresh?.(id, outcomeOf(e))
      if (mine) await hookForFailure(id, e, (ev, vars) => this.fireHook(ev, vars))
      throw e
    }
  }

  async #refreshContext(): Promise<RefreshContext> {
    return {
      store: this.store,
      settings: await this.settings(),
      now: () => this.now(),
      sleep: this.#opts.sleep ?? realSleep,
      random: Math.random,
      ...(this.#opts.fetch ? { fetch: this.#opts.fetch } : {}),
    }
  }

  #seedContext(): Parameters<typeof syncEnvAccount>[0] {
    return {
      env: this.env,
      store: this.store,
      flight: this.flight,
      now: () => this.now(),
      settings: () => this.settings(),
      configProviders: async () => (await this.config.load())?.providers ?? new Map(),
    }
  }
}
