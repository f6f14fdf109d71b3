// Local proxy passwords: scrypt hashes in a 0600 file, a per-process cache of verified pairs that
// forgets everything when the file changes.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Secret } from '../../src/core/secret.js'
import { resolvePaths } from '../../src/config/paths.js'
import { FileStore } from '../../src/store/file-store.js'
import { PasswordStore, hashPassword, verifyPassword } from '../../src/proxy/passwords.js'

describe('proxy passwords', () => {
  let dir: string
  let store: PasswordStore
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-pw-'))
    store = new PasswordStore(new FileStore(resolvePaths({ HOME: dir, XDG_STATE_HOME: dir })))
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  it('hashes with scrypt and a random salt; verifies only the right password', async () => {
    const small = { logN: 10, r: 8, p: 1 }
    const a = await hashPassword(new Secret('correct horse'), small)
    const b = await hashPassword(new Secret('correct horse'), small)
    assert.notEqual(a.salt, b.salt)
    assert.notEqual(a.hash, b.hash)
    assert.equal(await verifyPassword(new Secret('correct horse'), a), true)
    assert.equal(await verifyPassword(new Secret('correct horsE'), a), false)
  })

  it('stores only hashes, 0600; a changed file empties the cache of verified passwords', async () => {
    await store.set('Alice@Example.test', new Secret('first password'))
    const text = await readFile(store.path, 'utf8')
    assert.ok(!text.includes('first password'))
    assert.equal((await stat(store.path)).mode & 0o777, 0o600)
    assert.equal(await store.check('alice@example.test', new Secret('first password')), true)
    assert.equal(await store.check('alice@example.test', new Secret('first password')), true, 'cached')
    assert.equal(await store.check('alice@example.test', new Secret('wrong')), false)
    assert.equal(await store.check('nobody@example.test', new Secret('first password')), false)
    await store.set('alice@example.test', new Secret('second password'))
    assert.equal(
      await store.check('alice@example.test', new Secret('first password')),
      false,
      'the old password is forgotten at once',
    )
    assert.equal(await store.check('alice@example.test', new Secret('second password')), true)
  })
})
