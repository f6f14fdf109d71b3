// The ItemStore contract (store/items.ts): the small named things the services keep beside the
// accounts (the token service's API key hashes, the proxy's password hashes), run against the
// file store's items file and a real PostgreSQL and Redis. Then the upgrade path: a PostgreSQL
// store made by a mailkey before items existed names `mailkey store init`, which adds them.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT, type PgServer } from '../harness/postgres.js'
import { redisAvailable, startRedis, REDIS_INSTALL_HINT, type RedisServer } from '../harness/redis.js'
import { resolvePaths } from '../../src/config/paths.js'
import { FileItems, type ItemStore } from '../../src/store/items.js'
import { openSharedStore } from '../../src/store/shared/open-shared.js'
import type { SharedStore } from '../../src/store/shared/shared-store.js'
import { ERR, StoreError } from '../../src/errors.js'

if (process.env.CI && !postgresAvailable())
  throw new Error(`the items contract needs PostgreSQL: ${POSTGRES_INSTALL_HINT}`)
if (process.env.CI && !redisAvailable()) throw new Error(`the items contract needs redis-server: ${REDIS_INSTALL_HINT}`)

let tmp: string
let keyFile: string
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mailkey-items-'))
  keyFile = join(tmp, 'store.key')
  await writeFile(keyFile, Buffer.alloc(32, 7).toString('base64') + '\n', { mode: 0o600 })
  await chmod(keyFile, 0o600)
})
after(async () => {
  await rm(tmp, { recursive: true, force: true })
})

function contract(open: () => Promise<{ items: ItemStore; close(): Promise<void> }>): void {
  let s: { items: ItemStore; close(): Promise<void> }
  before(async () => {
    s = await open()
  })
  after(async () => {
    await s.close()
  })

  it('create only once; replace always; get and list give back the value', async () => {
    const { items } = s
    assert.equal(await items.get('api-key', 'ci'), undefined)
    assert.equal(await items.put('api-key', 'ci', { hash: 'h1', accounts: ['a@x.test'] }, 'create'), true)
    assert.equal(await items.put('api-key', 'ci', { hash: 'h2' }, 'create'), false, 'a second create is refused')
    assert.deepEqual((await items.get('api-key', 'ci'))?.value, { hash: 'h1', accounts: ['a@x.test'] })
    assert.equal(await items.put('api-key', 'ci', { hash: 'h3' }, 'replace'), true)
    assert.deepEqual((await items.get('api-key', 'ci'))?.value, { hash: 'h3' })
    await items.put('api-key', 'alpha', { hash: 'h4' }, 'create')
    assert.deepEqual(
      (await items.list('api-key')).map((i) => i.name),
      ['alpha', 'ci'],
      'listed by name',
    )
    const got = await items.get('api-key', 'alpha')
    assert.ok(got && got.updatedAt > 0, 'a write time is kept')
  })

  it('kinds are apart: a proxy password and an API key of the same name do not meet', async () => {
    const { items } = s
    await items.put('proxy-password', 'ci', { hash: 'pw' }, 'replace')
    assert.deepEqual((await items.get('proxy-password', 'ci'))?.value, { hash: 'pw' })
    assert.notDeepEqual((await items.get('api-key', 'ci'))?.value, { hash: 'pw' })
    assert.ok(!(await items.list('proxy-password')).some((i) => i.name === 'alpha'))
  })

  it('remove says true, then false, and the item is gone', async () => {
    const { items } = s
    assert.equal(await items.remove('api-key', 'alpha'), true)
    assert.equal(await items.remove('api-key', 'alpha'), false)
    assert.equal(await items.get('api-key', 'alpha'), undefined)
  })

  it('concurrent creates of one name: exactly one wins', async () => {
    const { items } = s
    const won = await Promise.all(
      Array.from({ length: 8 }, (_, i) => items.put('api-key', 'race', { hash: `h${i}` }, 'create')),
    )
    assert.equal(won.filter(Boolean).length, 1)
  })
}

describe('ItemStore contract: the file store', () => {
  contract(async () => {
    const home = await mkdtemp(join(tmp, 'file-'))
    const paths = resolvePaths({ HOME: home, XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'c') })
    return { items: new FileItems(paths), close: async () => undefined }
  })
  it('the items file is 0600 in a 0700 directory', async () => {
    const home = await mkdtemp(join(tmp, 'mode-'))
    const paths = resolvePaths({ HOME: home, XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'c') })
    const items = new FileItems(paths)
    await items.put('api-key', 'k', { hash: 'h' }, 'create')
    assert.equal((await stat(items.where)).mode & 0o777, 0o600)
    assert.equal((await stat(paths.stateDir)).mode & 0o777, 0o700)
  })
})

const pgMissing = !postgresAvailable() && 'PostgreSQL missing'
const redisMissing = !redisAvailable() && 'redis-server missing'

