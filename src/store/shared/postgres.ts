/**
 * The shared store on PostgreSQL (docs/adr/0011). One row per account in `mailkey_accounts`, an
 * append-only `mailkey_refresh_log`, and `mailkey_schema` for the schema version. Every time is
 * the server's clock (clock_timestamp()), so hosts with skewed clocks agree on who holds a lease.
 *
 * - claim: one conditional UPDATE (lease free or expired) that bumps the fence; a reservation row
 *   (version 0) is inserted for an account that does not exist yet.
 * - write: UPDATE … WHERE fence = mine AND version = what I read, with the log line in the same
 *   statement (a CTE), so a fenced-off host changes nothing and logs nothing.
 * - every statement is one round trip on a pooled connection; a dead server turns into
 *   STORE_UNAVAILABLE within CONNECT_TIMEOUT_MS / STATEMENT_TIMEOUT_MS (pg-connect.ts).
 *
 * Owns: SQL. Must not: seal, decide freshness, or talk OAuth.
 */
import pg from 'pg'
import type { Env } from '../../config/paths.js'
import type { LastError, SealedBox } from '../../domain/account.js'
import type { Claim, LogEntry, RowWrite, SharedBackend, SharedRow } from './backend.js'
import { pgError, poolOptions, schemaError } from './pg-connect.js'
import { ITEMS_DDL, PgItems } from './pg-items.js'
import type { ItemStore } from '../items.js'

/** 1: accounts and the refresh log; 2: items (pg-items.ts) */
export const PG_SCHEMA_VERSION = 2
/** what the accounts need; items need PG_SCHEMA_VERSION */
const ACCOUNTS_SCHEMA_VERSION = 1

