// Crash semantics of the shared store on PostgreSQL (issue 13, docs/adr/0011): the crash cases of
// test/harness/fleet-crash-cases.ts (a host killed or paused mid-refresh, the database killed and
// restarted, a host cut off from it); the store's refresh log read from mailkey_refresh_log.
import { describe } from 'node:test'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT } from '../harness/postgres.js'
import { fleetCrashCases } from '../harness/fleet-crash-cases.js'

if (!postgresAvailable() && process.env.CI) throw new Error(`the fleet tests need PostgreSQL: ${POSTGRES_INSTALL_HINT}`)

describe('fleet crashes on PostgreSQL', { skip: !postgresAvailable() && 'PostgreSQL missing' }, () => {
  fleetCrashCases({
    unavailable: /shared store postgres:\/\/mailkey@127\.0\.0\.1:\d+\/mailkey is unavailable/,
    async start() {
      const pg = await startPostgres()
      return {
        url: pg.url,
        env: () => pg.env(),
        port: pg.port,
        password: pg.password,
        kill: () => pg.kill(),
        start: () => pg.start(),
        close: () => pg.close(),
        async events() {
          const r = await pg.query<{ event: string }>(
            `SELECT event FROM mailkey_refresh_log ORDER BY seq`,
            [],
            'mailkey',
          )
          return r.rows.map((e) => e.event)
        },
      }
    },
  })
})
