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
import { DEFAULT_SCRYPT, PasswordStore, hashPassword, verifyPassword } from '../../src/proxy/passwords.js'

/** a cheap cost for the tests; the last test below runs the production one */
const CHEAP = { logN: 10, r: 8, p: 1 }

describe('proxy passwords', () => {
  let dir: string
  let files: FileStore
  let store: PasswordStore
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-pw-'))
    files = new FileStore(resolvePaths({ HOME: dir, XDG_STATE_HOME: dir }))
    store = new PasswordStore(files, { scrypt: CHEAP })
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

  it('hashes at the production cost by default, stores it in the entry, and verifies with what was stored', async () => {
    assert.deepEqual(DEFAULT_SCRYPT, { logN: 16, r: 8, p: 1 })
    await new PasswordStore(files).set('carol@example.test', new Secret('carol password'))
    const entry = JSON.parse(await readFile(store.path, 'utf8')).users['carol@example.test']
    assert.deepEqual({ logN: entry.logN, r: entry.r, p: entry.p }, DEFAULT_SCRYPT)
    // a store whose own cost is lower still checks this entry with the stored cost
    assert.equal(await store.check('carol@example.test', new Secret('carol password')), true)
  })
})
