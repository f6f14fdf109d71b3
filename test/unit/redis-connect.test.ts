// Redis store connection options and error mapping (store/shared/redis-connect.ts), without a server:
// TLS for rediss://, plain redis:// only on loopback, the password from the URL else REDISCLI_AUTH,
// the database number, the timeouts, and which failures are transient, configuration or I/O.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ErrorReply } from '@redis/client'
import { checkAofReplay, checkPersistence, redisError, redisOptions } from '../../src/store/shared/redis-connect.js'
import { ConfigError, ERR, StoreError } from '../../src/errors.js'

const L = 'redis://mailkey@db'

describe('redisOptions', () => {
  it('uses TLS for rediss://, with the host name for SNI', () => {
    const o = redisOptions('rediss://mailkey@db.example.test:6380/2', L, { REDISCLI_AUTH: 'pw' })
    assert.deepEqual(
      { tls: o.socket?.tls, host: (o.socket as { host?: string }).host, port: (o.socket as { port?: number }).port },
      { tls: true, host: 'db.example.test', port: 6380 },
    )
    assert.equal((o.socket as { servername?: string }).servername, 'db.example.test')
    assert.equal(o.database, 2)
    assert.equal(o.username, 'mailkey')
    assert.equal(o.password, 'pw')
    assert.equal(o.socket?.reconnectStrategy, false)
    assert.ok((o.socket?.connectTimeout ?? 0) > 0 && (o.commandOptions?.timeout ?? 0) > 0)
  })

  it('prefers the password in the URL, and plain redis:// is fine on loopback', () => {
    const o = redisOptions('redis://u:s%40cret@127.0.0.1:7000', L, { REDISCLI_AUTH: 'env' })
    assert.equal(o.password, 's@cret')
    assert.equal(o.socket?.tls, false)
    assert.equal(redisOptions('redis://localhost', L, {}).password, undefined)
  })

  it('refuses plain redis:// off loopback, and a path that is not a database number', () => {
    assert.throws(
      () => redisOptions('redis://db.example.test:6379', L, {}),
      (e: Error) => e instanceof ConfigError && /without TLS/.test(e.message),
    )
    assert.throws(() => redisOptions('redis://127.0.0.1/x', L, {}), ConfigError)
  })
})

describe('redisError', () => {
  it('maps auth refusals to configuration, busy servers and broken connections to unavailable', () => {
    assert.ok(redisError(new ErrorReply('WRONGPASS invalid username-password pair'), L, 'read') instanceof ConfigError)
    const busy = redisError(new ErrorReply('LOADING Redis is loading the dataset in memory'), L, 'read')
    assert.ok(busy instanceof StoreError && busy.code === ERR.STORE_UNAVAILABLE)
    const gone = redisError(
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      L,
      'read',
    )
    assert.ok(gone instanceof StoreError && gone.code === ERR.STORE_UNAVAILABLE && gone.message.includes(L))
    const other = redisError(new ErrorReply('ERR something else'), L, 'read')
    assert.ok(other instanceof StoreError && other.code === ERR.STORE_IO)
  })
})

describe('checkPersistence', () => {
  const settings = (m: Record<string, string>) => async (name: string) => m[name]
  it('accepts appendonly yes with appendfsync always, and refuses less, saying what to set', async () => {
    await checkPersistence(
      settings({ appendonly: 'yes', appendfsync: 'always', 'maxmemory-policy': 'noeviction' }),
      L,
      {},
    )
    await assert.rejects(
      checkPersistence(
        settings({ appendonly: 'yes', appendfsync: 'everysec', 'maxmemory-policy': 'noeviction' }),
        L,
        {},
      ),
      /set appendfsync always/,
    )
  })
  it('refuses when CONFIG is refused, unless MAILKEY_REDIS_PERSISTENCE=verified', async () => {
    const refused = async (): Promise<string> => {
      throw new ErrorReply("ERR unknown command 'CONFIG'")
    }
    await assert.rejects(checkPersistence(refused, L, {}), /does not let mailkey read its settings/)
    await checkPersistence(refused, L, { MAILKEY_REDIS_PERSISTENCE: 'verified' })
  })
})

describe('checkAofReplay', () => {
  const writes = [
    ['HSET', 'k', 'f', 'v'],
    ['XADD', 'log', '*', 'f', 'v'],
  ]
  it("accepts a default user allowed mailkey's writes, refuses one that is not (its AOF replay drops them)", async () => {
    await checkAofReplay(async () => 'OK', writes, L, {})
    const noXadd = async (cmd: string[]): Promise<string> =>
      cmd[0] === 'XADD' ? "This user has no permissions to run the 'xadd' command" : 'OK'
    await assert.rejects(
      checkAofReplay(noXadd, writes, L, {}),
      (e: unknown) =>
        e instanceof ConfigError &&
        /drop mailkey's writes when it reads its AOF back/.test(e.message) &&
        /may not run XADD/.test(e.message) &&
        /user default off ~\* &\* \+@all/.test(e.message),
    )
  })
  it('skips a Redis without ACL DRYRUN; a refused one needs MAILKEY_REDIS_PERSISTENCE=verified', async () => {
    const old = async (): Promise<string> => {
      throw new ErrorReply("ERR unknown subcommand 'DRYRUN'. Try ACL HELP.")
    }
    await checkAofReplay(old, writes, L, {})
    const refused = async (): Promise<string> => {
      throw new ErrorReply("NOPERM User mailkey has no permissions to run the 'acl|dryrun' command")
    }
    await assert.rejects(checkAofReplay(refused, writes, L, {}), /does not let mailkey check its ACL/)
    await checkAofReplay(refused, writes, L, { MAILKEY_REDIS_PERSISTENCE: 'verified' })
  })
})
