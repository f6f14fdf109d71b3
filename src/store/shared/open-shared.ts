/**
 * Opens a shared store from its URL: the engine's backend (loaded only when used, so a host on
 * the file store never loads a database client), the key ring (read once, on first need), and the
 * lease length (MAILKEY_STORE_LEASE_SEC or [store] lease; 60 s by default).
 *
 * Owns: wiring a SharedStore. Must not: refresh.
 */
import type { Env } from '../../config/paths.js'
import type { SharedBackend } from './backend.js'
import { FailFast } from './fail-fast.js'
import { DEFAULT_LEASE_MS, SharedStore } from './shared-store.js'
import { keyFilePath, loadKeyRing, type StoreKeyRing } from './store-key.js'
import { parseStoreUrl, type StoreUrl } from './store-url.js'

export interface OpenSharedOptions {
  env: Env
  url: string
  /** `[store] key_file` of config.toml */
  keyFile?: string
  leaseSec?: number
}

export async function openBackend(u: StoreUrl, env: Env): Promise<SharedBackend> {
  if (u.engine === 'postgres') {
    const { PostgresBackend } = await import('./postgres.js')
    return new PostgresBackend(u.url, u.label, env)
  }
  const { RedisBackend } = await import('./redis.js')
  return new RedisBackend(u.url, u.label, env)
}

export async function openSharedStore(o: OpenSharedOptions): Promise<SharedStore> {
  const u = parseStoreUrl(o.url)
  const backend = new FailFast(await openBackend(u, o.env))
  let ring: Promise<StoreKeyRing> | undefined
  const keys = (): Promise<StoreKeyRing> => {
    ring ??= loadKeyRing(keyFilePath(o.env, o.keyFile), u.label)
    ring.catch(() => (ring = undefined))
    return ring
  }
  return new SharedStore({ backend, keys, leaseMs: o.leaseSec ? o.leaseSec * 1000 : DEFAULT_LEASE_MS })
}
