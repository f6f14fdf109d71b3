// Setting up a fleet on PostgreSQL (issue 13): moving a host's existing accounts into the shared
// store without signing in again (`mailkey store migrate --to postgres://…`), and reaching the
// database over TLS as its users expect (libpq's sslmode=verify-full and sslrootcert in the URL;
// an unknown CA is a configuration error that says what to set, exit 78).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startOAuthServer, type LabServer } from '../harness/oauth-server.js'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT, type PgServer } from '../harness/postgres.js'
import { makeFleet, type FleetStore } from '../harness/fleet.js'
import { labFlags, signIn } from '../harness/sign-in.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { findLeaks, noteSecrets, runCli, transcript } from '../harness/cli.js'
import { makeTestCA, type TestCA } from '../harness/certs.js'

if (!postgresAvailable() && process.env.CI) throw new Error(`the fleet tests need PostgreSQL: ${POSTGRES_INSTALL_HINT}`)

const EMAIL = 'mover@example.test'

describe('setting up a fleet on PostgreSQL', { skip: !postgresAvailable() && 'PostgreSQL missing' }, () => {
  let pg: PgServer
  let lab: LabServer
  let fleet: FleetStore
  let local: TmpHome
  let certDir: string
  let ca: TestCA
  const secrets: string[] = []

  before(async () => {
    certDir = await mkdtemp(join(tmpdir(), 'mailkey-fleet-ca-'))
    ca = await makeTestCA(certDir)
    ;[pg, lab] = await Promise.all([
      startPostgres({ tls: { cert: ca.certFile, key: ca.keyFile } }),
      startOAuthServer({ accessTokenTtlSec: 600, deviceInterval: 1 }),
    ])
    fleet = await makeFleet(pg)
    local = await makeTmpHome()
    secrets.push(pg.password)
  })
  after(async () => {
    await fleet?.cleanup()
    await local?.cleanup()
    await Promise.all([pg?.close(), lab?.close()])
    await rm(certDir, { recursive: true, force: true })
  })

  it('store migrate --to moves a signed-in account into the shared store, no new sign-in', async () => {
    const signed = await signIn(lab, local.env, EMAIL, labFlags(lab), secrets)
    const a = await fleet.host('a')
    assert.equal((await a.cli(['store', 'init'])).code, 0)
    const env = { ...local.env, ...pg.env(), MAILKEY_STORE_KEY_FILE: fleet.keyFile }
    const before = lab.refreshLog.length
    const moved = await runCli(['store', 'migrate', '--to', pg.url, '--json'], env)
    assert.equal(moved.code, 0, moved.stderr)
    assert.match(moved.stderr, /1 account\(s\) moved to postgres:\/\/mailkey@127\.0\.0\.1:\d+\/mailkey/)
    assert.match(moved.stderr, /Set MAILKEY_STORE_URL/)
    assert.equal(existsSync(recordFile(local.env, EMAIL)), false, 'the local copy is gone: one live refresh token')
    const rec = await fleet.record(EMAIL)
    assert.equal(rec?.grant?.refreshToken, signed.refreshToken, 'the same grant, not a new sign-in')
    const b = await fleet.host('b')
    const tok = await b.cli(['token', EMAIL])
    assert.equal(tok.code, 0, tok.stderr)
    assert.equal(tok.stdout.trim(), signed.accessToken)
    assert.equal(lab.refreshLog.length, before, 'nothing was refreshed to move it')
    const again = await runCli(['store', 'migrate', '--to', pg.url], env)
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stderr, /0 account\(s\) moved/)
  })

  it('refuses a store URL with a password on the command line', async () => {
    const url = new URL(pg.url)
    url.password = 'on-the-command-line'
    const r = await runCli(['store', 'migrate', '--to', url.href], { ...local.env })
    assert.equal(r.code, 64, r.stderr)
    assert.match(r.stderr, /holds a password/)
    assert.match(r.stderr, /PGPASSWORD/)
    assert.ok(!r.stderr.includes('on-the-command-line'))
  })

  it('reaches PostgreSQL over verified TLS; an unknown CA is refused with what to set', async () => {
    const tls = `${pg.url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.caFile)}`
    const good = await fleet.host('tls', { MAILKEY_STORE_URL: tls })
    const r = await good.cli(['token', EMAIL])
    assert.equal(r.code, 0, r.stderr)
    const strange = await fleet.host('strange', { MAILKEY_STORE_URL: `${pg.url}?sslmode=verify-full` })
    const bad = await strange.cli(['token', EMAIL])
    assert.equal(bad.code, 78, bad.stderr)
    assert.match(bad.stderr, /cannot set up TLS to the shared store postgres:\/\/mailkey@127\.0\.0\.1:\d+\/mailkey/)
    assert.match(bad.stderr, /sslrootcert/)
    assert.ok(!bad.stderr.includes(pg.password))
    const rec = await fleet.record(EMAIL)
    await noteSecrets(rec?.grant?.accessToken, rec?.grant?.refreshToken)
    secrets.push(rec?.grant?.accessToken as string, rec?.grant?.refreshToken as string)
  })

  it('prints no secret', () => {
    const leaks = findLeaks(
      transcript.flatMap((t) => (t.args[0] === 'token' ? [t.stderr] : [t.stdout, t.stderr])),
      secrets,
    )
    assert.deepEqual(leaks, [])
  })
})
