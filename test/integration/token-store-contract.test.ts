// The TokenStore contract (store/token-store.ts), one set of cases run against every store a host
// can use: the file store, and a SharedStore on a real PostgreSQL and on a real Redis (issue 13:
// "both backends pass the same suite as the file store"). Then what only a shared store promises:
// records sealed with the store key, bound to their account and version, the key file checked,
// and a key file with an older key second still opening old rows (rotation).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT, type PgServer } from '../harness/postgres.js'
import { redisAvailable, startRedis, REDIS_INSTALL_HINT, type RedisServer } from '../harness/redis.js'
import { resolvePaths } from '../../src/config/paths.js'
import { openStore } from '../../src/store/open.js'
import { openSharedStore } from '../../src/store/shared/open-shared.js'
import type { SharedStore } from '../../src/store/shared/shared-store.js'
import { KEYS } from '../../src/store/shared/redis.js'
import { sealShared } from '../../src/store/shared/record-seal.js'
import { keyId } from '../../src/store/shared/store-key.js'
import type { TokenStore } from '../../src/store/token-store.js'
import { accountId, type AccountRecord } from '../../src/domain/account.js'
import { ConfigError, ERR, StoreError } from '../../src/errors.js'

if (process.env.CI && !postgresAvailable())
  throw new Error(`the store contract needs PostgreSQL: ${POSTGRES_INSTALL_HINT}`)
if (process.env.CI && !redisAvailable()) throw new Error(`the store contract needs redis-server: ${REDIS_INSTALL_HINT}`)

const KEY_A = Buffer.alloc(32, 1)
const KEY_B = Buffer.alloc(32, 2)

function record(email: string, rt = `rt-${email}`): AccountRecord {
  return {
    v: 1,
    settings: {
      email,
      provider: 'custom',
      clientId: 'client-id',
      clientSecret: `client-secret-${email}`,
      clientAuth: 'basic',
      scopes: ['mail', 'offline_access'],
      endpoints: { token: 'https://as.example.test/token', issuer: 'https://as.example.test' },
      servers: { imap: 'imaps://imap.example.test:993' },
      sasl: 'XOAUTH2',
      flow: 'device',
    },
    grant: {
      refreshToken: rt,
      accessToken: `at-${email}`,
      tokenType: 'Bearer',
      expiresAt: 1_900_000_000_000,
      scope: 'mail offline_access',
      grantedAt: 1_800_000_000_000,
      refreshTokenAt: 1_800_000_100_000,
      identity: {
        email,
        name: 'A. User',
        sub: 'sub-1',
        iss: 'https://as.example.test',
        names: [email, 'alias@x.test'],
      },
    },
    state: 'active',
    updatedAt: 1,
  }
}

/** One store under test, and how to spoil one of its records behind its back. */
interface Subject {
  store: TokenStore
  /** make the stored record of `id` unreadable, each way this kind of store can meet */
  spoilers: Record<string, (id: string) => Promise<void>>
  close(): Promise<void>
}

interface SharedSubject extends Subject {
  shared: SharedStore
  raw: Raw
  /** the engine's password variable (PGPASSWORD, REDISCLI_AUTH) */
  passwordEnv: Record<string, string>
}

/** Raw access to a shared store's sealed column (what a tampering operator could change). */
interface Raw {
  sealed(id: string): Promise<string>
  setSealed(id: string, text: string): Promise<void>
}

async function writeKeyFile(dir: string, name: string, keys: Buffer[], mode = 0o600): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, keys.map((k) => k.toString('base64')).join('\n') + '\n', { mode })
  await chmod(path, mode)
  return path
}

/** Spoilers of a shared store: a flipped byte in the ciphertext, and a record sealed with another key. */
function sharedSpoilers(raw: Raw, store: () => SharedStore): Subject['spoilers'] {
  return {
    'a tampered sealed box': async (id) => {
      const box = JSON.parse(await raw.sealed(id)) as { ct: string }
      const ct = Buffer.from(box.ct, 'base64')
      ct[0] = (ct[0] ?? 0) ^ 1
      await raw.setSealed(id, JSON.stringify({ ...box, ct: ct.toString('base64') }))
    },
    'a record sealed with another key': async (id) => {
      const row = await store().row(id)
      const rec = await store().read(id)
      assert.ok(row && rec)
      await raw.setSealed(id, JSON.stringify(sealShared(rec, id, row.version, { kid: keyId(KEY_B), key: KEY_B })))
    },
    'another key under the current key id': async (id) => {
      const row = await store().row(id)
      const rec = await store().read(id)
      assert.ok(row && rec)
      await raw.setSealed(id, JSON.stringify(sealShared(rec, id, row.version, { kid: keyId(KEY_A), key: KEY_B })))
    },
  }
}

