// Tests of the shared-store harness itself (issue 13): a real PostgreSQL and a real Redis started
// on loopback, crashed with SIGKILL and started again (committed data must survive, uncommitted
// must not), and the lab OAuth server's refresh log and held refresh answers. Without PostgreSQL or
// redis-server the engine tests skip with the install hint, or fail when CI is set. Tokens and
// passwords never appear in assertion messages: secret comparisons go through assert.ok(boolean).
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { TestContext } from 'node:test'
import * as oauth from 'oauth4webapi'
import pg from 'pg'
import { makeTestCA } from '../harness/certs.js'
import { noteSecrets } from '../harness/cli.js'
import { LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES, startOAuthServer } from '../harness/oauth-server.js'
import type { LabServer } from '../harness/oauth-server.js'
import { POSTGRES_INSTALL_HINT, postgresAvailable, startPostgres } from '../harness/postgres.js'
import type { PgServer } from '../harness/postgres.js'
import { REDIS_INSTALL_HINT, redisAvailable, startRedis } from '../harness/redis.js'

const insecure = { [oauth.allowInsecureRequests]: true } as const
const client: oauth.Client = { client_id: LAB_PUBLIC_CLIENT_ID }
const sha256 = (v: string): string => createHash('sha256').update(v).digest('hex')

/** true when the tool is there; else skips the test, or fails it in CI. */
function needTool(t: TestContext, available: boolean, message: string): boolean {
  if (available) return true
  if (process.env.CI) assert.fail(`CI must have it: ${message}`)
  console.error(`\n*** harness-engines: SKIPPED: ${message} ***\n`)
  t.skip(message)
  return false
}

/** A connection as the role `mailkey`, with its password (the URL has none). */
async function asMailkey(server: PgServer, password = server.password): Promise<pg.Client> {
  // pg lets a connectionString override `password` (with undefined when the URL has none): give fields
  const { host, port, database, user } = server
  const c = new pg.Client({ host, port, database, user, password, connectionTimeoutMillis: 3000 })
  c.on('error', () => undefined) // the server is killed under it in these tests
  await c.connect()
  return c
}

test('postgres: role and database mailkey, password auth, the durable defaults kept', async (t) => {
  if (!needTool(t, postgresAvailable(), `PostgreSQL is missing (${POSTGRES_INSTALL_HINT})`)) return
  const server = await startPostgres({ durable: true })
  t.after(() => server.close())
  await noteSecrets(server.password, server.superUrl)
  assert.equal(server.url, `postgres://mailkey@127.0.0.1:${server.port}/mailkey`)
  assert.ok(!server.url.includes(server.password), 'url has no password')
  assert.ok(server.urlWithPassword.includes(server.password), 'urlWithPassword has it')
  const c = await asMailkey(server)
  try {
    const who = await c.query<{ db: string; super: boolean; owner: string }>(
      `SELECT current_database() AS db, r.rolsuper AS super, pg_get_userbyid(d.datdba) AS owner
         FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = current_database()`,
    )
    assert.deepEqual(who.rows, [{ db: 'mailkey', super: false, owner: 'mailkey' }])
  } finally {
    await c.end()
  }
  await assert.rejects(asMailkey(server, 'not-the-password'), (e: { code?: string }) => e.code === '28P01')
  const settings = await server.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes',
       'listen_addresses', 'unix_socket_directories', 'password_encryption') ORDER BY name`,
  )
  assert.deepEqual(Object.fromEntries(settings.rows.map((r) => [r.name, r.setting])), {
    fsync: 'on',
    full_page_writes: 'on',
    listen_addresses: '127.0.0.1',
    password_encryption: 'scram-sha-256',
    synchronous_commit: 'on',
    unix_socket_directories: '',
  })
})

test('postgres: kill -9 loses the open transaction, keeps the committed rows; start() on the same port', async (t) => {
  if (!needTool(t, postgresAvailable(), `PostgreSQL is missing (${POSTGRES_INSTALL_HINT})`)) return
  const server = await startPostgres({ durable: true })
  t.after(() => server.close())
  await noteSecrets(server.password, server.superUrl)
  const c = await asMailkey(server)
  await c.query('CREATE TABLE grants (id text PRIMARY KEY, version int NOT NULL)')
  await c.query(`INSERT INTO grants VALUES ('alice', 1), ('bob', 1)`)
  await c.query('BEGIN')
  await c.query(`UPDATE grants SET version = 2 WHERE id = 'alice'`)
  await c.query(`INSERT INTO grants VALUES ('carol', 1)`)

  await server.kill()
  await assert.rejects(c.query('COMMIT'), 'the open connection is dead')
  await assert.rejects(asMailkey(server), /ECONNREFUSED/, 'nothing listens on the port')

  await server.start()
  assert.match(await server.readLog(), /not properly shut down; automatic recovery in progress/, 'a crash, recovered')
  const c2 = await asMailkey(server)
  try {
    const rows = (await c2.query('SELECT id, version FROM grants ORDER BY id')).rows
    assert.deepEqual(rows, [
      { id: 'alice', version: 1 },
      { id: 'bob', version: 1 },
    ])
  } finally {
    await c2.end()
  }
  await server.stop()
  await assert.rejects(server.query('SELECT 1'), /ECONNREFUSED/)
  await server.start()
  assert.match(await server.readLog(), /database system was shut down at/, 'a clean stop this time')
  const c3 = await asMailkey(server)
  try {
    assert.equal((await c3.query('SELECT count(*)::int AS n FROM grants')).rows[0]?.n, 2, 'a clean stop keeps them too')
  } finally {
    await c3.end()
  }
})

test('postgres: the default (durable: false) turns fsync and full_page_writes off, keeps synchronous_commit', async (t) => {
  if (!needTool(t, postgresAvailable(), `PostgreSQL is missing (${POSTGRES_INSTALL_HINT})`)) return
  const server = await startPostgres()
  t.after(() => server.close())
  const settings = await server.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')`,
  )
  assert.deepEqual(Object.fromEntries(settings.rows.map((r) => [r.name, r.setting])), {
    fsync: 'off',
    full_page_writes: 'off',
    synchronous_commit: 'on',
  })
  const dir = server.dir
  await server.close()
  await assert.rejects(
    import('node:fs/promises').then((fs) => fs.stat(dir)),
    /ENOENT/,
    'close() removed the dir',
  )
})