describe('ItemStore contract: PostgreSQL', { skip: pgMissing }, () => {
  let srv: PgServer
  let store: SharedStore
  before(async () => {
    srv = await startPostgres()
  })
  contract(async () => {
    store = await openSharedStore({ env: { ...srv.env(), MAILKEY_STORE_KEY_FILE: keyFile }, url: srv.url })
    await store.backend.init()
    return { items: store.backend.items, close: () => store.close() }
  })
  it('a store from before items names "mailkey store init"; init adds them and keeps the accounts', async () => {
    const db = new pg.Client(srv.urlWithPassword)
    await db.connect()
    try {
      await db.query('DROP TABLE mailkey_items')
      await db.query('UPDATE mailkey_schema SET version = 1')
      const old = await openSharedStore({ env: { ...srv.env(), MAILKEY_STORE_KEY_FILE: keyFile }, url: srv.url })
      try {
        await old.backend.checkSchema() // the accounts still work on a version 1 schema
        await assert.rejects(old.backend.items.list('api-key'), (e: unknown) => {
          assert.ok(e instanceof StoreError && e.code === ERR.STORE_SCHEMA, String(e))
          assert.match(e.hint ?? '', /mailkey store init/)
          return true
        })
        assert.deepEqual(await old.backend.init(), { from: 1, to: 2 })
        assert.deepEqual(await old.backend.items.list('api-key'), [])
      } finally {
        await old.close()
      }
    } finally {
      await db.end()
    }
  })
  after(async () => {
    await srv?.close()
  })
})

describe('ItemStore contract: Redis', { skip: redisMissing }, () => {
  let srv: RedisServer
  before(async () => {
    srv = await startRedis({ appendonly: true, appendfsync: 'always' })
  })
  contract(async () => {
    const store = await openSharedStore({
      env: { REDISCLI_AUTH: srv.password, MAILKEY_STORE_KEY_FILE: keyFile },
      url: srv.url,
    })
    await store.backend.init()
    return { items: store.backend.items, close: () => store.close() }
  })
  after(async () => {
    await srv?.close()
  })
})

// Items on a shared store are bound to the store key (store/shared/keyed-items.ts): whoever can
// write the database but has no store key cannot plant an API key or a password hash.
describe('items bound to the store key (PostgreSQL)', { skip: pgMissing }, () => {
  let srv: PgServer
  let store: SharedStore
  let db: pg.Client
  before(async () => {
    srv = await startPostgres()
    store = await openSharedStore({ env: { ...srv.env(), MAILKEY_STORE_KEY_FILE: keyFile }, url: srv.url })
    await store.backend.init()
    db = new pg.Client(srv.urlWithPassword)
    await db.connect()
  })
  after(async () => {
    await db?.end()
    await store?.close()
    await srv?.close()
  })

  it('an item written into the table without the key does not exist; one written with it does', async () => {
    const items = store.items
    assert.equal(await items.put('api-key', 'real', { hash: 'h-real', accounts: '*' }, 'create'), true)
    await db.query(`INSERT INTO mailkey_items (kind, name, value) VALUES ('api-key', 'planted', $1)`, [
      JSON.stringify({ hash: 'h-evil', accounts: '*' }),
    ])
    // a MAC copied from the real item onto another value or another name does not verify either
    const real = (
      await db.query<{ value: { v: unknown; kid: string; mac: string } }>(
        `SELECT value FROM mailkey_items WHERE kind = 'api-key' AND name = 'real'`,
      )
    ).rows[0]!.value
    await db.query(`INSERT INTO mailkey_items (kind, name, value) VALUES ('api-key', 'copied', $1)`, [
      JSON.stringify(real),
    ])
    await db.query(`INSERT INTO mailkey_items (kind, name, value) VALUES ('api-key', 'edited', $1)`, [
      JSON.stringify({ ...real, v: { hash: 'h-evil', accounts: '*' } }),
    ])
    await db.query(`INSERT INTO mailkey_items (kind, name, value) VALUES ('proxy-password', 'real', $1)`, [
      JSON.stringify(real),
    ])
    assert.deepEqual(
      (await items.list('api-key')).map((i) => i.name),
      ['real'],
    )
    for (const name of ['planted', 'copied', 'edited']) assert.equal(await items.get('api-key', name), undefined)
    assert.equal(await items.get('proxy-password', 'real'), undefined, 'the kind is bound in too')
    assert.deepEqual((await items.get('api-key', 'real'))?.value, { hash: 'h-real', accounts: '*' })
  })

  it('a rotated store key binds every item again; the old key can then leave', async () => {
    const KEY_NEW = Buffer.alloc(32, 9)
    const both = join(tmp, 'both.key')
    await writeFile(both, [KEY_NEW, Buffer.alloc(32, 7)].map((k) => k.toString('base64')).join('\n') + '\n', {
      mode: 0o600,
    })
    const rotated = await openSharedStore({ env: { ...srv.env(), MAILKEY_STORE_KEY_FILE: both }, url: srv.url })
    try {
      assert.ok(await rotated.items.get('api-key', 'real'), 'the old key still opens it')
      assert.equal(await rotated.items.rebind(['api-key', 'proxy-password']), 1)
    } finally {
      await rotated.close()
    }
    const only = join(tmp, 'only-new.key')
    await writeFile(only, KEY_NEW.toString('base64') + '\n', { mode: 0o600 })
    const after = await openSharedStore({ env: { ...srv.env(), MAILKEY_STORE_KEY_FILE: only }, url: srv.url })
    try {
      assert.deepEqual((await after.items.get('api-key', 'real'))?.value, { hash: 'h-real', accounts: '*' })
      assert.deepEqual(
        (await after.items.list('api-key')).map((i) => i.name),
        ['real'],
      )
    } finally {
      await after.close()
    }
  })
})