let tmp: string
let keyFile: string

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mailkey-contract-'))
  keyFile = await writeKeyFile(tmp, 'store.key', [KEY_A])
})
after(async () => {
  await rm(tmp, { recursive: true, force: true })
})

async function fileSubject(): Promise<Subject> {
  const home = await mkdtemp(join(tmp, 'file-'))
  const env = { HOME: home, XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'config') }
  const store = openStore({ env, paths: resolvePaths(env) })
  return {
    store,
    spoilers: {
      'a record that is not JSON': async (id) => {
        await writeFile(store.recordPath(id), '{"v": 1, "settings": ', { mode: 0o600 })
      },
    },
    close: async () => undefined,
  }
}

async function pgSubject(srv: PgServer): Promise<SharedSubject> {
  const store = await openSharedStore({ env: { ...srv.env(), MAILKEY_STORE_KEY_FILE: keyFile }, url: srv.url })
  await store.backend.init()
  const db = new pg.Client(srv.urlWithPassword)
  await db.connect()
  const raw: Raw = {
    async sealed(id) {
      const r = await db.query<{ s: string }>('SELECT sealed::text AS s FROM mailkey_accounts WHERE id = $1', [id])
      return String(r.rows[0]?.s)
    },
    async setSealed(id, text) {
      const r = await db.query('UPDATE mailkey_accounts SET sealed = $2::jsonb WHERE id = $1', [id, text])
      assert.equal(r.rowCount, 1)
    },
  }
  return {
    store,
    shared: store,
    raw,
    passwordEnv: srv.env(),
    spoilers: sharedSpoilers(raw, () => store),
    async close() {
      await db.end()
      await store.close()
    },
  }
}

async function redisSubject(srv: RedisServer): Promise<SharedSubject> {
  const env = { REDISCLI_AUTH: srv.password, MAILKEY_STORE_KEY_FILE: keyFile }
  const store = await openSharedStore({ env, url: srv.url })
  await store.backend.init()
  const raw: Raw = {
    sealed: async (id) => String(await srv.command('HGET', KEYS.account(id), 'sealed')),
    async setSealed(id, text) {
      assert.equal(await srv.command('HSET', KEYS.account(id), 'sealed', text), 0, 'the field was there')
    },
  }
  return {
    store,
    shared: store,
    raw,
    passwordEnv: { REDISCLI_AUTH: srv.password },
    spoilers: sharedSpoilers(raw, () => store),
    close: () => store.close(),
  }
}

/** What a read gives back must be what was written (updatedAt is the store's own). */
function assertSame(got: AccountRecord | undefined, want: AccountRecord): void {
  assert.ok(got, 'the record is there')
  assert.equal(got.v, want.v)
  assert.deepEqual(got.settings, want.settings)
  assert.deepEqual(got.grant, want.grant)
  assert.equal(got.state, want.state)
  assert.deepEqual(got.lastError, want.lastError)
  assert.ok(Number.isFinite(got.updatedAt) && got.updatedAt > 1_600_000_000_000, 'updatedAt is a time')
  assert.equal(got.sealed, undefined, 'no sealed box left in what a read gives')
}

