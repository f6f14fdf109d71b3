import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, stat, writeFile, readFile, chmod, readdir, symlink, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { FileStore, fileNameFor } from '../../src/store/file-store.js'
import { accountId, assertEmail } from '../../src/domain/account.js'
import { resolvePaths } from '../../src/config/paths.js'
import { ERR, StoreError, UsageError } from '../../src/errors.js'
import type { AccountRecord } from '../../src/domain/account.js'
import { accountRecord } from '../harness/records.js'

const record = (email: string, rt = 'rt-1'): AccountRecord => accountRecord(email, { refreshToken: rt })

describe('FileStore', () => {
  let dir: string
  let store: FileStore
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-store-'))
    store = new FileStore(
      resolvePaths({ HOME: dir, XDG_STATE_HOME: join(dir, 'state'), XDG_CONFIG_HOME: join(dir, 'config') }),
    )
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  it('creates 0700 directories and 0600 files', async () => {
    await store.write(record('a@example.test'))
    assert.equal((await stat(store.paths.stateDir)).mode & 0o777, 0o700)
    assert.equal((await stat(store.dir)).mode & 0o777, 0o700)
    assert.equal((await stat(store.recordPath('a@example.test'))).mode & 0o777, 0o600)
  })

  it('round-trips a record and leaves no temp files behind', async () => {
    const r = record('b@example.test', 'rt-b')
    await store.write(r)
    const back = await store.read('b@example.test')
    assert.equal(back?.grant?.refreshToken, 'rt-b')
    const names = await readdir(store.dir)
    assert.deepEqual(
      names.filter((n) => n.endsWith('.tmp')),
      [],
    )
  })

  it('replaces atomically: every concurrent reader sees a whole record', async () => {
    const email = 'c@example.test'
    await store.write(record(email, 'rt-0'))
    let stop = false
    let reads = 0
    const reader = (async () => {
      while (!stop) {
        const r = await store.read(email) // throws on a torn file
        assert.match(r?.grant?.refreshToken ?? '', /^rt-\d+$/)
        reads++
      }
    })()
    for (let i = 1; i <= 60; i++) await store.write(record(email, `rt-${i}`))
    stop = true
    await reader
    assert.ok(reads > 0)
    assert.equal((await store.read(email))?.grant?.refreshToken, 'rt-60')
  })

  it('returns undefined for an unknown account', async () => {
    assert.equal(await store.read('nobody@example.test'), undefined)
  })

  it('refuses a record readable by others, and says how to fix it', async () => {
    const email = 'd@example.test'
    await store.write(record(email))
    await chmod(store.recordPath(email), 0o644)
    await assert.rejects(store.read(email), (e: unknown) => {
      assert.ok(e instanceof StoreError)
      assert.equal(e.code, ERR.STORE_PERMISSIONS)
      assert.match(e.hint ?? '', /chmod 600/)
      return true
    })
    await chmod(store.recordPath(email), 0o600)
  })

  it('refuses a state directory readable by others', async () => {
    const d2 = await mkdtemp(join(tmpdir(), 'mailkey-store-'))
    try {
      const s2 = new FileStore(resolvePaths({ HOME: d2, XDG_STATE_HOME: d2 }))
      await mkdir(s2.dir, { recursive: true, mode: 0o755 })
      await chmod(s2.paths.stateDir, 0o700)
      await chmod(s2.dir, 0o755)
      await assert.rejects(
        s2.write(record('e@example.test')),
        (e: unknown) => e instanceof StoreError && e.code === ERR.STORE_PERMISSIONS,
      )
    } finally {
      await rm(d2, { recursive: true, force: true })
    }
  })

  it('does not follow a symlinked record', async () => {
    const email = 'link@example.test'
    const target = join(dir, 'elsewhere.json')
    await writeFile(target, JSON.stringify(record(email)), { mode: 0o600 })
    await symlink(target, store.recordPath(email))
    await assert.rejects(store.read(email), (e: unknown) => e instanceof StoreError && e.code === ERR.STORE_PERMISSIONS)
  })

  it('refuses a FIFO planted at a record path without blocking in open()', async () => {
    const email = 'fifo@example.test'
    await store.ensureDir()
    execFileSync('mkfifo', ['-m', '600', store.recordPath(email)])
    // Nobody ever opens the other end: a blocking open would hang this test (and the process).
    await assert.rejects(
      store.read(email),
      (e: unknown) =>
        e instanceof StoreError && e.code === ERR.STORE_PERMISSIONS && /not a regular file/.test(e.message),
    )
  })

  it('read() yields to the event loop, so a loop of reads cannot starve a timer', async () => {
    const email = 'yield@example.test'
    await store.write(record(email))
    let fired = false
    setTimeout(() => {
      fired = true
    }, 1)
    const until = Date.now() + 2_000
    while (!fired && Date.now() < until) await store.read(email)
    assert.ok(fired)
  })
  it('reports a corrupt record, names the file, and never overwrites it', async () => {
    const email = 'f@example.test'
    await writeFile(store.recordPath(email), '{"v":1,"settings":', { mode: 0o600 })
    await assert.rejects(store.read(email), (e: unknown) => {
      assert.ok(e instanceof StoreError)
      assert.equal(e.code, ERR.STORE_CORRUPT)
      assert.ok(e.message.includes(store.recordPath(email)))
      assert.equal(e.exitCode, 74)
      return true
    })
    assert.equal(await readFile(store.recordPath(email), 'utf8'), '{"v":1,"settings":')
    const listed = await store.list()
    assert.ok(listed.broken.some((b) => b.file === store.recordPath(email)))
    assert.ok(listed.records.some((r) => r.settings.email === 'b@example.test'))
  })

  it('rejects an unknown format version', async () => {
    const email = 'g@example.test'
    await writeFile(store.recordPath(email), JSON.stringify({ ...record(email), v: 99 }), { mode: 0o600 })
    await assert.rejects(store.read(email), /format version is 99/)
  })

  it('removes records', async () => {
    await store.write(record('h@example.test'))
    assert.equal(await store.remove('h@example.test'), true)
    assert.equal(await store.remove('h@example.test'), false)
    assert.equal(await store.read('h@example.test'), undefined)
  })
})

describe('account ids', () => {
  it('normalises case and space', () => {
    assert.equal(accountId('  Someone@Hotmail.COM '), 'someone@hotmail.com')
  })
  it('escapes unsafe characters in file names', () => {
    assert.equal(fileNameFor('a/b@x.y'), 'a%2fb@x.y')
    assert.doesNotMatch(fileNameFor('../../etc@x.y'), /\//)
  })
  it('rejects things that are not addresses', () => {
    for (const bad of ['', 'nobody', 'a@', '@b.c', 'a b@c.d', 'a@b/c.d']) {
      assert.throws(() => assertEmail(bad), UsageError, bad)
    }
    assert.equal(assertEmail('You@Outlook.com'), 'you@outlook.com')
  })
})
