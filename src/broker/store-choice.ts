/**
 * Which store and which single flight a broker uses, decided once per process on first use:
 * MAILKEY_STORE_URL or `[store] url` names a shared store (PostgreSQL or Redis, with the fenced
 * flight across hosts), else the local file store with its lock files. The broker and everything
 * above talk to RoutedStore and RoutedFlight, which forward to the choice.
 *
 * A config.toml that cannot be read is only an error here when it names a shared store: a host
 * must never quietly fall back to local files it does not use.
 *
 * Owns: the choice and the forwarding. Must not: refresh or seal.
 */
import { readFileSync } from 'node:fs'
import type { Env } from '../config/paths.js'
import type { ConfigFile } from '../config/config-file.js'
import type { Config } from '../config/config.js'
import type { AccountRecord } from '../domain/account.js'
import type { StoreError } from '../errors.js'
import type { FileStore } from '../store/file-store.js'
import type { TokenReadOptions, TokenStore } from '../store/token-store.js'
import type { SharedStore } from '../store/shared/shared-store.js'
import type { FlightRequest, SingleFlight } from './single-flight.js'
import { LockFlight, type LockFlightOptions } from './lock-flight.js'
import { FencedFlight, type FencedFlightOptions } from './fenced-flight.js'
import type { RefreshRequest } from './refresh.js'

export interface Chosen {
  store: TokenStore
  flight: SingleFlight
  /** the shared store, when this host uses one */
  shared?: SharedStore
}

export interface ChoiceInputs {
  env: Env
  config: ConfigFile
  file: FileStore
  now: () => number
  /** the refresh, run while this process holds the account's lock or lease */
  refreshHere: (id: string, req: RefreshRequest) => Promise<AccountRecord>
  /** B3 on the file store: the detached worker (broker/worker.ts) */
  worker: LockFlightOptions['worker']
  /** B3 on a shared store (broker/shared-worker.ts), given where the worker finds the store */
  sharedWorker?: (store: SharedSetting) => FencedFlightOptions['worker']
}

export interface SharedSetting {
  url: string
  keyFile?: string
  leaseSec?: number
}

/** The decision, made on first use and kept; a failed one (a broken config, no key) is made again next time. */
export class StoreChoice {
  readonly store: TokenStore
  readonly flight: SingleFlight
  readonly #i: ChoiceInputs
  readonly #fileFlight: LockFlight
  #chosen: Promise<Chosen> | undefined

  constructor(i: ChoiceInputs) {
    this.#i = i
    this.#fileFlight = new LockFlight({
      store: i.file,
      lockPath: (id) => i.file.lockPath(id),
      now: i.now,
      refreshHere: i.refreshHere,
      ...(i.worker ? { worker: i.worker } : {}),
    })
    this.store = new RoutedStore(() => this.chosen())
    this.flight = new RoutedFlight(() => this.chosen())
  }

  chosen(): Promise<Chosen> {
    if (!this.#chosen) {
      const p = this.#choose()
      this.#chosen = p
      p.catch(() => {
        if (this.#chosen === p) this.#chosen = undefined
      })
    }
    return this.#chosen
  }

  async #choose(): Promise<Chosen> {
    const i = this.#i
    const s = await sharedSetting(i.env, i.config)
    if (!s) return { store: i.file, flight: this.#fileFlight }
    const { openSharedStore } = await import('../store/shared/open-shared.js')
    const shared = await openSharedStore({ env: i.env, ...s })
    await shared.requireKey()
    const worker = i.sharedWorker?.(s)
    const flight = new FencedFlight({
      store: shared,
      now: i.now,
      refreshHere: i.refreshHere,
      ...(worker ? { worker } : {}),
    })
    return { store: shared, flight, shared }
  }
}

/** The shared store URL and key file named by the environment or config.toml, if any. */
export async function sharedSetting(env: Env, config: ConfigFile): Promise<SharedSetting | undefined> {
  const { storeUrlSetting } = await import('../store/shared/store-url.js')
  let cfg: Config | undefined
  try {
    cfg = await config.load()
  } catch (e) {
    if (env.MAILKEY_STORE_URL || mentionsStoreUrl(config.path)) throw e
  }
  const url = storeUrlSetting(env, cfg?.store?.url)
  if (!url) return undefined
  const lease = Number(env.MAILKEY_STORE_LEASE_SEC)
  return {
    url,
    ...(cfg?.store?.keyFile ? { keyFile: cfg.store.keyFile } : {}),
    ...(Number.isFinite(lease) && lease >= 1 ? { leaseSec: lease } : {}),
  }
}

function mentionsStoreUrl(path: string): boolean {
  try {
    return /^\s*url\s*=/m.test(readFileSync(path, 'utf8'))
  } catch {
    return false
  }
}

/** A TokenStore that forwards to the chosen one. */
export class RoutedStore implements TokenStore {
  readonly #chosen: () => Promise<Chosen>
  constructor(chosen: () => Promise<Chosen>) {
    this.#chosen = chosen
  }
  async read(id: string, opts?: TokenReadOptions): Promise<AccountRecord | undefined> {
    return (await this.#chosen()).store.read(id, opts)
  }
  async write(record: AccountRecord): Promise<void> {
    return (await this.#chosen()).store.write(record)
  }
  async list(): Promise<{ records: AccountRecord[]; broken: { file: string; error: StoreError }[] }> {
    return (await this.#chosen()).store.list()
  }
  async remove(id: string): Promise<boolean> {
    return (await this.#chosen()).store.remove(id)
  }
  async ensureDir(): Promise<void> {
    return (await this.#chosen()).store.ensureDir()
  }
}

/** A SingleFlight that forwards to the chosen one. */
export class RoutedFlight implements SingleFlight {
  readonly #chosen: () => Promise<Chosen>
  constructor(chosen: () => Promise<Chosen>) {
    this.#chosen = chosen
  }
  async refresh(id: string, req: FlightRequest): Promise<AccountRecord> {
    return (await this.#chosen()).flight.refresh(id, req)
  }
  async exclusive<T>(id: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
    return (await this.#chosen()).flight.exclusive(id, timeoutMs, fn)
  }
}