/** The TokenStore contract, inside the caller's describe(). */
function contract(open: () => Promise<Subject>): void {
  let s: Subject
  before(async () => {
    s = await open()
  })
  after(async () => {
    await s?.close()
  })

  it('a missing account reads as undefined', async () => {
    await s.store.ensureDir()
    assert.equal(await s.store.read('nobody@example.test'), undefined)
  })

  it('write then read gives back every field: settings with the client secret, grant with identity', async () => {
    const rec = record('rt@example.test')
    await s.store.write(rec)
    assertSame(await s.store.read('rt@example.test'), rec)
  })

  it('a write replaces the record, including state and last error', async () => {
    const first = record('rep@example.test', 'rt-1')
    await s.store.write(first)
    const second: AccountRecord = {
      ...record('rep@example.test', 'rt-2'),
      state: 'reauth',
      lastError: {
        code: ERR.REAUTH_REQUIRED,
        message: 'the grant was refused',
        oauthError: 'invalid_grant',
        providerCodes: ['AADSTS70000'],
        transient: false,
        at: 1_800_000_200_000,
      },
    }
    await s.store.write(second)
    assertSame(await s.store.read('rep@example.test'), second)
    const third = record('rep@example.test', 'rt-3')
    await s.store.write(third)
    const back = await s.store.read('rep@example.test')
    assertSame(back, third)
    assert.equal(back?.lastError, undefined, 'a write without a last error clears it')
  })

  it('account ids are lower-cased by the callers: a mixed-case address is stored under its id', async () => {
    const rec = record('Mixed.Case@Example.TEST')
    await s.store.write(rec)
    const id = accountId(rec.settings.email)
    assert.equal(id, 'mixed.case@example.test')
    assertSame(await s.store.read(id), rec)
    assert.equal(await s.store.remove(id), true)
    assert.equal(await s.store.read(id), undefined)
  })

  it('list gives every record', async () => {
    const { records, broken } = await s.store.list()
    assert.deepEqual(broken, [])
    assert.deepEqual(records.map((r) => accountId(r.settings.email)).sort(), ['rep@example.test', 'rt@example.test'])
    assert.equal(records.find((r) => r.settings.email === 'rep@example.test')?.grant?.refreshToken, 'rt-3')
  })

  it('remove says true, then false, and the account is gone', async () => {
    assert.equal(await s.store.remove('rt@example.test'), true)
    assert.equal(await s.store.read('rt@example.test'), undefined)
    assert.equal(await s.store.remove('rt@example.test'), false)
    assert.equal(await s.store.remove('never@example.test'), false)
    assert.equal(await s.store.read('never@example.test'), undefined, 'remove created nothing')
    assert.deepEqual(
      (await s.store.list()).records.map((r) => r.settings.email),
      ['rep@example.test'],
    )
  })

  it('a record that does not open is reported in broken by list and refused by read, never garbage', async () => {
    for (const [how, spoil] of Object.entries(s.spoilers)) {
      const id = 'spoilt@example.test'
      await s.store.write(record(id, 'rt-spoilt'))
      await spoil(id)
      const { records, broken } = await s.store.list()
      assert.deepEqual(
        records.map((r) => r.settings.email),
        ['rep@example.test'],
        `${how}: the others are still listed`,
      )
      assert.equal(broken.length, 1, how)
      assert.ok(broken[0]?.file.includes(id), `${how}: ${broken[0]?.file}`)
      assert.ok(broken[0]?.error instanceof StoreError, how)
      assert.equal(broken[0]?.error.code, ERR.STORE_CORRUPT, how)
      await assert.rejects(
        s.store.read(id),
        (e: unknown) => e instanceof StoreError && e.code === ERR.STORE_CORRUPT && !e.message.includes('rt-spoilt'),
        how,
      )
      assert.equal(await s.store.remove(id), true, `${how}: a broken record can still be removed`)
    }
  })
}

const pgMissing = !postgresAvailable() && 'PostgreSQL missing'
const redisMissing = !redisAvailable() && 'redis-server missing'

describe('TokenStore contract: the file store', () => {
  contract(fileSubject)
})

describe('TokenStore contract: a shared store on PostgreSQL', { skip: pgMissing }, () => {
  let srv: PgServer
  before(async () => {
    srv = await startPostgres()
  })
  contract(() => pgSubject(srv))
  describe('shared only', () =>
    sharedOnly(
      () => pgSubject(srv),
      () => srv.url,
    ))
  // last: after hooks run in the order they were registered, and the stores close first
  after(async () => {
    await srv?.close()
  })
})

describe('TokenStore contract: a shared store on Redis', { skip: redisMissing }, () => {
  let srv: RedisServer
  before(async () => {
    srv = await startRedis({ appendonly: true, appendfsync: 'always' })
  })
  contract(() => redisSubject(srv))
  describe('shared only', () =>
    sharedOnly(
      () => redisSubject(srv),
      () => srv.url,
    ))
  // last: after hooks run in the order they were registered, and the stores close first
  after(async () => {
    await srv?.close()
  })
})

const corrupt = (e: unknown): boolean => e instanceof StoreError && e.code === ERR.STORE_CORRUPT