const DDL = [
  `CREATE TABLE IF NOT EXISTS mailkey_schema (
     one boolean PRIMARY KEY DEFAULT true CHECK (one),
     version integer NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS mailkey_accounts (
     id text PRIMARY KEY,
     version bigint NOT NULL,
     fence bigint NOT NULL DEFAULT 0,
     lease_owner text,
     lease_until timestamptz,
     intent_fence bigint,
     intent_owner text,
     intent_at timestamptz,
     state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'reauth')),
     last_error jsonb,
     sealed jsonb,
     expires_at timestamptz,
     refresh_token_at timestamptz,
     granted_at timestamptz,
     created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
  `CREATE TABLE IF NOT EXISTS mailkey_refresh_log (
     seq bigserial PRIMARY KEY,
     account text NOT NULL,
     at timestamptz NOT NULL DEFAULT clock_timestamp(),
     event text NOT NULL,
     owner text NOT NULL,
     fence bigint,
     version bigint,
     detail jsonb)`,
  `CREATE INDEX IF NOT EXISTS mailkey_refresh_log_account ON mailkey_refresh_log (account, seq)`,
  // fences come from one sequence, so a removed and re-added account never repeats one (a host
  // paused across both could otherwise match fence and version again)
  `CREATE SEQUENCE IF NOT EXISTS mailkey_fence`,
  ...ITEMS_DDL,
]

const ms = (col: string): string => `(extract(epoch from ${col}) * 1000)::float8`
const COLS = `id, version, fence, lease_owner, ${ms('lease_until')} AS lease_until, intent_fence, intent_owner,
  ${ms('intent_at')} AS intent_at, state, last_error, sealed, ${ms('updated_at')} AS updated_at,
  ${ms('clock_timestamp()')} AS server_now`

interface DbRow {
  id: string
  version: string
  fence: string
  lease_owner: string | null
  lease_until: number | null
  intent_fence: string | null
  intent_owner: string | null
  intent_at: number | null
  state: 'active' | 'reauth'
  last_error: LastError | null
  sealed: SealedBox | null
  updated_at: number
  server_now: number
}

function toRow(r: DbRow): SharedRow {
  const row: SharedRow = {
    id: r.id,
    version: Number(r.version),
    fence: Number(r.fence),
    state: r.state,
    updatedAt: r.updated_at,
    serverNow: r.server_now,
  }
  if (r.lease_owner !== null) row.leaseOwner = r.lease_owner
  if (r.lease_until !== null) row.leaseUntil = r.lease_until
  if (r.intent_fence !== null)
    row.intent = { fence: Number(r.intent_fence), owner: r.intent_owner ?? '', at: r.intent_at ?? 0 }
  if (r.last_error !== null) row.lastError = r.last_error
  if (r.sealed !== null) row.box = r.sealed
  return row
}

const tsOrNull = (v: number | undefined): string | null => (v === undefined ? null : new Date(v).toISOString())

export class PostgresBackend implements SharedBackend {
  readonly label: string
  readonly #pool: pg.Pool
  readonly items: ItemStore
  #schemaOk = false
  #itemsOk = false

  constructor(url: string, label: string, env: Env) {
    this.label = label
    this.#pool = new pg.Pool(poolOptions(url, env))
    // an idle connection that dies (server restart) must not crash the process
    this.#pool.on('error', () => undefined)
    this.items = new PgItems(
      label,
      (doing, sql, params) => this.#q(doing, sql, params),
      () => this.#itemsReady(),
    )
  }

  async #itemsReady(): Promise<void> {
    if (this.#itemsOk) return
    if ((await this.#schemaVersion()) < PG_SCHEMA_VERSION) throw schemaError(this.label)
    this.#itemsOk = true
  }

  async #schemaVersion(): Promise<number> {
    const r = await this.#q<{ v: number }>('check the schema', `SELECT version AS v FROM mailkey_schema`)
    return r.rows[0]?.v ?? 0
  }

  async #q<R extends pg.QueryResultRow>(
    doing: string,
    sql: string,
    params: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    try {
      return await this.#pool.query<R>(sql, params)
    } catch (e) {
      throw pgError(e, this.label, doing)
    }
  }

  async init(): Promise<{ from: number; to: number }> {
    let client: pg.PoolClient
    try {
      client = await this.#pool.connect()
    } catch (e) {
      throw pgError(e, this.label, 'create the schema')
    }
    try {
      await client.query('BEGIN')
      // one init at a time, however many hosts run it at once
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('mailkey_schema'))`)
      const has = await client.query<{ has: boolean }>(`SELECT to_regclass('mailkey_schema') IS NOT NULL AS has`)
      const had = has.rows[0]?.has
        ? (await client.query<{ version: number }>(`SELECT version FROM mailkey_schema`)).rows
        : []
      const from = had[0]?.version ?? 0
      for (const stmt of DDL) await client.query(stmt)
      await client.query(
        `INSERT INTO mailkey_schema (one, version) VALUES (true, $1) ON CONFLICT (one) DO UPDATE SET version = GREATEST(mailkey_schema.version, $1)`,
        [PG_SCHEMA_VERSION],
      )
      await client.query('COMMIT')
      this.#schemaOk = true
      return { from, to: Math.max(from, PG_SCHEMA_VERSION) }
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw pgError(e, this.label, 'create the schema')
    } finally {
      client.release()
    }
  }

  async checkSchema(): Promise<void> {
    if (this.#schemaOk) return
    if ((await this.#schemaVersion()) < ACCOUNTS_SCHEMA_VERSION) throw schemaError(this.label)
    this.#schemaOk = true
  }

  async get(id: string): Promise<SharedRow | undefined> {
    await this.checkSchema()
    const r = await this.#q<DbRow>('read an account', `SELECT ${COLS} FROM mailkey_accounts WHERE id = $1`, [id])
    return r.rows[0] ? toRow(r.rows[0]) : undefined
  }

  async list(): Promise<SharedRow[]> {
    await this.checkSchema()
    const r = await this.#q<DbRow>('list accounts', `SELECT ${COLS} FROM mailkey_accounts ORDER BY id`)
    return r.rows.map(toRow)
  }

  async claim(id: string, owner: string, leaseMs: number, reserve: boolean): Promise<Claim> {
    await this.checkSchema()
    for (let i = 0; i < 3; i++) {
      const took = await this.#q<DbRow>(
        'take a lease',
        `UPDATE mailkey_accounts SET fence = nextval('mailkey_fence'), lease_owner = $2,
           lease_until = clock_timestamp() + $3 * interval '1 millisecond'
         WHERE id = $1 AND (lease_until IS NULL OR lease_until <= clock_timestamp())
         RETURNING ${COLS}`,
        [id, owner, leaseMs],
      )
      if (took.rows[0]) return { kind: 'mine', row: toRow(took.rows[0]) }
      const cur = await this.get(id)
      if (cur) {
        if (cur.leaseUntil !== undefined && cur.leaseUntil > cur.serverNow) return { kind: 'held', row: cur }
        continue // released between the two statements: try again
      }
      if (!reserve) return { kind: 'missing' }
      const ins = await this.#q<DbRow>(
        'reserve an account',
        `INSERT INTO mailkey_accounts (id, version, fence, lease_owner, lease_until)
         VALUES ($1, 0, nextval('mailkey_fence'), $2, clock_timestamp() + $3 * interval '1 millisecond')
         ON CONFLICT (id) DO NOTHING RETURNING ${COLS}`,
        [id, owner, leaseMs],
      )
      if (ins.rows[0]) return { kind: 'mine', row: toRow(ins.rows[0]) }
    }
    const cur = await this.get(id)
    return cur ? { kind: 'held', row: cur } : { kind: 'missing' }
  }

  async markIntent(id: string, fence: number, owner: string): Promise<boolean> {
    const r = await this.#q(
      'mark a refresh in flight',
      `WITH up AS (UPDATE mailkey_accounts SET intent_fence = fence, intent_owner = $3, intent_at = clock_timestamp()
         WHERE id = $1 AND fence = $2 RETURNING id, fence, version)
       INSERT INTO mailkey_refresh_log (account, event, owner, fence, version)
         SELECT id, 'intent', $3, fence, version FROM up RETURNING seq`,
      [id, fence, owner],
    )
    return r.rowCount === 1
  }

  async write(id: string, fence: number, version: number, w: RowWrite, log: LogEntry): Promise<boolean> {
    const r = await this.#q(
      'write an account',
      `WITH up AS (UPDATE mailkey_accounts SET version = version + 1, sealed = $4, state = $5, last_error = $6,
           expires_at = $7, refresh_token_at = $8, granted_at = $9,
           -- a re-seal or a migration copies the record as it is: an unfinished refresh stays marked
           intent_fence = CASE WHEN $10 IN ('rekey', 'migrate') THEN intent_fence END,
           intent_owner = CASE WHEN $10 IN ('rekey', 'migrate') THEN intent_owner END,
           intent_at = CASE WHEN $10 IN ('rekey', 'migrate') THEN intent_at END,
           updated_at = clock_timestamp()
         WHERE id = $1 AND fence = $2 AND version = $3 RETURNING id, fence, version)
       INSERT INTO mailkey_refresh_log (account, event, owner, fence, version, detail)
         SELECT id, $10, $11, fence, version, $12 FROM up RETURNING seq`,
      [
        id,
        fence,
        version,
        JSON.stringify(w.box),
        w.state,
        w.lastError === undefined ? null : JSON.stringify(w.lastError),
        tsOrNull(w.expiresAt),
        tsOrNull(w.refreshTokenAt),
        tsOrNull(w.grantedAt),
        log.event,
        log.owner,
        log.detail === undefined ? null : JSON.stringify(log.detail),
      ],
    )
    return r.rowCount === 1
  }

  async release(id: string, fence: number): Promise<void> {
    await this.#q('release a lease', `DELETE FROM mailkey_accounts WHERE id = $1 AND fence = $2 AND version = 0`, [
      id,
      fence,
    ])
    await this.#q(
      'release a lease',
      `UPDATE mailkey_accounts SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND fence = $2`,
      [id, fence],
    )
  }

  async remove(id: string, fence: number, log: LogEntry): Promise<boolean> {
    const r = await this.#q(
      'remove an account',
      `WITH del AS (DELETE FROM mailkey_accounts WHERE id = $1 AND fence = $2 AND version > 0 RETURNING id, fence, version)
       INSERT INTO mailkey_refresh_log (account, event, owner, fence, version)
         SELECT id, 'remove', $3, fence, version FROM del RETURNING seq`,
      [id, fence, log.owner],
    )
    return r.rowCount === 1
  }

  async log(id: string, e: LogEntry): Promise<void> {
    await this.#q(
      'append to the refresh log',
      `INSERT INTO mailkey_refresh_log (account, event, owner, fence, version, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        id,
        e.event,
        e.owner,
        e.fence ?? null,
        e.version ?? null,
        e.detail === undefined ? null : JSON.stringify(e.detail),
      ],
    )
  }

  async close(): Promise<void> {
    await this.#pool.end().catch(() => undefined)
  }
}
