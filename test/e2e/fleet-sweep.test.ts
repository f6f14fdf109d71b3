// `mailkey sweep` on a shared store (issue 13: many accounts): grants near their idle limit are
// refreshed once each however many hosts sweep at the same time, a pass can be capped (the rest
// is said to wait for the next), and accounts that need a sign-in make the sweep exit 77 with the
// command. Hosts share config.toml (the provider's idle limit) and the PostgreSQL store.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startOAuthServer, LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES, type LabServer } from '../harness/oauth-server.js'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT, type PgServer } from '../harness/postgres.js'
import { makeFleet, signInShared, type FleetStore, type Host } from '../harness/fleet.js'
import { noteSecrets } from '../harness/cli.js'
import { ERR } from '../../src/errors.js'

if (!postgresAvailable() && process.env.CI) throw new Error(`the fleet tests need PostgreSQL: ${POSTGRES_INSTALL_HINT}`)

const DAY = 86_400_000
const ACCOUNTS = ['ida1@example.test', 'ida2@example.test', 'ida3@example.test']

describe('mailkey sweep on a shared store', { skip: !postgresAvailable() && 'PostgreSQL missing' }, () => {
  let pg: PgServer
  let lab: LabServer
  let fleet: FleetStore
  let hosts: Host[]

  async function host(name: string): Promise<Host> {
    const h = await fleet.host(name)
    const dir = join(h.env.XDG_CONFIG_HOME as string, 'mailkey')
    await mkdir(dir, { recursive: true })
    const provider = [
      '[providers.idle]',
      `issuer = "${lab.issuer}"`,
      `client_id = "${LAB_PUBLIC_CLIENT_ID}"`,
      `scopes = ${JSON.stringify([...MAIL_SCOPES, 'offline_access'])}`,
      'flows = ["device"]',
      'refresh_token_idle_days = 10',
      '',
    ].join('\n')
    await writeFile(join(dir, 'config.toml'), provider)
    return h
  }

  /** the grant unused for `days` (as if nobody asked for a token since) */
  async function age(email: string, days: number): Promise<void> {
    const store = await fleet.open()
    const rec = await store.read(email)
    assert.ok(rec?.grant)
    const at = Date.now() - days * DAY
    await store.write({ ...rec, grant: { ...rec.grant, refreshedAt: at, refreshTokenAt: at, grantedAt: at } })
  }

  before(async () => {
    ;[pg, lab] = await Promise.all([startPostgres(), startOAuthServer({ accessTokenTtlSec: 600, deviceInterval: 1 })])
    fleet = await makeFleet(pg)
    hosts = await Promise.all(['a', 'b', 'c'].map(host))
    const init = await hosts[0]!.cli(['store', 'init'])
    assert.equal(init.code, 0, init.stderr)
    for (const email of ACCOUNTS) {
      const rec = await signInShared(lab, hosts[0]!, fleet, email, ['--provider', 'idle'])
      await noteSecrets(rec.grant?.accessToken, rec.grant?.refreshToken)
    }
  })
  after(async () => {
    await fleet?.cleanup()
    await Promise.all([pg?.close(), lab?.close()])
  })

  it('two hosts sweeping at once refresh each idle grant once', async () => {
    for (const email of ACCOUNTS) await age(email, 8)
    const from = lab.refreshLog.length
    const [b, c] = await Promise.all([
      hosts[1]!.cli(['sweep', '--gap-ms', '0']),
      hosts[2]!.cli(['sweep', '--gap-ms', '0']),
    ])
    assert.equal(b?.code, 0, b?.stderr)
    assert.equal(c?.code, 0, c?.stderr)
    assert.equal(lab.refreshLog.length - from, ACCOUNTS.length, 'one refresh per account for the fleet')
    assert.match(`${b?.stderr}${c?.stderr}`, /ida1@example\.test: kept alive/)
    for (const email of ACCOUNTS) {
      const rec = await fleet.record(email)
      await noteSecrets(rec?.grant?.accessToken, rec?.grant?.refreshToken)
      assert.ok((rec?.grant?.refreshedAt ?? 0) > Date.now() - DAY, `${email} was refreshed`)
    }
    const again = await hosts[1]!.cli(['sweep'])
    assert.equal(again.code, 0, again.stderr)
    assert.equal(lab.refreshLog.length - from, ACCOUNTS.length, 'nothing due: no refresh')
  })

  it('a capped pass refreshes that many and says the rest waits', async () => {
    for (const email of ACCOUNTS) await age(email, 8)
    const from = lab.refreshLog.length
    const r = await hosts[1]!.cli(['sweep', '--max-refreshes', '1', '--gap-ms', '0'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(lab.refreshLog.length - from, 1)
    assert.equal((r.stderr.match(/left for the next pass/g) ?? []).length, 2)
  })

  it('an account that needs a sign-in makes the sweep exit 77 with the command', async () => {
    const store = await fleet.open()
    const rec = await store.read(ACCOUNTS[2]!)
    assert.ok(rec)
    const lastError = { code: ERR.REAUTH_REQUIRED, message: 'the grant was revoked', transient: false, at: Date.now() }
    await store.write({ ...rec, state: 'reauth', lastError })
    const r = await hosts[2]!.cli(['sweep', '--json'])
    assert.equal(r.code, 77, r.stderr)
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { account: string; reauth_message?: string })
    const dead = events.find((e) => e.account === ACCOUNTS[2])
    assert.match(dead?.reauth_message ?? '', /run "mailkey add ida3@example\.test"/)
  })
})
