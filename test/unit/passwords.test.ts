// Local proxy passwords: scrypt hashes in a 0600 file, a per-process cache of verified pairs that
// forgets everything when the file changes; on a shared store, items that every replica reads (a
// FileItems stands in for the engine's items here: same port, test/integration/items-contract).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { ERR, StoreError } from '../../src/errors.js'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Secret } from '../../src/core/secret.js'
import { resolvePaths } from '../../src/config/paths.js'
import { FileStore } from '../../src/store/file-store.js'
import { DEFAULT_SCRYPT, PasswordStore, hashPassword, verifyPassword } from '../../src/proxy/passwords.js'
import { FileItems, type ItemStore } from '../../src/store/items.js'

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

describe('proxy passwords on a shared store (items)', () => {
  let dir: string
  let items: ItemStore
  /** two replicas: each its own state directory and process cache, one store */
  let a: PasswordStore
  let b: PasswordStore
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-pw-shared-'))
    items = new FileItems(resolvePaths({ HOME: dir, XDG_STATE_HOME: join(dir, 'store') }))
    const replica = (name: string): PasswordStore =>
      new PasswordStore(new FileStore(resolvePaths({ HOME: dir, XDG_STATE_HOME: join(dir, name) })), {
        scrypt: CHEAP,
        shared: async () => items,
      })
    a = replica('a')
    b = replica('b')
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  it('a password set on one replica holds on the other; only hashes are stored, and no local file', async () => {
    await a.set('Dora@Example.test', new Secret('dora password 1'))
    const item = await items.get('proxy-password', 'dora@example.test')
    assert.ok(item)
    assert.equal(item.value.alg, 'scrypt')
    assert.equal(typeof item.value.salt, 'string')
    assert.ok(!JSON.stringify(item).includes('dora password 1'))
    assert.equal(await b.has('dora@example.test'), true)
    assert.equal(await b.check('dora@example.test', new Secret('dora password 1')), true)
    assert.equal(await b.check('dora@example.test', new Secret('dora password 2')), false)
    await assert.rejects(stat(a.path), { code: 'ENOENT' })
    await assert.rejects(stat(b.path), { code: 'ENOENT' })
  })

  it('a remembered password is forgotten once another replica changes it (seen at the next reload)', async () => {
    const old = new Secret('eve password 1')
    await a.set('eve@example.test', old)
    assert.equal(await b.check('eve@example.test', old), true)
    await b.reload('eve@example.test')
    assert.equal(b.remembered('eve@example.test', old), true, 'verified once: remembered')
    await a.set('eve@example.test', new Secret('eve password 2'))
    assert.equal(b.remembered('eve@example.test', old), true, 'not read yet')
    await b.reload('eve@example.test')
    assert.equal(b.remembered('eve@example.test', old), false, 'read: the old password is forgotten')
    assert.equal(await b.check('eve@example.test', old), false)
    assert.equal(await b.check('eve@example.test', new Secret('eve password 2')), true)
  })

  it('a removed entry: nothing remembered, refused; a damaged one: STORE_CORRUPT naming the account', async () => {
    const pw = new Secret('fay password 1')
    await a.set('fay@example.test', pw)
    assert.equal(await a.check('fay@example.test', pw), true)
    await items.remove('proxy-password', 'fay@example.test')
    assert.equal(await a.check('fay@example.test', pw), false)
    await items.put('proxy-password', 'fay@example.test', { alg: 'scrypt', logN: 'x' }, 'replace')
    await assert.rejects(a.verify('fay@example.test', pw), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_MAILKEY_STORE_CORRUPT')
      assert.match(e.message, /fay@example\.test/)
      return true
    })
    assert.equal(a.remembered('fay@example.test', pw), false)
  })

  it('a store that cannot be read: reload() does not throw, nothing is remembered, verify() reports it', async () => {
    let down = false
    const flaky: ItemStore = {
      where: items.where,
      shared: true,
      get: async (k, n) => {
        if (down) throw Object.assign(new Error('store down'), { code: 'ECONNREFUSED' })
        return await items.get(k, n)
      },
      list: (k) => items.list(k),
      put: (k, n, v, m) => items.put(k, n, v, m),
      remove: (k, n) => items.remove(k, n),
    }
    const c = new PasswordStore(new FileStore(resolvePaths({ HOME: dir, XDG_STATE_HOME: join(dir, 'c') })), {
      scrypt: CHEAP,
      shared: async () => flaky,
    })
    const pw = new Secret('gil password 1')
    await c.set('gil@example.test', pw)
    assert.equal(await c.check('gil@example.test', pw), true)
    down = true
    await c.reload('gil@example.test')
    assert.equal(c.remembered('gil@example.test', pw), false)
    await assert.rejects(c.verify('gil@example.test', pw), /store down/)
    down = false
    assert.equal(await c.check('gil@example.test', pw), true)
  })

  it('a store that cannot be reached: what was verified before still counts, nothing new does', async () => {
    let down = false
    const unreachable: ItemStore = {
      where: items.where,
      shared: true,
      get: async (k, n) => {
        if (down) throw new StoreError(ERR.STORE_UNAVAILABLE, 'the store cannot be reached')
        return await items.get(k, n)
      },
      list: (k) => items.list(k),
      put: (k, n, v, m) => items.put(k, n, v, m),
      remove: (k, n) => items.remove(k, n),
    }
    const e = new PasswordStore(new FileStore(resolvePaths({ HOME: dir, XDG_STATE_HOME: join(dir, 'e') })), {
      scrypt: CHEAP,
      shared: async () => unreachable,
    })
    const pw = new Secret('ivy password 1')
    await e.set('ivy@example.test', pw)
    assert.equal(await e.check('ivy@example.test', pw), true)
    down = true
    await e.reload('ivy@example.test')
    assert.equal(e.remembered('ivy@example.test', pw), true, 'verified before the outage')
    assert.equal(e.remembered('ivy@example.test', new Secret('ivy password 2')), false)
    await assert.rejects(e.verify('ivy@example.test', new Secret('ivy password 2')), /cannot be reached/)
  })

  it('a host on the file store (the resolver says so) keeps the file', async () => {
    const d = new PasswordStore(new FileStore(resolvePaths({ HOME: dir, XDG_STATE_HOME: join(dir, 'd') })), {
      scrypt: CHEAP,
      shared: async () => undefined,
    })
    await d.set('hal@example.test', new Secret('hal password 1'))
    assert.match(await readFile(d.path, 'utf8'), /"hal@example\.test"/)
    assert.equal(await items.get('proxy-password', 'hal@example.test'), undefined)
    assert.equal(await d.check('hal@example.test', new Secret('hal password 1')), true)
  })
})