/** What a shared store adds: sealing bound to the account and version, and its key file. */
function sharedOnly(open: () => Promise<SharedSubject>, url: () => string): void {
  let s: SharedSubject
  const others: SharedStore[] = []
  before(async () => {
    s = await open()
  })
  after(async () => {
    await Promise.all(others.map((o) => o.close()))
    await s?.close()
  })
  /** the same store opened with other key settings */
  const reopen = async (env: Record<string, string>): Promise<SharedStore> => {
    const o = await openSharedStore({ env: { ...s.passwordEnv, ...env }, url: url() })
    others.push(o)
    return o
  }

  it("a record copied into another account's row does not open (the account id is bound in)", async () => {
    await s.store.write(record('a@example.test', 'rt-a'))
    await s.store.write(record('b@example.test', 'rt-b'))
    assert.equal((await s.shared.row('a@example.test'))?.version, (await s.shared.row('b@example.test'))?.version)
    await s.raw.setSealed('b@example.test', await s.raw.sealed('a@example.test'))
    await assert.rejects(s.store.read('b@example.test'), corrupt)
    const { broken } = await s.store.list()
    assert.deepEqual(
      broken.map((b) => b.file.endsWith('b@example.test')),
      [true],
    )
    assert.equal((await s.store.read('a@example.test'))?.grant?.refreshToken, 'rt-a')
    assert.equal(await s.store.remove('b@example.test'), true)
  })

  it('an older sealed record put back under a newer version does not open', async () => {
    const old = await s.raw.sealed('a@example.test')
    const v = (await s.shared.row('a@example.test'))?.version ?? 0
    await s.store.write(record('a@example.test', 'rt-a2'))
    assert.equal((await s.shared.row('a@example.test'))?.version, v + 1)
    assert.equal((await s.store.read('a@example.test'))?.grant?.refreshToken, 'rt-a2')
    await s.raw.setSealed('a@example.test', old)
    await assert.rejects(s.store.read('a@example.test'), corrupt)
    await s.store.write(record('a@example.test', 'rt-a3'))
    assert.equal((await s.store.read('a@example.test'))?.grant?.refreshToken, 'rt-a3', 'a new write mends it')
  })

  it('a key file with the old key second still opens old rows, and seals new ones with the first', async () => {
    const both = await writeKeyFile(tmp, `rotated-${Math.random().toString(36).slice(2)}.key`, [KEY_B, KEY_A])
    const rotated = await reopen({ MAILKEY_STORE_KEY_FILE: both })
    assert.equal((await rotated.read('a@example.test'))?.grant?.refreshToken, 'rt-a3')
    await rotated.write(record('a@example.test', 'rt-a4'))
    const box = JSON.parse(await s.raw.sealed('a@example.test')) as { kid: string }
    assert.equal(box.kid, keyId(KEY_B), 'sealed with the first key of the file')
    await assert.rejects(s.store.read('a@example.test'), (e: unknown) => corrupt(e) && String(e).includes(box.kid))
    assert.equal((await rotated.read('a@example.test'))?.grant?.refreshToken, 'rt-a4')
  })

  it('no key is a ConfigError naming the store and how to make one', async () => {
    const nokey = await reopen({})
    for (const attempt of [() => nokey.requireKey(), () => nokey.read('a@example.test'), () => nokey.list()]) {
      await assert.rejects(attempt(), (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e))
        assert.equal(e.code, ERR.STORE_KEY_UNAVAILABLE)
        assert.ok(e.message.includes(s.shared.label), e.message)
        assert.match(String(e.hint), /mailkey store init --new-key/)
        return true
      })
    }
    assert.match(String(await nokey.keyProblem()), /needs a key, and none is configured/)
  })

  it('a key file others can read (0644) is refused', async () => {
    const open = await writeKeyFile(tmp, `open-${Math.random().toString(36).slice(2)}.key`, [KEY_A], 0o644)
    const loose = await reopen({ MAILKEY_STORE_KEY_FILE: open })
    await assert.rejects(loose.read('a@example.test'), (e: unknown) => {
      assert.ok(e instanceof StoreError && e.code === ERR.STORE_PERMISSIONS, String(e))
      assert.match(e.message, /readable by other users \(mode 644\)/)
      assert.match(String(e.hint), /chmod 600/)
      return true
    })
  })
}
