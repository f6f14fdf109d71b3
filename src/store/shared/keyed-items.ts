/**
 * Items (store/items.ts) on a shared store, bound to the store key: every value is kept with an
 * HMAC-SHA256 over its kind, name and value, under a key derived from the store key (HKDF, its own
 * label), and an item whose MAC does not verify with a key of the ring does not exist. So whoever
 * can write the database but has no store key cannot plant an API key or a proxy password hash:
 * the database alone never grants a token (docs/adr/0012). The values are hashes already, so they
 * are bound, not sealed.
 *
 * A rotated store key (rotate.ts) re-MACs every item with the new key before the old one leaves.
 *
 * Owns: the MAC of items. Must not: know what an item means.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import type { Item, ItemKind, ItemStore } from '../items.js'
import type { StoreKey, StoreKeyRing } from './store-key.js'

const INFO = 'mailkey items v1'

interface Stored {
  v: Record<string, unknown>
  kid: string
  mac: string
}

/** JSON with object keys in order, so the MAC does not depend on how a store gives keys back. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (typeof v === 'object' && v !== null)
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`
  return JSON.stringify(v)
}

const macKeys = new WeakMap<Buffer, Buffer>()

function macOf(k: StoreKey, kind: ItemKind, name: string, value: Record<string, unknown>): string {
  let mk = macKeys.get(k.key)
  if (!mk) macKeys.set(k.key, (mk = Buffer.from(hkdfSync('sha256', k.key, Buffer.alloc(0), INFO, 32))))
  return createHmac('sha256', mk)
    .update(`${kind}\0${name}\0${canonical(value)}`)
    .digest('base64url')
}

export class KeyedItems implements ItemStore {
  readonly where: string
  readonly shared = true
  readonly #inner: ItemStore
  readonly #keys: () => Promise<StoreKeyRing>

  constructor(inner: ItemStore, keys: () => Promise<StoreKeyRing>) {
    this.#inner = inner
    this.#keys = keys
    this.where = inner.where
  }

  /** The item's value when its MAC verifies with a key of the ring, with that key's id. */
  #open(kind: ItemKind, it: Item, ring: StoreKeyRing): { item: Item; kid: string } | undefined {
    const s = it.value as Partial<Stored>
    if (typeof s.v !== 'object' || s.v === null || typeof s.kid !== 'string' || typeof s.mac !== 'string') return
    const key = ring.all.find((k) => k.kid === s.kid)
    if (!key) return undefined
    const want = Buffer.from(macOf(key, kind, it.name, s.v))
    const got = Buffer.from(s.mac)
    if (want.length !== got.length || !timingSafeEqual(want, got)) return undefined
    return { item: { name: it.name, value: s.v, updatedAt: it.updatedAt }, kid: s.kid }
  }

  async get(kind: ItemKind, name: string): Promise<Item | undefined> {
    const it = await this.#inner.get(kind, name)
    return it ? this.#open(kind, it, await this.#keys())?.item : undefined
  }

  async list(kind: ItemKind): Promise<Item[]> {
    const ring = await this.#keys()
    return (await this.#inner.list(kind)).flatMap((it) => this.#open(kind, it, ring)?.item ?? [])
  }

  async put(
    kind: ItemKind,
    name: string,
    value: Record<string, unknown>,
    mode: 'create' | 'replace',
  ): Promise<boolean> {
    const cur = (await this.#keys()).current
    const stored: Stored = { v: value, kid: cur.kid, mac: macOf(cur, kind, name, value) }
    return await this.#inner.put(kind, name, stored as unknown as Record<string, unknown>, mode)
  }

  remove(kind: ItemKind, name: string): Promise<boolean> {
    return this.#inner.remove(kind, name)
  }

  /** Every item that verifies with an older key, bound again with the current one; the count. */
  async rebind(kinds: ItemKind[]): Promise<number> {
    const ring = await this.#keys()
    let n = 0
    for (const kind of kinds)
      for (const raw of await this.#inner.list(kind)) {
        const o = this.#open(kind, raw, ring)
        if (!o || o.kid === ring.current.kid) continue
        await this.put(kind, raw.name, o.item.value, 'replace')
        n++
      }
    return n
  }
}
