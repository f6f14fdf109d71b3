// Fleets on a shared PostgreSQL store (issue 13, docs/adr/0011): the fleet cases of
// test/harness/fleet-cases.ts (sign-in on one host works on all, storms of 2, 8 and 32 hosts cost
// one refresh, no refresh token presented twice, nothing printed in the clear).
import { describe } from 'node:test'
import pg from 'pg'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT } from '../harness/postgres.js'
import { fleetCases } from '../harness/fleet-cases.js'

if (!postgresAvailable() && process.env.CI) throw new Error(`the fleet tests need PostgreSQL: ${POSTGRES_INSTALL_HINT}`)

describe('fleet on PostgreSQL', { skip: !postgresAvailable() && 'PostgreSQL missing' }, () => {
  fleetCases({
    noSchema: /no mailkey tables yet/,
    async start() {
      const pgServer = await startPostgres()
      return {
        url: pgServer.url,
        env: () => pgServer.env(),
        password: pgServer.password,
        close: () => pgServer.close(),
        async rowText(id) {
          const db = new pg.Client(pgServer.urlWithPassword)
          await db.connect()
          const row = await db
            .query(`SELECT t::text AS text FROM mailkey_accounts t WHERE id = $1`, [id])
            .finally(() => db.end())
          return String(row.rows[0]?.text)
        },
      }
    },
  })
})
