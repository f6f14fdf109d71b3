// store/shared/pg-connect.ts: connecting as PostgreSQL users expect. TLS is verified by default
// when the server is not on loopback (libpq would send everything in the clear), an explicit
// sslmode is the user's; the password comes from the URL, PGPASSWORD, or a private pgpass file
// (never from one others can read); failures map to transient / configuration / schema errors.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pgError, pgpassLookup, poolOptions } from '../../src/store/shared/pg-connect.js'
import { ConfigError, ERR, StoreError } from '../../src/errors.js'

it('verified TLS by default off loopback; none on loopback; an explicit sslmode wins', () => {
  assert.deepEqual(poolOptions('postgres://m@db.example:5432/mk', {}).ssl, { rejectUnauthorized: true })
  assert.equal(poolOptions('postgres://m@127.0.0.1:5432/mk', {}).ssl, undefined)
  assert.equal(poolOptions('postgres://m@[::1]:5432/mk', {}).ssl, undefined)
  assert.equal(poolOptions('postgres://m@db.example/mk?sslmode=disable', {}).ssl, undefined)
})

it('the password from PGPASSWORD rides in the connection string, never in the label', () => {
  const o = poolOptions('postgres://m@db.example/mk', { PGPASSWORD: 'pw-from-env-123' })
  assert.equal(new URL(o.connectionString).password, 'pw-from-env-123')
  const url = poolOptions('postgres://m:in%20url@db.example/mk', { PGPASSWORD: 'other' })
  assert.equal(decodeURIComponent(new URL(url.connectionString).password), 'in url', 'the URL wins')
})

it('pgpass: the first matching line, wildcards and escapes; a file others can read is ignored', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailkey-pgpass-'))
  try {
    const file = join(dir, 'pgpass')
    await writeFile(file, '# comment\nother:5432:*:m:nope\ndb.example:*:mk:m:se\\:cret\n*:*:*:*:fallback\n', {
      mode: 0o600,
    })
    const u = new URL('postgres://m@db.example/mk')
    assert.equal(pgpassLookup(u, { PGPASSFILE: file }), 'se:cret')
    assert.equal(pgpassLookup(new URL('postgres://x@else/db'), { PGPASSFILE: file }), 'fallback')
    await writeFile(join(dir, 'open'), '*:*:*:*:leaked\n', { mode: 0o644 })
    assert.equal(pgpassLookup(u, { PGPASSFILE: join(dir, 'open') }), undefined)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

it('errors: down is transient, refused credentials and TLS are configuration, no tables names store init', () => {
  const label = 'postgres://m@db.example/mk'
  const down = pgError(
    Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    label,
    'read',
  )
  assert.ok(down instanceof StoreError && down.code === ERR.STORE_UNAVAILABLE && down.transient && down.exitCode === 75)
  const shutdown = pgError(Object.assign(new Error('terminating connection'), { code: '57P01' }), label, 'read')
  assert.equal((shutdown as StoreError).code, ERR.STORE_UNAVAILABLE)
  const auth = pgError(Object.assign(new Error('password authentication failed'), { code: '28P01' }), label, 'read')
  assert.ok(auth instanceof ConfigError && !auth.transient)
  const tls = pgError(new Error('self-signed certificate in certificate chain'), label, 'read')
  assert.ok(tls instanceof ConfigError && /sslrootcert/.test(tls.hint ?? ''))
  const bug = pgError(new TypeError('Cannot read properties of undefined'), label, 'read')
  assert.ok(bug instanceof StoreError && bug.code === ERR.STORE_IO && !bug.transient, 'a bug is not an outage')
  const serial = pgError(Object.assign(new Error('could not serialize access'), { code: '40001' }), label, 'write')
  assert.equal((serial as StoreError).code, ERR.STORE_UNAVAILABLE, 'a serialization failure is tried again')
  const schema = pgError(Object.assign(new Error('relation does not exist'), { code: '42P01' }), label, 'read')
  assert.ok(schema instanceof StoreError && schema.code === ERR.STORE_SCHEMA && schema.exitCode === 78)
  assert.match(schema.hint ?? '', /mailkey store init/)
})
