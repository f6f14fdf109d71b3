/**
 * Items (store/items.ts) on Redis: one hash per kind, `mailkey:items:KIND`, field = name, value =
 * JSON `{value, updatedAt}`. HSETNX makes `create` atomic; no schema change was needed.
 *
 * Owns: the items key layout. Must not: know what an item means.
 */
import type { Item, ItemKind, ItemStore } from '../items.js'

export const itemsKey = (kind: string): string => `mailkey:items:${kind}`

type Reply = string | number | null | Reply[]
type Cmd = (doing: string, args: string[]) => Promise<Reply>

function parse(name: string, raw: Reply): Item | undefined {
  if (typeof raw !== 'string') return undefined
  try {
    const v = JSON.parse(raw) as { value?: unknown; updatedAt?: unknown }
    if (typeof v.value !== 'object' || v.value === null) return undefined
    return { name, value: v.value as Record<string, unknown>, updatedAt: Number(v.updatedAt) || 0 }
  } catch {
    return undefined
  }
}

export class RedisItems implements ItemStore {
  readonly where: string
  readonly shared = true
  readonly #cmd: Cmd
  readonly #ready: () => Promise<void>

  constructor(where: string, cmd: Cmd, ready: () => Promise<void>) {
    this.where = where
    this.#cmd = cmd
    this.#ready = ready
  }

  async get(kind: ItemKind, name: string): Promise<Item | undefined> {
    await this.#ready()
    return parse(name, await this.#cmd('read an item', ['HGET', itemsKey(kind), name]))
  }

  async list(kind: ItemKind): Promise<Item[]> {
    await this.#ready()
    const flat = await this.#cmd('list items', ['HGETALL', itemsKey(kind)])
    const out: Item[] = []
    if (Array.isArray(flat))
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const it = parse(String(flat[i]), flat[i + 1] ?? null)
        if (it) out.push(it)
      }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  async put(
    kind: ItemKind,
    name: string,
    value: Record<string, unknown>,
    mode: 'create' | 'replace',
  ): Promise<boolean> {
    await this.#ready()
    const data = JSON.stringify({ value, updatedAt: Date.now() })
    const r = await this.#cmd('write an item', [mode === 'create' ? 'HSETNX' : 'HSET', itemsKey(kind), name, data])
    return mode === 'replace' || Number(r) === 1
  }

  async remove(kind: ItemKind, name: string): Promise<boolean> {
    await this.#ready()
    return Number(await this.#cmd('remove an item', ['HDEL', itemsKey(kind), name])) === 1
  }
}
