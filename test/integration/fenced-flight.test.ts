// broker/fenced-flight.ts in one process on a real PostgreSQL, two "hosts" as two SharedStores
// (two owners): a waiter whose holder records a dead grant gets that error, never the old token;
// a worker that ends without writing anything is an error, not a reason to start another one.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT, type PgServer } from '../harness/postgres.js'
import { openSharedStore } from '../../src/store/shared/open-shared.js'
import type { SharedStore } from '../../src/store/shared/shared-store.js'
import { FencedFlight } from '../../src/broker/fenced-flight.js'
import { prepareKey, promoteNewest } from '../../src/store/shared/rotate.js'
import type { AccountRecord } from '../../src/domain/account.js'
import { ERR, ReauthRequiredError, StoreError } from '../../src/errors.js'

if (!postgresAvailable() && process.env.CI) throw new Error(`these tests need PostgreSQL: ${POSTGRES_INSTALL_HINT}`)

const ID = 'flight@example.test'
const rec = (o: Partial<AccountRecord> = {}): AccountRecord => ({
  v: 1,
  state: 'active',
  updatedAt: 0,
  settings: {
    email: ID,
    provider: 'custom',
    clientId: 'c',
    scopes: ['s'],
    endpoints: { token: 'https://127.0.0.1:1/token' },
    servers: {},
    sasl: 'XOAUTH2',
    flow: 'device',
  },
  // valid for 100 s: fresh, but short of a 300 s margin
  grant: { refreshToken: 'rt-1', accessToken: 'old-token', expiresAt: Date.now() + 100_000, grantedAt: 0 },
  ...o,
})

describe('fenced flight on PostgreSQL', { skip: !postgresAvailable() && 'PostgreSQL missing' }, () => {
  let pg: PgServer
  let dir: string
  let keyFile: string
  let x: SharedStore
  let y: SharedStore

  before(async () => {
    pg = await startPostgres()
    dir = await mkdtemp(join(tmpdir(), 'mailkey-flight-'))
    keyFile = join(dir, 'key')
    await writeFile(keyFile, `${Buffer.alloc(32, 3).toString('base64')}\n`, { mode: 0o600 })
    const env = { ...pg.env(), MAILKEY_STORE_KEY_FILE: keyFile }
    ;[x, y] = await Promise.all([openSharedStore({ env, url: pg.url }), openSharedStore({ env, url: pg.url })])
    await x.backend.init()
  })
  after(async () => {
    await Promise.all([x?.close(), y?.close()])
    await pg?.close()
    await rm(dir, { recursive: true, force: true })
  })

  const want = (): Parameters<FencedFlight['refresh']>[1] => ({
    force: false,
    minSec: 300,
    since: Date.now(),
    deadline: Date.now() + 20_000,
  })

  it('a waiter gets the dead grant its holder recorded, not the old token', { timeout: 20_000 }, async () => {
    await x.write(rec())
    const lease = await x.claim(ID, 'refresh')
    assert.ok(lease !== 'missing' && 'purpose' in lease)
    const flight = new FencedFlight({
      store: y,
      now: Date.now,
      refreshHere: async () => assert.fail('the waiter must not refresh'),
    })
    const waiting = flight.refresh(ID, want())
    const lastError = { code: ERR.REAUTH_REQUIRED, message: 'invalid_grant', transient: false, at: Date.now() }
    await x.runHolding(lease, () => x.write(rec({ state: 'reauth', lastError })))
    await x.release(lease)
    await assert.rejects(waiting, (e) => e instanceof ReauthRequiredError && /invalid_grant/.test(e.message))
  })

  it('a removed and re-added account never repeats a fence: a paused host cannot match again', async () => {
    const id = 'readd@example.test'
    const b = x.backend
    const w = {
      box: { kid: 'k', alg: 'A256GCM', iv: 'aXY', ct: 'Y3Q', tag: 'dGFn' } as const,
      state: 'active' as const,
    }
    const log = { event: 'write' as const, owner: 'test' }
    const fences: number[] = []
    const claim = async (): Promise<number> => {
      const c = await b.claim(id, 'test', 60_000, true)
      assert.equal(c.kind, 'mine')
      fences.push((c as { row: { fence: number } }).row.fence)
      return fences.at(-1) as number
    }
    const first = await claim() // created: version 0 -> 1
    assert.equal(await b.write(id, first, 0, w, log), true)
    await b.release(id, first)
    const paused = await claim() // a host takes it at version 1 ... and pauses
    await b.release(id, paused) // (its lease runs out)
    assert.equal(await b.remove(id, await claim(), log), true)
    const again = await claim() // re-added: version 0 -> 1 again
    assert.equal(await b.write(id, again, 0, w, log), true)
    await b.release(id, again)
    await claim()
    assert.equal(new Set(fences).size, fences.length, `fences repeat: ${fences.join(', ')}`)
    assert.equal(await b.write(id, paused, 1, w, log), false, 'the paused host is fenced off')
  })

  it('a running process follows the key file through a rotation, without reopening the store', async () => {
    await x.write(rec())
    const label = 'the store'
    const added = await prepareKey(keyFile, label)
    assert.ok(await y.read(ID), 'a prepared key changes nothing for reading')
    const promoted = await promoteNewest(keyFile, label)
    assert.equal(promoted, added)
    await y.write(rec()) // the same process, after the file changed: sealed with the promoted key
    assert.equal((await y.row(ID))?.box?.kid, promoted)
    assert.equal((await x.read(ID))?.grant?.accessToken, 'old-token', 'the other process opens it too')
  })

  it('a re-seal keeps an unfinished refresh marked; a refresh or sign-in write clears it', async () => {
    const id = 'intent@example.test'
    const b = x.backend
    const w = {
      box: { kid: 'k', alg: 'A256GCM', iv: 'aXY', ct: 'Y3Q', tag: 'dGFn' } as const,
      state: 'active' as const,
    }
    const take = async (): Promise<{ fence: number; version: number }> => {
      const c = await b.claim(id, 'test', 60_000, true)
      assert.equal(c.kind, 'mine')
      return (c as { row: { fence: number; version: number } }).row
    }
    let l = await take()
    assert.ok(await b.write(id, l.fence, l.version, w, { event: 'write', owner: 'test' }))
    await b.release(id, l.fence)
    l = await take()
    assert.ok(await b.markIntent(id, l.fence, 'host-that-dies'))
    await b.release(id, l.fence) // (as if its lease ran out)
    l = await take()
    assert.ok(await b.write(id, l.fence, l.version, w, { event: 'rekey', owner: 'rotate' }))
    assert.equal((await b.get(id))?.intent?.owner, 'host-that-dies', 'still marked after the re-seal')
    assert.ok(await b.write(id, l.fence, l.version + 1, w, { event: 'refresh', owner: 'next' }))
    assert.equal((await b.get(id))?.intent, undefined)
  })

  it('a worker that ends without an outcome is an error, not another worker', { timeout: 20_000 }, async () => {
    await x.write(rec())
    let workers = 0
    const flight = new FencedFlight({
      store: y,
      now: Date.now,
      refreshHere: async () => assert.fail('no refresh here when the worker was started'),
      worker: async () => {
        workers++
        return 'done' // it died, or failed before the refresh: nothing written
      },
    })
    await assert.rejects(
      flight.refresh(ID, want()),
      (e) => e instanceof StoreError && /ended without storing an outcome/.test(e.message),
    )
    assert.equal(workers, 1)
  })
})