test('postgres: tls serves the given certificate; the client verifies it against the test CA', async (t) => {
  if (!needTool(t, postgresAvailable(), `PostgreSQL is missing (${POSTGRES_INSTALL_HINT})`)) return
  const certDir = await mkdtemp(join(tmpdir(), 'mailkey-pg-certs-'))
  t.after(() => rm(certDir, { recursive: true, force: true }))
  const ca = await makeTestCA(certDir)
  const server = await startPostgres({ tls: { cert: ca.certFile, key: ca.keyFile } })
  t.after(() => server.close())
  const { host, port, database, user, password } = server
  const c = new pg.Client({ host, port, database, user, password, ssl: { ca: ca.caPem } })
  await c.connect()
  try {
    const row = (await c.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0] as { ssl: boolean }
    assert.equal(row.ssl, true)
  } finally {
    await c.end()
  }
  const strange = new pg.Client({ host, port, database, user, password, ssl: { rejectUnauthorized: true } })
  strange.on('error', () => undefined)
  await assert.rejects(strange.connect(), /self-signed|unable to verify|certificate/i, 'an unknown CA is refused')
})

/** What a client without AUTH gets for PING. */
function unauthenticatedPing(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('error', reject)
    s.once('data', (d) => {
      s.destroy()
      resolve(d.toString('latin1').trim())
    })
    s.write('PING\r\n')
  })
}

test('redis: ACL user mailkey, appendfsync always; SET survives kill -9 and start() on the same port', async (t) => {
  if (!needTool(t, redisAvailable(), `redis-server is missing (${REDIS_INSTALL_HINT})`)) return
  const server = await startRedis({ appendonly: true, appendfsync: 'always' })
  t.after(() => server.close())
  await noteSecrets(server.password)
  assert.equal(server.url, `redis://mailkey@127.0.0.1:${server.port}`)
  assert.match(await unauthenticatedPing(server.port), /^-NOAUTH/)
  assert.deepEqual(await server.command('CONFIG', 'GET', 'appendfsync'), ['appendfsync', 'always'])
  assert.deepEqual(await server.command('CONFIG', 'GET', 'save'), ['save', ''])
  assert.deepEqual(await server.command('ACL', 'WHOAMI'), 'mailkey')

  assert.equal(await server.command('SET', 'grant:alice', 'v1'), 'OK')
  assert.equal(await server.command('INCR', 'fence:alice'), 1)
  await server.kill()
  await assert.rejects(server.command('GET', 'grant:alice'), /ECONNREFUSED/)
  await server.start()
  assert.equal(await server.command('GET', 'grant:alice'), 'v1')
  assert.equal(await server.command('INCR', 'fence:alice'), 2)
  await assert.rejects(server.command('NOSUCHCOMMAND'), /unknown command/)
})

