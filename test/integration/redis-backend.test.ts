// The Redis backend of the shared store (issue 13) against a real redis-server: the SharedBackend
// contract (claims, reservations, fenced writes, intent, release, remove, list, the refresh log
// stream), leases on the server's clock, the refusal of a Redis that may lose an acknowledged
// write, and a dead server turning into STORE_UNAVAILABLE.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { redisAvailable, startRedis, REDIS_INSTALL_HINT, type RedisServer } from '../harness/redis.js'
import { startPartition } from '../harness/partition.js'
import { RedisBackend, KEYS } from '../../src/store/shared/redis.js'
import type { RowWrite } from '../../src/store/shared/backend.js'
import { ConfigError, ERR, StoreError } from '../../src/errors.js'

if (!redisAvailable() && process.env.CI) throw new Error(`the Redis tests need redis-server: ${REDIS_INSTALL_HINT}`)

const ID = 'alice@example.test'
const box = { v: 1, kid: 'k1', iv: 'aXY', ct: 'Y2lwaGVy', tag: 'dGFn' } as unknown as RowWrite['box']
const w = (state: 'active' | 'reauth' = 'active'): RowWrite => ({ box, state, expiresAt: 1_700_000_000_000 })

const backendOn = (srv: RedisServer, env: Record<string, string> = {}): RedisBackend =>
  new RedisBackend(srv.url, `redis://mailkey@127.0.0.1:${srv.port}`, { REDISCLI_AUTH: srv.password, ...env })

async function rejects(p: Promise<unknown>, check: (e: Error) => void): Promise<Error> {
  const e = await p.then(
    () => assert.fail('expected a rejection'),
    (err: Error) => err,
  )
  check(e)
  return e
}

