/**
 * Items (store/items.ts) on PostgreSQL: one table `mailkey_items` (schema version 2), keyed by
 * kind and name. A store created by an older mailkey has accounts but no items: the first use
 * names `mailkey store init`, which adds the table without touching the accounts.
 *
 * Owns: the items SQL. Must not: know what an item means.
 */
import type { Item, ItemKind, ItemStore } from '../items.js'

export const ITEMS_DDL = [
  `CREATE TABLE IF NOT EXISTS mailkey_items (
     kind text NOT NULL,
     name text NOT NULL,
     value jsonb NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     PRIMARY KEY (kind, name))`,
]

type Query = <R extends Record<string, unknown>>(
  doing: string,
  sql: string,
  params?: unknown[],
) => Promise<{ rows: R[]; rowCount: number | null }>

interface DbItem extends Record<string, unknown> {
  name: string
  value: Record<string, unknown>
  at: number
}

const toItem = (r: DbItem): Item => ({ name: r.name, value: r.value, updatedAt: r.at })
const COLS = `name, value, (extract(epoch from updated_at) * 1000)::float8 AS at`

export class PgItems implements ItemStore {
  readonly where: string
  readonly shared = true
  readonly #q: Query
  readonly #ready: () => Promise<void>

  /** `ready`: throws the schema error when the store's schema has no items table yet */
  constructor(where: string, q: Query, ready: () => Promise<void>) {
    this.where = where
    this.#q = q
    this.#ready = ready
  }

  async get(kind: ItemKind, name: string): Promise<Item | undefined> {
    await this.#ready()
    const r = await this.#q<DbItem>('read an item', `SELECT ${COLS} FROM mailkey_items WHERE kind = $1 AND name = $2`, [
      kind,
      name,
    ])
    return r.rows[0] ? toItem(r.rows[0]) : undefined
  }

  async list(kind: ItemKind): Promise<Item[]> {
    await this.#ready()
    const r = await this.#q<DbItem>('list items', `SELECT ${COLS} FROM mailkey_items WHERE kind = $1 ORDER BY name`, [
      kind,
    ])
    return r.rows.map(toItem)
  }

  async put(
    kind: ItemKind,
    name: string,
    value: Record<string, unknown>,
    mode: 'create' | 'replace',
  ): Promise<boolean> {
    await this.#ready()
    const onConflict =
      mode === 'create' ? 'DO NOTHING' : 'DO UPDATE SET value = EXCLUDED.value, updated_at = clock_timestamp()'
    const r = await this.#q(
      'write an item',
      `INSERT INTO mailkey_items (kind, name, value) VALUES ($1, $2, $3) ON CONFLICT (kind, name) ${onConflict}`,
      [kind, name, JSON.stringify(value)],
    )
    return r.rowCount === 1
  }

  async remove(kind: ItemKind, name: string): Promise<boolean> {
    await this.#ready()
    const r = await this.#q('remove an item', `DELETE FROM mailkey_items WHERE kind = $1 AND name = $2`, [kind, name])
    return r.rowCount === 1
  }
}
