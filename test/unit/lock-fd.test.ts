// The account lock when this process is out of file descriptors (issue 11, item 5; lock L5). The
// descriptor table of this test process is really filled (open /dev/null until EMFILE) while
// release() runs, and freed again before anything is checked.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { withoutDescriptors } from '../harness/descriptors.js'
import { readLock, tryAcquire } from '../../src/store/lock.js'

describe('account lock out of file descriptors', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-lockfd-'))
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  it('release() with no descriptor left still removes our own lock', async () => {
    const p = join(dir, 'own.lock')
    const a = await tryAcquire(p)
    assert.ok(a)
    await withoutDescriptors(() => a.release())
    assert.equal(existsSync(p), false, 'the lock file must not outlive its holder')
    const b = await tryAcquire(p)
    assert.ok(b, 'the account can be locked again at once')
    await b.release()
  })

  it('release() after a hand-over write, with no descriptor left, removes our lock', async () => {
    const p = join(dir, 'handed.lock')
    const a = await tryAcquire(p)
    assert.ok(a)
    await a.beginHandoff()
    await a.handOver(process.pid)
    await withoutDescriptors(() => a.release())
    assert.equal(existsSync(p), false)
  })

  it('release() with no descriptor left never removes a lock that someone else wrote (L1)', async () => {
    const p = join(dir, 'other.lock')
    const a = await tryAcquire(p)
    assert.ok(a)
    // someone took it over (as a stale lock is): a new file replaces ours atomically
    const tmp = `${p}.other.tmp`
    await writeFile(tmp, JSON.stringify({ pid: process.pid, nonce: 'someone-else', at: Date.now(), host: hostname() }))
    await rename(tmp, p)
    await withoutDescriptors(() => a.release())
    assert.equal((await readLock(p))?.nonce, 'someone-else')
  })
})
