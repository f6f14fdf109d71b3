// Crash semantics of the shared store on Redis (issue 13, docs/adr/0011): the same crash cases as on
// PostgreSQL (test/harness/fleet-crash-cases.ts), on a redis-server with appendonly yes and
// appendfsync always (so a kill -9 loses nothing it acknowledged), the password in REDISCLI_AUTH;
// the store's refresh log read from the stream mailkey:log with XRANGE.
import { describe } from 'node:test'
import { redisAvailable, startRedis, REDIS_INSTALL_HINT, type RespValue } from '../harness/redis.js'
import { fleetCrashCases } from '../harness/fleet-crash-cases.js'
import { KEYS } from '../../src/store/shared/redis.js'

if (!redisAvailable() && process.env.CI) throw new Error(`the fleet tests need redis-server: ${REDIS_INSTALL_HINT}`)

/** The `event` field of each XRANGE entry ([id, [field, value, ...]]). */
function eventNames(entries: RespValue): string[] {
  return (entries as [string, string[]][]).map(([, fields]) => String(fields[fields.indexOf('event') + 1]))
}

describe('fleet crashes on Redis', { skip: !redisAvailable() && 'redis-server missing' }, () => {
  fleetCrashCases({
    unavailable: /shared store redis:\/\/mailkey@127\.0\.0\.1:\d+ is unavailable/,
    async start() {
      const redis = await startRedis({ appendonly: true, appendfsync: 'always' })
      return {
        url: redis.url,
        env: () => ({ REDISCLI_AUTH: redis.password }),
        port: redis.port,
        password: redis.password,
        kill: () => redis.kill(),
        start: () => redis.start(),
        close: () => redis.close(),
        events: async () => eventNames(await redis.command('XRANGE', KEYS.log, '-', '+')),
      }
    },
  })
})