describe('Redis backend', { skip: !redisAvailable() && 'redis-server missing' }, () => {
  let srv: RedisServer
  let b: RedisBackend

  before(async () => {
    srv = await startRedis({ appendonly: true, appendfsync: 'always' })
    b = backendOn(srv)
  })
  after(async () => {
    await b?.close()
    await srv?.close()
  })

  it('names "mailkey store init" until the schema exists; init is idempotent', async () => {
    await rejects(b.get(ID), (e) => {
      assert.ok(e instanceof StoreError && e.code === ERR.STORE_SCHEMA, String(e))
      assert.match(e.message, /no mailkey schema yet/)
      assert.match(String((e as StoreError).hint), /mailkey store init/)
    })
    assert.deepEqual(await b.init(), { from: 0, to: 1 })
    assert.deepEqual(await b.init(), { from: 1, to: 1 })
    assert.equal(await srv.command('GET', KEYS.schema), '1')
  })

  it('claims: missing, reservation, held, and release deletes a reservation', async () => {
    assert.deepEqual(await b.claim(ID, 'a', 60_000, false), { kind: 'missing' })
    const mine = await b.claim(ID, 'a', 60_000, true)
    assert.ok(mine.kind === 'mine')
    assert.equal(mine.row.version, 0)
    assert.equal(mine.row.fence, 1)
    assert.equal(mine.row.leaseOwner, 'a')
    assert.ok((mine.row.leaseUntil ?? 0) > mine.row.serverNow)
    const held = await b.claim(ID, 'b', 60_000, true)
    assert.equal(held.kind, 'held')
    assert.ok(held.kind === 'held' && held.row.leaseOwner === 'a')
    assert.equal((await b.list()).length, 1)
    await b.release(ID, 1)
    assert.equal(await b.get(ID), undefined)
    assert.deepEqual(await b.list(), [])
  })

  it('writes under the fence and version, marks intent, and fences off a stale writer', async () => {
    const c = await b.claim(ID, 'a', 60_000, true)
    assert.ok(c.kind === 'mine')
    const fence = c.row.fence
    assert.equal(await b.markIntent(ID, fence + 1, 'a'), false)
    assert.equal(await b.markIntent(ID, fence, 'a'), true)
    assert.equal((await b.get(ID))?.intent?.fence, fence)
    assert.equal(await b.write(ID, fence, 1, w(), { event: 'write', owner: 'a' }), false, 'version mismatch')
    assert.equal(await b.write(ID, fence, 0, w(), { event: 'write', owner: 'a', detail: { why: 'test' } }), true)
    const row = await b.get(ID)
    assert.equal(row?.version, 1)
    assert.deepEqual(row?.box, box)
    assert.equal(row?.intent, undefined, 'a write clears the intent')
    assert.equal(row?.state, 'active')
    assert.ok(typeof row?.serverNow === 'number' && row.serverNow > 1_600_000_000_000)
    await b.release(ID, fence)
    const after = await b.get(ID)
    assert.equal(after?.version, 1, 'release keeps a written row')
    assert.equal(after?.leaseOwner, undefined)
    // a new lease moves the fence: the old holder can no longer write, mark or release
    const c2 = await b.claim(ID, 'b', 60_000, false)
    assert.ok(c2.kind === 'mine' && c2.row.fence === fence + 1)
    assert.equal(await b.write(ID, fence, 1, w(), { event: 'write', owner: 'a' }), false, 'fenced off')
    assert.equal(await b.markIntent(ID, fence, 'a'), false)
    await b.release(ID, fence)
    assert.equal((await b.get(ID))?.leaseOwner, 'b', 'a stale release changes nothing')
    assert.equal(await b.write(ID, fence + 1, 1, w('reauth'), { event: 'failure', owner: 'b' }), true)
    assert.equal((await b.get(ID))?.state, 'reauth')
    await b.release(ID, fence + 1)
  })

  it('a lease expires on the server clock, and the next claim bumps the fence', async () => {
    const c = await b.claim(ID, 'a', 300, false)
    assert.ok(c.kind === 'mine')
    const held = await b.claim(ID, 'b', 60_000, false)
    assert.equal(held.kind, 'held')
    assert.ok(held.kind === 'held' && (held.row.leaseUntil ?? 0) - held.row.serverNow <= 300)
    await sleep(400)
    const next = await b.claim(ID, 'b', 60_000, false)
    assert.ok(next.kind === 'mine', 'the expired lease was taken over')
    assert.equal(next.row.fence, c.row.fence + 1)
    assert.equal(next.row.leaseOwner, 'b')
    await b.release(ID, next.row.fence)
  })

  it('removes only under its fence, and logs to the stream', async () => {
    const c = await b.claim(ID, 'a', 60_000, false)
    assert.ok(c.kind === 'mine')
    assert.equal(await b.remove(ID, c.row.fence - 1, { event: 'remove', owner: 'a' }), false)
    await b.log(ID, { event: 'rekey', owner: 'a', fence: c.row.fence, detail: { kid: 'k2' } })
    assert.equal(await b.remove(ID, c.row.fence, { event: 'remove', owner: 'a' }), true)
    assert.equal(await b.get(ID), undefined)
    assert.deepEqual(await b.list(), [])
    const entries = (await srv.command('XRANGE', KEYS.log, '-', '+')) as string[][][]
    const lines = entries.map(([, f]) => {
      const o: Record<string, string> = {}
      for (let i = 0; i + 1 < (f ?? []).length; i += 2) o[String(f?.[i])] = String(f?.[i + 1])
      return o
    })
    const events = lines.map((l) => l.event)
    assert.deepEqual(events, ['intent', 'write', 'failure', 'rekey', 'remove'])
    assert.ok(lines.every((l) => l.account === ID && Number(l.at) > 1_600_000_000_000))
    assert.equal(lines[1]?.detail, JSON.stringify({ why: 'test' }))
    assert.equal(lines[1]?.version, '1', 'the write logs the version it made')
    assert.equal(lines[4]?.fence, String(c.row.fence))
  })

  it('refuses a wrong password without showing it, and plain redis:// off loopback', async () => {
    const wrong = backendOn(srv, { REDISCLI_AUTH: 'not-the-password' })
    await rejects(wrong.checkSchema(), (e) => {
      assert.ok(e instanceof ConfigError, String(e))
      assert.match(e.message, /refused mailkey/)
      assert.ok(!e.message.includes('not-the-password'))
    })
    await wrong.close()
    assert.throws(
      () => new RedisBackend('redis://mailkey@db.example.test:6379', 'redis://mailkey@db.example.test:6379', {}),
      (e: Error) => e instanceof ConfigError && /rediss:\/\//.test(String((e as ConfigError).hint)),
    )
  })

  // a hang past the connect and command timeouts fails the test by its own timeout
  it('is unavailable within seconds once the server is gone, and back when it is', { timeout: 15_000 }, async () => {
    await srv.kill()
    await rejects(b.get(ID), (e) => {
      assert.ok(e instanceof StoreError && e.code === ERR.STORE_UNAVAILABLE, String(e))
      assert.match(e.message, new RegExp(`redis://mailkey@127\\.0\\.0\\.1:${srv.port}`))
    })
    await srv.start()
    assert.equal(await b.get(ID), undefined, 'the next use connects again')
  })
})

