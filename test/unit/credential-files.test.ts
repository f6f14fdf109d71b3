// Secret files handed over as systemd credentials (contrib/systemd/mailkey-serve.service): systemd
// writes them 0400 and lets the service's user read them through an ACL, so stat shows 0440. The
// store key and a pgpass file are accepted with that mode inside $CREDENTIALS_DIRECTORY only;
// anywhere else, and with any write or other bit, they are still refused.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { privateMode } from '../../src/store/shared/private-file.js'
import { pgpassLookup } from '../../src/store/shared/pg-connect.js'
import { loadKeyRing, newKeyLine } from '../../src/store/shared/store-key.js'
import { ERR } from '../../src/errors.js'

it('the rule: group read only for a file directly in the credentials directory', () => {
  const env = { CREDENTIALS_DIRECTORY: '/run/credentials/mailkey-serve.service' }
  const cred = '/run/credentials/mailkey-serve.service/mailkey-pgpass'
  assert.equal(privateMode(0o100600, '/etc/mailkey/pgpass', {}), true)
  assert.equal(privateMode(0o100440, '/etc/mailkey/pgpass', env), false)
  assert.equal(privateMode(0o100440, cred, env), true)
  assert.equal(privateMode(0o100440, cred, {}), false, 'no credentials directory: the usual rule')
  assert.equal(privateMode(0o100460, cred, env), false, 'group write')
  assert.equal(privateMode(0o100444, cred, env), false, 'others')
  assert.equal(privateMode(0o100440, '/run/credentials/mailkey-serve.service/sub/x', env), false)
  assert.equal(privateMode(0o100440, cred, { CREDENTIALS_DIRECTORY: 'relative' }), false)
})

it('the store key and a pgpass file from a credentials directory, mode 0440', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailkey-creds-'))
  try {
    const creds = join(dir, 'credentials')
    await mkdir(creds, { mode: 0o500 })
    const key = join(creds, 'mailkey-store-key')
    const pgpass = join(creds, 'mailkey-pgpass')
    await chmod(creds, 0o700)
    await writeFile(key, newKeyLine() + '\n', { mode: 0o440 })
    await writeFile(pgpass, 'db.example:5432:mk:m:from-credential\n', { mode: 0o440 })
    await chmod(key, 0o440)
    await chmod(pgpass, 0o440)
    const env = { CREDENTIALS_DIRECTORY: creds }
    const u = new URL('postgres://m@db.example/mk')
    assert.equal(pgpassLookup(u, { ...env, PGPASSFILE: pgpass }), 'from-credential')
    assert.equal(pgpassLookup(u, { PGPASSFILE: pgpass }), undefined, 'outside a service: refused')
    assert.equal((await loadKeyRing(key, 'the store', env)).all.length, 1)
    await assert.rejects(loadKeyRing(key, 'the store', {}), (e: { code?: string }) => e.code === ERR.STORE_PERMISSIONS)
    await chmod(key, 0o444)
    await assert.rejects(loadKeyRing(key, 'the store', env), (e: { code?: string }) => e.code === ERR.STORE_PERMISSIONS)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
