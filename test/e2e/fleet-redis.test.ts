// Fleets on a shared Redis store (issue 13, docs/adr/0011): the same fleet cases as on PostgreSQL
// (test/harness/fleet-cases.ts), on a redis-server with appendonly yes and appendfsync always, the
// password in REDISCLI_AUTH; "sealed at rest" reads the account's hash with HGETALL.
import { describe } from 'node:test'
import { redisAvailable, startRedis, REDIS_INSTALL_HINT } from '../harness/redis.js'
import { fleetCases } from '../harness/fleet-cases.js'
import { KEYS } from '../../src/store/shared/redis.js'

if (!redisAvailable() && process.env.CI) throw new Error(`the fleet tests need redis-server: ${REDIS_INSTALL_HINT}`)

describe('fleet on Redis', { skip: !redisAvailable() && 'redis-server missing' }, () => {
  fleetCases({
    noSchema: /no mailkey schema yet/,
    async start() {
      const redis = await startRedis({ appendonly: true, appendfsync: 'always' })
      return {
        url: redis.url,
        env: () => ({ REDISCLI_AUTH: redis.password }),
        password: redis.password,
        close: () => redis.close(),
        rowText: async (id) => JSON.stringify(await redis.command('HGETALL', KEYS.account(id))),
      }
    },
  })
})
