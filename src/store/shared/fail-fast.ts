/**
 * A store that has just been found unreachable is not asked again at once: for a short while
 * every operation fails with the same STORE_UNAVAILABLE error, instead of waiting out another
 * connect or statement timeout. A host cut off from its database then says so within one timeout,
 * not one per step (read, write the failure, give the lease up): the leases expire by themselves.
 *
 * Owns: the fail-fast window around any SharedBackend. Must not: change what succeeds.
 */
import { isStoreUnavailable, MailkeyError } from '../../errors.js'
import type { Claim, LogEntry, RowWrite, SharedBackend, SharedRow } from './backend.js'
import type { Item, ItemKind, ItemStore } from '../items.js'

export const FAIL_FAST_MS = 2_000

export class FailFast implements SharedBackend {
  readonly label: string
  readonly #b: SharedBackend
  readonly #now: () => number
  #items: ItemStore | undefined
  #down: { until: number; error: MailkeyError } | undefined

  constructor(b: SharedBackend, now: () => number = Date.now) {
    this.#b = b
    this.label = b.label
    this.#now = now
  }

  async #run<T>(op: () => Promise<T>): Promise<T> {
    const down = this.#down
    if (down && this.#now() < down.until) throw down.error
    try {
      const v = await op()
      this.#down = undefined
      return v
    } catch (e) {
      if (isStoreUnavailable(e) && e instanceof MailkeyError)
        this.#down = { until: this.#now() + FAIL_FAST_MS, error: e }
      throw e
    }
  }

  /** the backend's items, behind the same window */
  get items(): ItemStore {
    const i = this.#b.items
    const run = <T>(op: () => Promise<T>): Promise<T> => this.#run(op)
    this.#items ??= {
      where: i.where,
      shared: i.shared,
      get: (k: ItemKind, n: string): Promise<Item | undefined> => run(() => i.get(k, n)),
      list: (k: ItemKind): Promise<Item[]> => run(() => i.list(k)),
      put: (k: ItemKind, n: string, v: Record<string, unknown>, m: 'create' | 'replace') =>
        run(() => i.put(k, n, v, m)),
      remove: (k: ItemKind, n: string) => run(() => i.remove(k, n)),
    }
    return this.#items
  }

  init(): Promise<{ from: number; to: number }> {
    return this.#run(() => this.#b.init())
  }
  checkSchema(): Promise<void> {
    return this.#run(() => this.#b.checkSchema())
  }
  get(id: string): Promise<SharedRow | undefined> {
    return this.#run(() => this.#b.get(id))
  }
  list(): Promise<SharedRow[]> {
    return this.#run(() => this.#b.list())
  }
  claim(id: string, owner: string, leaseMs: number, reserve: boolean): Promise<Claim> {
    return this.#run(() => this.#b.claim(id, owner, leaseMs, reserve))
  }
  markIntent(id: string, fence: number, owner: string): Promise<boolean> {
    return this.#run(() => this.#b.markIntent(id, fence, owner))
  }
  write(id: string, fence: number, version: number, w: RowWrite, log: LogEntry): Promise<boolean> {
    return this.#run(() => this.#b.write(id, fence, version, w, log))
  }
  release(id: string, fence: number): Promise<void> {
    return this.#run(() => this.#b.release(id, fence))
  }
  remove(id: string, fence: number, log: LogEntry): Promise<boolean> {
    return this.#run(() => this.#b.remove(id, fence, log))
  }
  log(id: string, entry: LogEntry): Promise<void> {
    return this.#run(() => this.#b.log(id, entry))
  }
  close(): Promise<void> {
    return this.#b.close()
  }
}
