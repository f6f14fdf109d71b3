/**
 * The one place that refreshes. `getAccessToken(account)` returns a token with enough life left,
 * refreshing it when needed, with these guarantees:
 *
 * - B1 single flight: concurrent callers in one process share one refresh; across processes the
 *   account lock (store/lock.ts) admits one refresher, and everyone re-reads the record after the
 *   lock is free (so 50 processes on an expired token cost one token request).
 * - B2 persist, then return: a rotated refresh token is on disk (atomic write, fsync) before the
 *   new access token is handed to anyone.
 * - B3 a killed caller loses nothing: by default the refresh itself runs in a small detached
 *   worker process (refresh-worker.ts) that holds the lock, so `kill -9` of the caller in the
 *   middle of a refresh cannot drop a rotated refresh token on the floor.
 * - B4 failures are classified once (oauth/classify.ts): transient ones keep the grant and are
 *   retried with backoff (honouring Retry-After); re-auth ones mark the record so nobody hammers
 *   the server with a dead grant, and say which command fixes it.
 *
 * The fast path (fresh token on disk) loads no OAuth code: grants.ts is imported lazily.
 *
 * Owns: when and how to refresh. Must not: print, exit, or parse CLI arguments.
 */
import { spawn } from 'node:child_process'
import { decodeKeyMap, encodeKeyMap } from '../store/protection.js'
import { openStore } from '../store/open.js'
import { waitText } from '../core/wait.js'
import { quoted, shArg } from '../core/address.js'
import { existsSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import {
  ConfigError,
  ERR,
  InterruptedError,
  MailkeyError,
  ProtocolError,
  ReauthRequiredError,
  StoreError,
  TransientError,
  type ErrorCode,
} from '../errors.js'
import { Secret, fingerprint } from '../core/secret.js'
import { resolvePaths, type Env, type Paths } from '../config/paths.js'
import type { FileStore } from '../store/file-store.js'
import {
  acquire,
  adoptLock,
  isStale,
  readLock,
  sleep,
  tryAcquire,
  DEFAULT_LOCK_MAX_AGE_MS,
  type LockHandle,
} from '../store/lock.js'
import { accountId, type AccountRecord, type AccountSettings, type LastError } from '../domain/account.js'
import type { SaslMechanism } from '../providers/types.js'
import { DEFAULT_REFRESH_MARGIN_SEC, isFresh, marginFromEnv } from './freshness.js'
import type { GrantPolicy } from './horizon.js'
import { runHook, type HookEvent, type HooksConfig } from '../core/hooks.js'
import type { Config } from '../config/config.js'

export { DEFAULT_REFRESH_MARGIN_SEC }

/** when the server sends no expires_in (RFC 6749 §5.1 makes it RECOMMENDED only) */
export const ASSUMED_LIFETIME_SEC = 3600

export interface BrokerOptions {
  /** environment to read XDG paths and MAILKEY_* from (default: process.env) */
  env?: Env
  paths?: Paths
  /** refresh when less than this is left (default 300 s, or refresh_margin_sec in config.toml) */
  refreshMarginSec?: number
  /** run refreshes in a detached worker process (default: when the worker is available) */
  isolateRefresh?: boolean
  fetch?: typeof fetch
  now?: () => number
  /** how long to wait for another process's refresh (default 110 s) */
  lockTimeoutMs?: number
  httpTimeoutMs?: number
  /** attempts for transient failures (default 3) */
  maxAttempts?: number
  /** longest Retry-After mailkey waits out itself (default 10 s); longer ones fail at once */
  maxRetryAfterSec?: number
  /** non-fatal notes (e.g. a cached token was returned because the server is down) */
  /** [hooks] to run instead of those of config.toml (core/hooks.ts); {} turns them off */
  hooks?: HooksConfig
  onWarning?: (message: string) => void
  /** an encrypted store: ask for its passphrase on a terminal (the CLI passes this) */
  askPassphrase?: (prompt: string) => Promise<string | undefined>
  /** an encrypted store: data keys already unlocked (handed to the refresh worker) */
  storeKeys?: ReadonlyMap<string, Buffer>
}

export interface GetTokenOptions {
  /** refresh even if the cached token looks valid (the server rejected it) */
  forceRefresh?: boolean
  /** require at least this much life left (default: the refresh margin) */
  minValiditySec?: number
  signal?: AbortSignal
}

export interface AccessToken {
  account: string
  token: Secret
  /** epoch ms */
  expiresAt?: number
  scope?: string
  sasl: SaslMechanism
  /** the mailbox to name in SASL (XOAUTH2 user=, OAUTHBEARER a=) */
  user: string
  /** this call refreshed the token (or waited for another process that did) */
  refreshed: boolean
}

const WORKER = fileURLToPath(new URL('./refresh-worker.js', import.meta.url))

export class Broker {
  readonly env: Env
  readonly paths: Paths
  readonly store: FileStore
  readonly #opts: BrokerOptions
  readonly #inflight = new Map<string, Promise<AccountRecord>>()
  #marginSec: number | undefined

  constructor(opts: BrokerOptions = {}) {
    this.#opts = opts
    this.env = opts.env ?? process.env
    this.paths = opts.paths ?? resolvePaths(this.env)
    this.store = openStore({
      env: this.env,
      paths: this.paths,
      passphraseCommand: async () => (await this.loadConfig().catch(() => undefined))?.store?.passphraseCommand,
      ...(opts.askPassphrase ? { askPassphrase: opts.askPassphrase } : {}),
      ...(opts.storeKeys ? { keys: opts.storeKeys } : {}),
    })
    this.#marginSec = opts.refreshMarginSec
  }

  now(): number {
    return (this.#opts.now ?? Date.now)()
  }

  #config: { stamp: string; value: Promise<Config> } | undefined

  /**
   * config.toml (undefined when there is none), parsed again only when the file changes (size,
   * mtime, inode): the refresh margin, grant policies and hooks all come from it. A broken file
   * rejects; it is not remembered as broken.
   */
  async loadConfig(): Promise<Config | undefined> {
    let st
    try {
      st = statSync(this.paths.configFile)
    } catch {
      return undefined
    }
    const stamp = `${st.size}:${st.mtimeMs}:${st.ino}`
    if (this.#config?.stamp !== stamp) {
      const { loadConfig } = await import('../config/config.js')
      const value = loadConfig(this.paths.configFile)
      this.#config = { stamp, value }
      value.catch(() => {
        if (this.#config?.value === value) this.#config = undefined
      })
    }
    return this.#config.value
  }

  /**
   * Load now the modules a refresh loads on first use. A long-running process (the proxy) calls
   * this at start: a module that first has to be read when the process is out of file descriptors
   * fails with EMFILE, and Node remembers a failed import for the life of the process (measured on
   * Node 20: import() of the same file fails again after descriptors are free), so every refresh
   * would fail until a restart (issue 11, item 5).
   */
  async preload(): Promise<void> {
    await Promise.all([
      import('../oauth/grants.js'),
      import('../providers/registry.js'),
      import('../config/config.js'),
      ...(this.env.MAILKEY_EMAIL
        ? [import('../config/env-account.js'), import('../providers/resolve.js'), import('../oauth/discovery.js')]
        : []),
    ])
  }

  /** Start the user's hook for `event` (core/hooks.ts); never throws, never waits for the hook. */
  async fireHook(event: HookEvent, vars: Record<string, string | number | undefined>): Promise<void> {
    try {
      const hooks = this.#opts.hooks ?? (await this.loadConfig().catch(() => undefined))?.hooks
      runHook(hooks, event, vars, this.env)
    } catch {
      // a hook is a courtesy: its failure is never the caller's
    }
  }

  /** The provider's grant horizons (broker/horizon.ts): its preset's, or [providers.NAME] of config.toml. */
  async grantPolicy(s: AccountSettings): Promise<GrantPolicy> {
    const { BUILTIN_PROVIDERS } = await import('../providers/registry.js')
    // a broken config file is reported by the commands that need it; no horizon here
    const p =
      BUILTIN_PROVIDERS.get(s.provider) ?? (await this.loadConfig().catch(() => undefined))?.providers.get(s.provider)
    return {
      ...(p?.refreshTokenIdleDays ? { idleDays: p.refreshTokenIdleDays } : {}),
      ...(p?.grantMaxAgeDays ? { maxAgeDays: p.grantMaxAgeDays } : {}),
    }
  }

  /** how long to wait for the token endpoint: option > http_timeout_sec in config.toml > the default (30 s) */
  async httpTimeoutMs(): Promise<number | undefined> {
    if (this.#opts.httpTimeoutMs !== undefined) return this.#opts.httpTimeoutMs
    const s = (await this.loadConfig().catch(() => undefined))?.httpTimeoutSec
    return s === undefined ? undefined : s * 1000
  }

  /** refresh margin: option > MAILKEY_REFRESH_MARGIN_SEC > config.toml > 300 s */
  async marginSec(): Promise<number> {
    if (this.#marginSec !== undefined) return this.#marginSec
    const fromEnv = marginFromEnv(this.env.MAILKEY_REFRESH_MARGIN_SEC)
    if (fromEnv !== undefined) return (this.#marginSec = fromEnv)
    const cfg = await this.loadConfig()
    if (cfg?.refreshMarginSec !== undefined) return (this.#marginSec = cfg.refreshMarginSec)
    return (this.#marginSec = DEFAULT_REFRESH_MARGIN_SEC)
  }

  /** Is the record's access token good for at least `minSec` more (capped at half its life)? */
  isFresh(rec: AccountRecord | undefined, minSec: number): boolean {
    return isFresh(rec?.grant, this.now(), minSec)
  }

  async getAccessToken(account: string, opts: GetTokenOptions = {}): Promise<AccessToken> {
    const id = accountId(account)
    let rec = await this.store.read(id)
    rec = await this.#syncEnvAccount(id, rec)
    if (!rec) throw unknownAccount(account)
    const minSec = opts.minValiditySec ?? (await this.marginSec())
    // A grant the server refused is dead even if its last access token has time left: say so
    // now rather than hand out a token the mail server will refuse.
    if (rec.state === 'reauth' && !opts.forceRefresh) throw errorFromLast(rec)
    if (!opts.forceRefresh && this.isFresh(rec, minSec)) return this.#toAccessToken(rec, false)

    // B1, in-process part: one refresh per account at a time (a forced one piggybacks too).
    let p = this.#inflight.get(id)
    if (!p) {
      p = this.#refreshAcrossProcesses(id, {
        force: opts.forceRefresh === true,
        minSec,
        ...(opts.signal ? { signal: opts.signal } : {}),
      }).finally(() => this.#inflight.delete(id))
      this.#inflight.set(id, p)
    }
    let after: AccountRecord
    try {
      after = await p
    } catch (e) {
      // A transient failure with a still-valid token in hand: hand it out and say so.
      if (e instanceof MailkeyError && e.transient && !opts.forceRefresh) {
        const cur = await this.store.read(id).catch(() => undefined)
        if (cur?.grant?.accessToken && cur.grant.expiresAt !== undefined && cur.grant.expiresAt - this.now() > 30_000) {
          this.#opts.onWarning?.(
            `${e.message}; using the cached token for "${id}" (valid ${Math.round((cur.grant.expiresAt - this.now()) / 1000)} s more)`,
          )
          return this.#toAccessToken(cur, false)
        }
      }
      throw e
    }
    return this.#toAccessToken(after, true)
  }

  #toAccessToken(rec: AccountRecord, refreshed: boolean): AccessToken {
    const g = rec.grant
    if (!g?.accessToken)
      throw new ProtocolError(ERR.OAUTH_PROTOCOL, `no access token stored for "${rec.settings.email}"`, {
        account: rec.settings.email,
      })
    const t: AccessToken = {
      account: rec.settings.email,
      token: new Secret(g.accessToken),
      sasl: rec.settings.sasl,
      user: rec.settings.mailbox ?? rec.settings.email,
      refreshed,
    }
    if (g.expiresAt !== undefined) t.expiresAt = g.expiresAt
    if (g.scope !== undefined) t.scope = g.scope
    return t
  }

  /**
   * B1, cross-process part. Resolves with a record holding a fresh token, or throws. When this
   * process did the refresh and it failed, the user's hook for it runs (only here, so fifty callers
   * waiting on one refresh make one notification).
   */
  async #refreshAcrossProcesses(
    id: string,
    o: { force: boolean; minSec: number; signal?: AbortSignal },
  ): Promise<AccountRecord> {
    const ran = { mine: false }
    try {
      return await this.#refreshAcrossProcessesInner(id, o, ran)
    } catch (e) {
      if (ran.mine && e instanceof MailkeyError && !(e instanceof InterruptedError)) {
        const vars = { account: id, message: e.message, error_code: e.code, transient: e.transient ? 1 : 0 }
        if (e.reauthRequired) await this.fireHook('reauth', { ...vars, command: `mailkey add ${shArg(id)}` })
        else await this.fireHook('refresh_error', vars)
      }
      throw e
    }
  }

  async #refreshAcrossProcessesInner(
    id: string,
    o: { force: boolean; minSec: number; signal?: AbortSignal },
    ran: { mine: boolean },
  ): Promise<AccountRecord> {
    const since = this.now()
    const deadline = since + (this.#opts.lockTimeoutMs ?? 110_000)
    const lockPath = this.store.lockPath(id)
    await this.store.ensureDir()
    const satisfied = (r: AccountRecord | undefined): boolean =>
      r !== undefined &&
      (o.force ? (r.grant?.refreshedAt ?? 0) >= since && this.isFresh(r, 0) : this.isFresh(r, o.minSec))
    for (;;) {
      if (o.signal?.aborted) throw new InterruptedError('interrupted while refreshing', { account: id })
      const lock = await tryAcquire(lockPath, DEFAULT_LOCK_MAX_AGE_MS)
      if (lock) {
        let handedOver = false
        try {
          const rec = await this.store.read(id)
          if (!rec) throw unknownAccount(id)
          if (satisfied(rec)) return rec
          ran.mine = true
          if (this.#useWorker()) {
            const outcome = await this.#runWorker(id, lock, o.force, since)
            handedOver = outcome !== 'not-started'
            if (outcome === 'not-started')
              return await this.refreshUnderLock(id, { force: o.force, since, minSec: o.minSec })
          } else {
            return await this.refreshUnderLock(id, { force: o.force, since, minSec: o.minSec })
          }
        } finally {
          if (!handedOver) await lock.release()
        }
      }
      // Someone else refreshes: wait for the lock to go, then look at what they left.
      const r = await this.#waitForOutcome(id, lockPath, since, deadline, o.signal)
      if (r === 'retry') {
        if (this.now() >= deadline) {
          throw new StoreError(ERR.STORE_LOCK_TIMEOUT, `timed out waiting for another mailkey to refresh "${id}"`, {
            account: id,
          })
        }
        continue
      }
      // A refresh that finished after we asked is the answer, even if the server issued a token
      // that is short of our margin: asking again would only hammer it.
      if (satisfied(r) || (r.grant?.refreshedAt ?? 0) >= since) return r
      if (r.lastError && r.lastError.at >= since) throw errorFromLast(r)
      // The lock holder decided nothing was needed but we still want a refresh (force): go again.
    }
  }

  async #waitForOutcome(
    id: string,
    lockPath: string,
    since: number,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<AccountRecord | 'retry'> {
    for (;;) {
      await sleep(20 + Math.floor(Math.random() * 20), signal)
      if (signal?.aborted) throw new InterruptedError('interrupted while waiting for a refresh', { account: id })
      const info = await readLock(lockPath).catch(() => undefined)
      if (info && !isStale(info) && this.now() < deadline) continue
      const rec = await this.store.read(id)
      if (!rec) throw unknownAccount(id)
      if (info && !isStale(info)) {
        throw new StoreError(
          ERR.STORE_LOCK_TIMEOUT,
          `timed out after ${Math.round((deadline - since) / 1000)} s waiting for process ${info.pid} to refresh "${id}"`,
          {
            account: id,
            hint: 'Try again; if it keeps happening, look for a stuck mailkey process.',
          },
        )
      }
      if ((rec.grant?.refreshedAt ?? 0) >= since || (rec.lastError && rec.lastError.at >= since)) return rec
      return 'retry'
    }
  }

  #useWorker(): boolean {
    if (this.#opts.isolateRefresh === false) return false
    if (this.#opts.fetch) return false // a custom fetch lives in this process only
    return existsSync(WORKER)
  }

  /**
   * B3: start the detached worker and hand it the lock. Resolves once the worker has finished
   * (or died); the outcome is in the record.
   */
  async #runWorker(id: string, lock: LockHandle, force: boolean, since: number): Promise<'done' | 'not-started'> {
    const args = JSON.stringify({
      id,
      nonce: lock.nonce,
      force,
      since,
      marginSec: await this.marginSec(),
      httpTimeoutMs: await this.httpTimeoutMs(),
      maxAttempts: this.#opts.maxAttempts,
      maxRetryAfterSec: this.#opts.maxRetryAfterSec,
    })
    const env = { ...this.env, MAILKEY_STATE_DIR: this.paths.stateDir, MAILKEY_CONFIG: this.paths.configFile }
    const keys = this.store.keys?.unlocked()
    const handKeys = keys !== undefined && keys.size > 0
    await lock.beginHandoff() // L4: if this process dies before the worker's pid is in the lock, it is not stale
    return await new Promise<'done' | 'not-started'>((resolve) => {
      let child
      try {
        child = spawn(
          process.execPath,
          [WORKER, handKeys ? JSON.stringify({ ...(JSON.parse(args) as object), keys: true }) : args],
          {
            detached: true,
            stdio: [handKeys ? 'pipe' : 'ignore', 'ignore', 'ignore'],
            env: env as NodeJS.ProcessEnv,
          },
        )
      } catch {
        resolve('not-started')
        return
      }
      if (handKeys && child.stdin) {
        child.stdin.on('error', () => {
          /* the worker died; the exit handler below decides */
        })
        child.stdin.end(encodeKeyMap(keys))
      }
      child.once('error', () => resolve('not-started'))
      // L3 at once: the lock names the worker from now on, so that if this process is killed before
      // the worker adopts it, nobody takes it for stale (its pid is alive) and refreshes beside it.
      if (child.pid !== undefined) void lock.handOver(child.pid).catch(() => undefined)
      child.once('exit', () => {
        // A worker that ends normally has released the lock. If it still carries our nonce, the
        // worker died without finishing: take the lock back and refresh here (the record is
        // re-read first, so a refresh it did persist is not repeated).
        void readLock(lock.path).then(
          async (info) => {
            if (info?.nonce !== lock.nonce) return resolve('done')
            await lock.handOver(process.pid).catch(() => undefined)
            resolve('not-started')
          },
          () => resolve('done'),
        )
      })
      // Not unref'd: this process waits for the worker. If this process dies, the worker (its own
      // process group, detached) carries on and finishes the refresh.
    })
  }

  /**
   * The refresh itself. The caller holds the account lock. Re-reads the record (someone may have
   * refreshed while we waited), refreshes if still needed, persists, returns the new record.
   */
  async refreshUnderLock(
    id: string,
    o: { force: boolean; since: number; minSec: number; signal?: AbortSignal },
  ): Promise<AccountRecord> {
    const rec = await this.store.read(id)
    if (!rec) throw unknownAccount(id)
    if (o.force ? (rec.grant?.refreshedAt ?? 0) >= o.since && this.isFresh(rec, 0) : this.isFresh(rec, o.minSec))
      return rec
    const settings = rec.settings
    const rt = rec.grant?.refreshToken
    if (!rt) {
      const err = new ReauthRequiredError(
        ERR.NO_REFRESH_TOKEN,
        `there is no refresh token for "${settings.email}"; the server did not issue one at sign-in`,
        {
          account: settings.email,
          hint:
            settings.provider === 'microsoft' ? 'The "offline_access" scope is needed for a refresh token.' : undefined,
        },
      )
      await this.#recordFailure(rec, err)
      throw err
    }
    const { refreshGrant } = await import('../oauth/grants.js')
    const httpTimeoutMs = await this.httpTimeoutMs()
    const maxAttempts = this.#opts.maxAttempts ?? 3
    const maxRetryAfter = this.#opts.maxRetryAfterSec ?? 10
    // a connection that failed with no HTTP answer may have failed after the server rotated the
    // refresh token: remembered, to explain an invalid_grant that follows
    let answerMaybeLost = rec.lastError?.answerMaybeLost === true && this.now() - rec.lastError.at < 15 * 60_000
    for (let attempt = 1; ; attempt++) {
      try {
        const ts = await refreshGrant(settings, new Secret(rt), {
          account: settings.email,
          // the request carries the refresh token; the access token is the other one a server could echo
          ...(rec.grant?.accessToken ? { secrets: [new Secret(rec.grant.accessToken)] } : {}),
          ...(o.signal ? { signal: o.signal } : {}),
          ...(httpTimeoutMs ? { timeoutMs: httpTimeoutMs } : {}),
          ...(this.#opts.fetch ? { fetch: this.#opts.fetch } : {}),
        })
        const now = this.now()
        const g = rec.grant ?? { grantedAt: now }
        const next: AccountRecord = {
          ...rec,
          state: 'active',
          grant: {
            ...g,
            accessToken: ts.accessToken.reveal(),
            tokenType: ts.tokenType,
            expiresAt: now + (ts.expiresIn ?? ASSUMED_LIFETIME_SEC) * 1000,
            refreshedAt: now,
            // RFC 6749 §6: the server MAY issue a new refresh token; if it does, the old one may be
            // dead already (rotation, RFC 9700 §4.14.2), so the new one must be stored.
            refreshToken: ts.refreshToken ? ts.refreshToken.reveal() : rt,
            ...(ts.refreshToken ? { refreshTokenAt: now } : {}),
            ...(ts.scope !== undefined ? { scope: ts.scope } : {}),
            ...(ts.identity ? { identity: ts.identity } : {}),
          },
        }
        delete next.lastError
        await this.store.write(next) // B2
        return next
      } catch (e) {
        let err =
          e instanceof MailkeyError
            ? e
            : new ProtocolError(ERR.OAUTH_PROTOCOL, String((e as Error)?.message ?? e), {
                account: settings.email,
                cause: e,
              })
        if (err.reauthRequired && err.oauthError === 'invalid_grant' && answerMaybeLost)
          err = lostAnswer(err, settings.email)
        if (noAnswer(err)) answerMaybeLost = true
        if (err.transient && attempt < maxAttempts && !o.signal?.aborted) {
          const ra = err.retryAfterSec
          if (ra === undefined || ra <= maxRetryAfter) {
            const backoff = ra !== undefined ? ra * 1000 : 500 * 3 ** (attempt - 1) + Math.floor(Math.random() * 250)
            await sleep(backoff, o.signal)
            continue
          }
        }
        // RFC 9110 §10.2.3: a Retry-After longer than mailkey waits by itself: say how long
        if (err.transient && err.retryAfterSec !== undefined && err.retryAfterSec > maxRetryAfter) {
          err = new TransientError(
            err.code,
            `${err.message}; the server asks to wait ${waitText(err.retryAfterSec)} (Retry-After: ${err.retryAfterSec})`,
            {
              account: settings.email,
              retryAfterSec: err.retryAfterSec,
              ...(err.oauthError ? { oauthError: err.oauthError } : {}),
              providerCodes: err.providerCodes,
              ...(err.status !== undefined ? { status: err.status } : {}),
              cause: err,
            },
          )
        }
        await this.#recordFailure(rec, err)
        throw err
      }
    }
  }

  async #recordFailure(rec: AccountRecord, err: MailkeyError): Promise<void> {
    const last: LastError = { code: err.code, message: err.message, transient: err.transient, at: this.now() }
    if (noAnswer(err)) last.answerMaybeLost = true
    if (err.retryAfterSec !== undefined) last.retryAfterSec = err.retryAfterSec
    if (err.oauthError) last.oauthError = err.oauthError
    if (err.providerCodes.length) last.providerCodes = err.providerCodes
    const next: AccountRecord = { ...rec, lastError: last }
    // Keep the grant in every case: a re-auth error is recorded, never "fixed" by deleting.
    if (err.reauthRequired) next.state = 'reauth'
    try {
      await this.store.write(next)
    } catch {
      /* the original error matters more */
    }
  }

  /**
   * Accounts defined by MAILKEY_* variables are written to the store on first use (under the
   * lock), and re-seeded when the environment brings a different refresh token.
   */
  async #syncEnvAccount(id: string, rec: AccountRecord | undefined): Promise<AccountRecord | undefined> {
    const envEmail = this.env.MAILKEY_EMAIL
    if (!envEmail || accountId(envEmail) !== id) return rec
    const { readEnvAccount } = await import('../config/env-account.js')
    const envAcc = await readEnvAccount(this.env)
    if (!envAcc) return rec
    const fp = fingerprint(envAcc.refreshToken)
    const settings = await this.#envSettings(envAcc.options)
    const same = (r: AccountRecord | undefined): boolean =>
      r !== undefined && r.grant?.seededFrom === fp && JSON.stringify(r.settings) === JSON.stringify(settings)
    if (same(rec)) return rec
    await this.store.ensureDir()
    const lock = await acquire(this.store.lockPath(id), { timeoutMs: this.#opts.lockTimeoutMs ?? 110_000 })
    try {
      const cur = await this.store.read(id)
      if (same(cur)) return cur
      const now = this.now()
      const keepGrant = cur?.grant?.seededFrom === fp // only the settings changed
      const next: AccountRecord = {
        v: 1,
        settings,
        grant:
          keepGrant && cur?.grant
            ? cur.grant
            : { refreshToken: envAcc.refreshToken, grantedAt: now, refreshTokenAt: now, seededFrom: fp },
        state: keepGrant && cur ? cur.state : 'active',
        updatedAt: now,
      }
      await this.store.write(next)
      return next
    } finally {
      await lock.release()
    }
  }

  async #envSettings(options: import('../providers/resolve.js').AccountOptions): Promise<AccountSettings> {
    const { candidateSettings, chooseProvider } = await import('../providers/resolve.js')
    const configProviders = (await this.loadConfig())?.providers ?? new Map()
    const provider = chooseProvider(options, configProviders)
    let discovered
    if (options.issuer && !options.tokenUrl && !provider?.endpoints.token) {
      const { discoverEndpoints } = await import('../oauth/discovery.js')
      discovered = await discoverEndpoints(options.issuer, { account: options.email })
    }
    const all = candidateSettings(options, provider, 'env', discovered)
    return all[0] as AccountSettings
  }
}

export function unknownAccount(account: string): ConfigError {
  return new ConfigError(ERR.ACCOUNT_UNKNOWN, `no account ${quoted(account)} is set up`, {
    account,
    hint: `Run "mailkey add ${shArg(account)}" to sign in, or "mailkey list" to see the accounts there are.`,
  })
}

const REAUTH_CODES = new Set<string>([
  ERR.REAUTH_REQUIRED,
  ERR.NO_REFRESH_TOKEN,
  ERR.CLIENT_REJECTED,
  ERR.CONSENT_REQUIRED,
  ERR.FLOW_BLOCKED,
  ERR.SIGNIN_DECLINED,
  ERR.SIGNIN_EXPIRED,
  ERR.SIGNIN_TIMEOUT,
])

/** Rebuild the error another process recorded, so every waiter reports the same thing. */
export function errorFromLast(rec: AccountRecord): MailkeyError {
  const l = rec.lastError
  const account = rec.settings.email
  const opts = {
    account,
    ...(l?.oauthError ? { oauthError: l.oauthError } : {}),
    ...(l?.providerCodes ? { providerCodes: l.providerCodes } : {}),
    ...(l?.retryAfterSec !== undefined ? { retryAfterSec: l.retryAfterSec } : {}),
  }
  if (!l) {
    return new ReauthRequiredError(ERR.REAUTH_REQUIRED, `the grant for "${account}" needs a new sign-in`, opts)
  }
  const code = l.code as ErrorCode
  if (rec.state === 'reauth' || REAUTH_CODES.has(code))
    return new ReauthRequiredError(REAUTH_CODES.has(code) ? code : ERR.REAUTH_REQUIRED, l.message, opts)
  if (l.transient) return new TransientError(code, l.message, opts)
  if (code.startsWith('ERR_MAILKEY_STORE')) return new StoreError(code, l.message, opts)
  if (code === ERR.OAUTH_CONFIG || code === ERR.CONFIG_INVALID || code === ERR.INSECURE_ENDPOINT)
    return new ConfigError(code, l.message, opts)
  return new ProtocolError(code, l.message, opts)
}

/** A connection that failed with no HTTP answer: the server may have acted on the request (rotated the refresh token). */
function noAnswer(err: MailkeyError): boolean {
  return err.transient && err.status === undefined
}

/**
 * invalid_grant right after a refresh whose connection failed with no answer: the server may have
 * rotated the refresh token and its answer, with the new one, never arrived. A server that rotates
 * without a grace period (RFC 9700 §4.14.2 allows it) then refuses the old one, and only a new
 * sign-in helps; say so instead of a bare "refused".
 */
function lostAnswer(err: MailkeyError, email: string): ReauthRequiredError {
  return new ReauthRequiredError(
    err.code,
    `${err.message}. An earlier refresh for "${email}" lost its connection before the answer arrived; this server had most likely already replaced the refresh token (rotation without a grace period), so the new one never reached mailkey`,
    {
      account: email,
      ...(err.oauthError ? { oauthError: err.oauthError } : {}),
      providerCodes: err.providerCodes,
      ...(err.status !== undefined ? { status: err.status } : {}),
      hint: `Run "mailkey add ${shArg(email)}" to sign in again. A server that rotates refresh tokens should allow a short reuse window for lost answers (Auth0 "reuse interval", Okta "grace period").`,
      cause: err,
    },
  )
}

/** The keys a parent hands over; undefined when it died before writing them (the worker then looks for them itself). */
async function readKeysFromStdin(): Promise<Map<string, Buffer> | undefined> {
  const chunks: Buffer[] = []
  try {
    for await (const c of process.stdin) {
      chunks.push(c as Buffer)
      if (chunks.reduce((n, b) => n + b.length, 0) > 64 * 1024) break
    }
    return decodeKeyMap(Buffer.concat(chunks).toString('utf8'))
  } catch {
    return undefined
  }
}

export async function runWorker(argv: string[]): Promise<number> {
  const a = JSON.parse(argv[0] ?? '{}') as {
    id: string
    nonce: string
    force: boolean
    since: number
    marginSec: number
    httpTimeoutMs?: number
    maxAttempts?: number
    maxRetryAfterSec?: number
    keys?: boolean
  }
  // An encrypted store: the parent's unlocked keys arrive on stdin (never argv or the environment)
  const storeKeys = a.keys ? await readKeysFromStdin() : undefined
  const broker = new Broker({
    isolateRefresh: false,
    ...(storeKeys ? { storeKeys } : {}),
    refreshMarginSec: a.marginSec,
    ...(a.httpTimeoutMs ? { httpTimeoutMs: a.httpTimeoutMs } : {}),
    ...(a.maxAttempts ? { maxAttempts: a.maxAttempts } : {}),
    ...(a.maxRetryAfterSec ? { maxRetryAfterSec: a.maxRetryAfterSec } : {}),
  })
  const lock = await adoptLock(broker.store.lockPath(a.id), a.nonce)
  if (!lock) return 0 // the parent's lock was taken over (it looked stale): not ours to refresh
  try {
    await broker.refreshUnderLock(a.id, { force: a.force, since: a.since, minSec: a.marginSec })
    return 0
  } catch {
    return 1 // the outcome is in the record
  } finally {
    await lock.release()
  }
}
