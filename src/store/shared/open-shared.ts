/**
 * Opens a shared store from its URL: the engine's backend (loaded only when used, so a host on
 * the file store never loads a database client), the key ring (read on first need and again when
 * the key file changes), and the
 * lease length (MAILKEY_STORE_LEASE_SEC or [store] lease; 60 s by default).
 *
 * Owns: wiring a SharedStore. Must not: refresh.
 */
import { statSync } from 'node:fs'
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
  const path = keyFilePath(o.env, o.keyFile)
  let cached: { stamp: string; ring: Promise<StoreKeyRing> } | undefined
  // read again whenever the file changes: a long-running proxy follows `mailkey store rotate-key`
  // (a key prepared elsewhere opens records here; the promoted key seals here) without a restart
  const keys = (): Promise<StoreKeyRing> => {
    const stamp = stampOf(path)
    if (!cached || cached.stamp !== stamp) {
      const ring = loadKeyRing(path, u.label, o.env)
      cached = { stamp, ring }
      ring.catch(() => {
        if (cached?.ring === ring) cached = undefined
      })
    }
    return cached.ring
  }
  return new SharedStore({ backend, keys, leaseMs: o.leaseSec ? o.leaseSec * 1000 : DEFAULT_LEASE_MS })
}

/** size, mtime and inode of the key file ('' when it cannot be seen: loadKeyRing says why) */
function stampOf(path: string | undefined): string {
  if (!path) return ''
  try {
    const st = statSync(path)
    return `${st.size}:${st.mtimeMs}:${st.ino}`
  } catch {
    return ''
  }
}