describe('Redis that accepts and never answers', { skip: !redisAvailable() && 'redis-server missing' }, () => {
  it('is unavailable, not a hang: the handshake has a deadline', { timeout: 15_000 }, async () => {
    const srv = await startRedis({ appendonly: true, appendfsync: 'always' })
    const link = await startPartition({ host: '127.0.0.1', port: srv.port })
    try {
      link.cut() // connections are accepted, nothing comes back (a stopped or wedged server)
      const b = new RedisBackend(`redis://mailkey@127.0.0.1:${link.port}`, 'redis://mailkey@silent', {
        REDISCLI_AUTH: srv.password,
      })
      await rejects(b.get(ID), (e) => {
        assert.ok(e instanceof StoreError && e.code === ERR.STORE_UNAVAILABLE, String(e))
        assert.match(e.message, /redis:\/\/mailkey@silent is unavailable/)
      })
      await b.close()
    } finally {
      await link.close()
      await srv.close()
    }
  })
})

describe('Redis persistence refusal', { skip: !redisAvailable() && 'redis-server missing' }, () => {
  const servers: RedisServer[] = []
  after(async () => {
    await Promise.all(servers.map((s) => s.close()))
  })

  const cases = [
    {
      name: 'appendfsync everysec',
      opts: { appendonly: true, appendfsync: 'everysec' as const },
      want: /set appendfsync always$/,
    },
    { name: 'appendonly no', opts: { appendonly: false, appendfsync: 'always' as const }, want: /set appendonly yes$/ },
    {
      name: 'allkeys eviction',
      opts: { appendonly: true, appendfsync: 'always' as const, config: ['maxmemory-policy allkeys-lru'] },
      want: /set maxmemory-policy noeviction$/,
    },
  ]
  for (const c of cases) {
    it(`refuses a Redis with ${c.name}, saying what to set`, async () => {
      const srv = await startRedis(c.opts)
      servers.push(srv)
      const b = backendOn(srv)
      for (const op of [() => b.init(), () => b.checkSchema()]) {
        await rejects(op(), (e) => {
          assert.ok(e instanceof ConfigError, String(e))
          assert.match(e.message, c.want)
          assert.match(String((e as ConfigError).hint), /appendonly yes.*appendfsync always/)
        })
      }
      await b.close()
      assert.equal(await srv.command('GET', KEYS.schema), null, 'nothing was written')
    })
  }

  it("refuses a Redis whose AOF replay would drop the scripts' writes (default user off, no commands)", async () => {
    // proof first: such a Redis loses a script's writes over a kill -9 and restart (redis/redis#14541)
    const srv = await startRedis({ appendonly: true, appendfsync: 'always', defaultUser: 'off' })
    servers.push(srv)
    await srv.command('EVAL', "redis.call('HSET', KEYS[1], 'a', '1') redis.call('SADD', KEYS[2], 'x')", 2, 'h', 's')
    await srv.kill()
    await srv.start()
    assert.deepEqual(await srv.command('HGETALL', 'h'), [], 'the acknowledged script writes are gone')
    const b = backendOn(srv)
    for (const op of [() => b.init(), () => b.checkSchema()]) {
      await rejects(op(), (e) => {
        assert.ok(e instanceof ConfigError, String(e))
        assert.match(e.message, /would drop mailkey's writes when it reads its AOF back/)
        assert.match(e.message, /user default off ~\* &\* \+@all/)
      })
    }
    await b.close()
    assert.equal(await srv.command('GET', KEYS.schema), null, 'nothing was written')
  })

  it('refuses a Redis that hides CONFIG unless MAILKEY_REDIS_PERSISTENCE=verified', async () => {
    const srv = await startRedis({ appendonly: true, appendfsync: 'always', config: ['rename-command CONFIG ""'] })
    servers.push(srv)
    const b = backendOn(srv)
    await rejects(b.checkSchema(), (e) => {
      assert.ok(e instanceof ConfigError, String(e))
      assert.match(e.message, /does not let mailkey read its settings/)
      assert.match(String((e as ConfigError).hint), /MAILKEY_REDIS_PERSISTENCE=verified/)
    })
    await b.close()
    const v = backendOn(srv, { MAILKEY_REDIS_PERSISTENCE: 'verified' })
    assert.deepEqual(await v.init(), { from: 0, to: 1 })
    await v.close()
  })
})
