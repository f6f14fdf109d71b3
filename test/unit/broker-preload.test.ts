// Broker.preload (issue 11, item 5): Node remembers a failed import() for the life of the process,
// so a refresh module first loaded when the process is out of descriptors would break every later
// in-process refresh. A child process (its own module cache) runs in-process refreshes with 0, 1,
// 2, ... free descriptors (its table filled for real), then one with all of them back.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const CHILD = join(
  import.meta.dirname ?? new URL('.', import.meta.url).pathname,
  '..',
  'fixtures',
  'fd',
  'refresh-sweep.ts',
)

describe('Broker.preload', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-preload-'))
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  it('after preload(), refreshes work again once descriptors are back, whatever depth ran short', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, dir, 'yes'], { encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout.trim()), { final: 'ok' })
  })
})
