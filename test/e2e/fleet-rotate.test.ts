// `mailkey store rotate-key` on a shared PostgreSQL store (issue 13): a new store key in three steps
// while hosts keep working with whatever key file they have: --prepare adds a key that opens but
// does not seal; rotate-key makes it seal and seals every record again; a host still on the older
// file keeps sealing with the old key, which everyone still opens; --finish seals those again and
// drops the old key. A host left with only the old key is told which key it lacks.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { copyFile, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { startOAuthServer, type LabServer } from '../harness/oauth-server.js'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT, type PgServer } from '../harness/postgres.js'
import { makeFleet, signInShared, type FleetStore, type Host } from '../harness/fleet.js'
import { noteSecrets } from '../harness/cli.js'
import { openSharedStore } from '../../src/store/shared/open-shared.js'
import type { AccountRecord } from '../../src/domain/account.js'

if (!postgresAvailable() && process.env.CI) throw new Error(`the fleet tests need PostgreSQL: ${POSTGRES_INSTALL_HINT}`)

const ACCOUNTS = ['rot1@example.test', 'rot2@example.test']

describe('store rotate-key on a shared store', { skip: !postgresAvailable() && 'PostgreSQL missing' }, () => {
  let pg: PgServer
  let lab: LabServer
  let fleet: FleetStore
  let a: Host
  let b: Host
  let old: Host
  const keyOf = (h: Host): string => h.env.MAILKEY_STORE_KEY_FILE as string

  /** a host with its own copy of the key file as it is now */
  async function hostWithCopy(name: string): Promise<Host> {
    const h = await fleet.host(name)
    const copy = join(h.home.dir, 'store.key')
    await copyFile(fleet.keyFile, copy)
    h.env.MAILKEY_STORE_KEY_FILE = copy
    return h
  }
  /** the record as host `h` opens it (its own key file) */
  async function recordOn(h: Host, email: string): Promise<AccountRecord | undefined> {
    const store = await openSharedStore({ env: h.env, url: h.env.MAILKEY_STORE_URL as string })
    try {
      return await store.read(email)
    } finally {
      await store.close()
    }
  }
  const kids = async (): Promise<string[]> =>
    (
      await pg.query<{ kid: string }>(`SELECT sealed->>'kid' AS kid FROM mailkey_accounts ORDER BY id`, [], 'mailkey')
    ).rows.map((r) => r.kid)

  before(async () => {
    ;[pg, lab] = await Promise.all([startPostgres(), startOAuthServer({ accessTokenTtlSec: 600, deviceInterval: 1 })])
    fleet = await makeFleet(pg)
    ;[a, b, old] = await Promise.all([hostWithCopy('a'), hostWithCopy('b'), hostWithCopy('old')])
    const init = await a.cli(['store', 'init'])
    assert.equal(init.code, 0, init.stderr)
    for (const email of ACCOUNTS) {
      const rec = await signInShared(lab, a, fleet, email)
      await noteSecrets(rec.grant?.accessToken, rec.grant?.refreshToken)
    }
  })
  after(async () => {
    await fleet?.cleanup()
    await Promise.all([pg?.close(), lab?.close()])
  })

  it('rotates with every host working at every step', async () => {
    const [k0] = await kids()
    const prep = await a.cli(['store', 'rotate-key', '--prepare'])
    assert.equal(prep.code, 0, prep.stderr)
    const k1 = /new key (k[0-9a-f]{12})/.exec(prep.stderr)?.[1]
    assert.ok(k1 && k1 !== k0, prep.stderr)
    assert.equal((await stat(keyOf(a))).mode & 0o777, 0o600)
    assert.deepEqual(await kids(), [k0, k0], 'prepare seals nothing')
    await copyFile(keyOf(a), keyOf(b)) // the file reaches host b

    const rot = await a.cli(['store', 'rotate-key'])
    assert.equal(rot.code, 0, rot.stderr)
    assert.match(rot.stderr, /2 account\(s\) sealed again/)
    assert.deepEqual(await kids(), [k1, k1])
    const onB = await b.cli(['token', ACCOUNTS[0] as string])
    assert.equal(onB.code, 0, 'a host with the prepared file opens the new seals')
    // host b still has the prepared file (old key first): its writes seal with the old key
    const forced = await b.cli(['token', ACCOUNTS[1] as string, '--force-refresh'])
    assert.equal(forced.code, 0, forced.stderr)
    assert.deepEqual(await kids(), [k1, k0])
    const rec = await recordOn(b, ACCOUNTS[1] as string)
    await noteSecrets(rec?.grant?.accessToken, rec?.grant?.refreshToken)

    const fin = await a.cli(['store', 'rotate-key', '--finish'])
    assert.equal(fin.code, 0, fin.stderr)
    assert.match(fin.stderr, new RegExp(`older key\\(s\\) ${k0} left`))
    assert.deepEqual(await kids(), [k1, k1])
    assert.equal((await readFile(keyOf(a), 'utf8')).split('\n').filter((l) => l && !l.startsWith('#')).length, 1)

    const stale = await old.cli(['token', ACCOUNTS[0] as string])
    assert.equal(stale.code, 74, stale.stderr)
    assert.match(stale.stderr, new RegExp(`sealed with key ${k1}, which the key file .* does not hold`))
    for (const email of ACCOUNTS) {
      const t = await a.cli(['token', email])
      assert.equal(t.code, 0, t.stderr)
      const r = await recordOn(a, email)
      assert.ok(await lab.refreshTokenAlive(r?.grant?.refreshToken as string), `${email}: the grant survived`)
    }
  })
})
