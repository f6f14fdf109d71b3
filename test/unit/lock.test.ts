import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile, readFile, utimes } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { tmpdir, hostname } from 'node:os'
import { join } from 'node:path'
import { acquire, adoptLock, isStale, pidAlive, readLock, tryAcquire } from '../../src/store/lock.js'
import { ERR, StoreError } from '../../src/errors.js'

describe('account lock', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-lock-'))
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  it('admits one holder at a time', async () => {
    const p = join(dir, 'one.lock')
    const a = await tryAcquire(p)
    assert.ok(a)
    assert.equal(await tryAcquire(p), undefined)
    await a.release()
    const b = await tryAcquire(p)
    assert.ok(b)
    await b.release()
  })

  it('release only removes our own lock', async () => {
    const p = join(dir, 'own.lock')
    const a = await tryAcquire(p)
    assert.ok(a)
    await writeFile(p, JSON.stringify({ pid: process.pid, nonce: 'someone-else', at: Date.now(), host: hostname() }))
    await a.release()
    assert.equal((await readLock(p))?.nonce, 'someone-else')
  })

  it('takes over a lock whose process is gone', async () => {
    const p = join(dir, 'dead.lock')
    const child = spawn(process.execPath, ['-e', '0'])
    const pid = child.pid as number
    await new Promise((r) => child.once('exit', r))
    await writeFile(p, JSON.stringify({ pid, nonce: 'dead', at: Date.now(), host: hostname() }))
    assert.equal(pidAlive(pid), false)
    const h = await tryAcquire(p)
    assert.ok(h, 'a dead holder must not block the account')
    assert.notEqual((await readLock(p))?.nonce, 'dead')
    await h.release()
  })

  it('takes over a lock older than the maximum age even if its process lives', async () => {
    const p = join(dir, 'old.lock')
    await writeFile(
      p,
      JSON.stringify({ pid: process.pid, nonce: 'old', at: Date.now() - 10 * 60_000, host: hostname() }),
    )
    const h = await tryAcquire(p, 120_000)
    assert.ok(h)
    await h.release()
  })

  it('waits for a live holder, and times out with a lock error', async () => {
    const p = join(dir, 'busy.lock')
    const a = await tryAcquire(p)
    assert.ok(a)
    // an injected clock that the waits between polls move forward: no real time passes
    let clock = 0
    const waits: number[] = []
    await assert.rejects(
      acquire(p, {
        timeoutMs: 150,
        pollMs: 10,
        now: () => clock,
        sleep: async (ms) => {
          waits.push(ms)
          clock += ms
        },
      }),
      (e: unknown) => e instanceof StoreError && e.code === ERR.STORE_LOCK_TIMEOUT && e.transient,
    )
    assert.ok(clock >= 140, `gave up after waiting ${clock} ms on its clock`)
    assert.ok(
      waits.length >= 8 && waits.every((ms) => ms >= 10 && ms < 20),
      `polled every 10-20 ms: ${waits.join(' ')}`,
    )
    setTimeout(() => void a.release(), 50)
    const b = await acquire(p, { timeoutMs: 2000, pollMs: 5 })
    await b.release()
  })

  it('treats a half-written lock file as live for a moment, then stale', async () => {
    const p = join(dir, 'half.lock')
    await writeFile(p, '')
    assert.equal(await tryAcquire(p), undefined)
    const past = new Date(Date.now() - 10_000)
    await utimes(p, past, past)
    const h = await tryAcquire(p)
    assert.ok(h)
    await h.release()
  })

  it('hands a lock over to another process without a gap', async () => {
    const p = join(dir, 'hand.lock')
    const a = await tryAcquire(p)
    assert.ok(a)
    const adopted = await adoptLock(p, a.nonce)
    assert.ok(adopted)
    const info = await readLock(p)
    assert.equal(info?.nonce, a.nonce)
    assert.equal(await adoptLock(p, 'wrong-nonce'), undefined)
    await adopted.release()
    assert.equal(await readLock(p), undefined)
  })

  it('serialises increments from many processes', async () => {
    // 6 processes x 15 locked read-modify-write rounds must give exactly 90.
    const counter = join(dir, 'counter.txt')
    await writeFile(counter, '0')
    const lockPath = join(dir, 'counter.lock')
    const script = `
      const { acquire } = await import(${JSON.stringify(new URL('../../src/store/lock.ts', import.meta.url).href)})
      const fs = await import('node:fs/promises')
      for (let i = 0; i < 15; i++) {
        const h = await acquire(${JSON.stringify(lockPath)}, { timeoutMs: 20000, pollMs: 2 })
        const n = Number(await fs.readFile(${JSON.stringify(counter)}, 'utf8'))
        await new Promise((r) => setTimeout(r, 1))
        await fs.writeFile(${JSON.stringify(counter)}, String(n + 1))
        await h.release()
      }`
    const procs = Array.from({ length: 6 }, () =>
      spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        stdio: ['ignore', 'ignore', 'inherit'],
      }),
    )
    const codes = await Promise.all(procs.map((c) => new Promise<number | null>((r) => c.once('exit', r))))
    assert.deepEqual(codes, [0, 0, 0, 0, 0, 0])
    assert.equal(await readFile(counter, 'utf8'), '90')
  })

  it('isStale: undefined info is stale, a live pid on this host is not', () => {
    assert.equal(isStale(undefined), true)
    assert.equal(isStale({ pid: process.pid, nonce: 'n', at: Date.now(), host: hostname() }), false)
    assert.equal(isStale({ pid: process.pid, nonce: 'n', at: Date.now(), host: 'another-host' }), false)
  })

  it('L4: a lock in hand-off is not stale for a few seconds although its holder is dead, and then it is', async () => {
    const dead = spawn(process.execPath, ['-e', '0'])
    await new Promise((r) => dead.once('exit', r))
    const pid = dead.pid as number
    const now = Date.now()
    assert.equal(isStale({ pid, nonce: 'n', at: now, host: hostname() }), true, 'dead holder: stale')
    assert.equal(
      isStale({ pid, nonce: 'n', at: now - 1000, host: hostname(), handoff: true }),
      false,
      'in hand-off: the child is adopting it',
    )
    assert.equal(
      isStale({ pid, nonce: 'n', at: now - 6000, host: hostname(), handoff: true }),
      true,
      'the child never came',
    )
    const path = join(dir, 'handoff.lock')
    const h = await tryAcquire(path)
    assert.ok(h)
    await h.beginHandoff()
    assert.equal((await readLock(path))?.handoff, true)
    assert.equal(await tryAcquire(path), undefined, 'nobody takes it meanwhile')
    await h.handOver(process.pid)
    assert.equal((await readLock(path))?.handoff, undefined, 'adopted: an ordinary lock again')
    await h.release()
  })
})