test('redis: without appendonly, kill -9 loses everything (the harness really crashes it)', async (t) => {
  if (!needTool(t, redisAvailable(), `redis-server is missing (${REDIS_INSTALL_HINT})`)) return
  const server = await startRedis({ password: 'a-chosen-password-0123' })
  t.after(() => server.close())
  assert.equal(await server.command('SET', 'k', 'v'), 'OK')
  await server.kill()
  await server.start()
  assert.equal(await server.command('GET', 'k'), null)
  await server.stop()
  await server.start()
  assert.equal(await server.command('DBSIZE'), 0)
})

let lab: LabServer
let as: oauth.AuthorizationServer

before(async () => {
  lab = await startOAuthServer()
  const issuer = new URL(lab.issuer)
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure))
})

after(() => lab.close())

/** A fresh grant through the device flow: its refresh token. */
async function grant(login: string): Promise<string> {
  const scope = ['offline_access', ...MAIL_SCOPES].join(' ')
  const res = await oauth.deviceAuthorizationRequest(as, client, oauth.None(), { scope }, insecure)
  const da = await oauth.processDeviceAuthorizationResponse(as, client, res)
  await lab.approveDevice(da.user_code, { login })
  const tokenRes = await oauth.deviceCodeGrantRequest(as, client, oauth.None(), da.device_code, insecure)
  const tokens = await oauth.processDeviceCodeResponse(as, client, tokenRes)
  await noteSecrets(tokens.access_token, tokens.refresh_token)
  assert.ok(tokens.refresh_token, 'the device grant has a refresh token')
  return tokens.refresh_token
}

function refresh(refreshToken: string): Promise<Response> {
  return oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, insecure)
}

test('oauth refreshLog: hashes of the presented and issued tokens, and the reuse that revokes', async () => {
  const rt = await grant('dora@example.test')
  const start = lab.refreshLog.length
  const tokens = await oauth.processRefreshTokenResponse(as, client, await refresh(rt))
  await noteSecrets(tokens.access_token, tokens.refresh_token)
  const entry = lab.refreshLog[start]
  assert.ok(entry, 'one entry for the refresh')
  assert.equal(entry.status, 200)
  assert.equal(entry.presented, sha256(rt))
  assert.equal(entry.issuedRefresh, sha256(tokens.refresh_token ?? ''))
  assert.equal(entry.issuedAccess, sha256(tokens.access_token))
  assert.equal(entry.clientId, LAB_PUBLIC_CLIENT_ID)
  assert.equal(entry.accountId, 'dora@example.test')
  assert.equal(entry.error, undefined)
  assert.ok(entry.grantId && (await lab.grantAlive(entry.grantId)), 'the grant is alive')
  assert.ok(!JSON.stringify(lab.refreshLog).includes(rt), 'no token in the log')

  const reused = await refresh(rt)
  assert.equal(reused.status, 400)
  const second = lab.refreshLog[start + 1]
  assert.deepEqual(
    { status: second?.status, error: second?.error, presented: second?.presented, issued: second?.issuedRefresh },
    { status: 400, error: 'invalid_grant', presented: sha256(rt), issued: undefined },
  )
  assert.equal(await lab.grantAlive(entry.grantId), false, 'reuse revoked the grant')
  assert.equal(lab.refreshLog.length, start + 2)
})

test('oauth holdNextRefreshAnswer: the token is rotated while the client still waits; release, drop', async () => {
  const rt = await grant('erin@example.test')
  const hold = lab.holdNextRefreshAnswer()
  let settled = false
  const pending = refresh(rt).finally(() => (settled = true))
  await hold.held
  assert.equal(await lab.refreshTokenAlive(rt), false, 'the presented token is spent already')
  assert.equal(settled, false, 'the client has no answer while it is held')
  const entry = lab.refreshLog.at(-1)
  assert.ok(entry?.issuedRefresh, 'the answer (and its log entry) exist')
  hold.release()
  const tokens = await oauth.processRefreshTokenResponse(as, client, await pending)
  await noteSecrets(tokens.access_token, tokens.refresh_token)
  const rt2 = tokens.refresh_token ?? ''
  assert.equal(entry.issuedRefresh, sha256(rt2))
  assert.equal(entry.dropped, undefined)
  assert.ok(await lab.refreshTokenAlive(rt2), 'the released token is the live one')

  const drop = lab.holdNextRefreshAnswer()
  const lost = refresh(rt2)
  await drop.held
  drop.drop()
  await assert.rejects(lost, 'the connection is destroyed instead of answered')
  const dropped = lab.refreshLog.at(-1)
  assert.equal(dropped?.presented, sha256(rt2))
  assert.equal(dropped?.dropped, true)
  assert.ok(dropped?.issuedRefresh, 'a token was minted that the client never got')
  assert.equal(await lab.refreshTokenAlive(rt2), false)
})
