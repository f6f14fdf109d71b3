// How printed configs name mailkey: "mailkey" when the PATH a mail client has finds one, this
// installation in full when it does not (npx's node_modules/.bin does not count), Node named too
// when the node on PATH is not the one running mailkey, and a single executable by itself.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { notOnPathNote, selfCommand, type Installation } from '../../src/cli/self.js'

describe('selfCommand: the mailkey a mail client will run', () => {
  let dir: string
  let me: Installation
  const exe = async (path: string): Promise<string> => {
    await writeFile(path, '#!/bin/sh\nexit 0\n', { mode: 0o755 })
    return path
  }
  before(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), 'mailkey-self-')))
    for (const d of ['install/dist/cli', 'nodebin', 'project/node_modules/.bin', 'global', 'other', 'empty', 'oldnode'])
      await mkdir(join(dir, d), { recursive: true })
    me = {
      execPath: await exe(join(dir, 'nodebin', 'node')),
      script: await exe(join(dir, 'install', 'dist', 'cli', 'mailkey.cjs')),
    }
    await symlink(me.script as string, join(dir, 'project', 'node_modules', '.bin', 'mailkey'))
    await symlink(me.script as string, join(dir, 'global', 'mailkey'))
    await exe(join(dir, 'other', 'mailkey'))
    await exe(join(dir, 'oldnode', 'node'))
  })
  after(() => rm(dir, { recursive: true, force: true }))
  const path = (...ds: string[]): NodeJS.ProcessEnv => ({ PATH: ds.map((d) => join(dir, d)).join(':') })

  it('this mailkey on PATH (a link to it): "mailkey", and no note', () => {
    const s = selfCommand(me, path('global', 'nodebin'))
    assert.deepEqual(s.argv, ['mailkey'])
    assert.equal(s.same, true)
    assert.equal(notOnPathNote(s, 'x'), undefined)
  })

  it("only npx's node_modules/.bin has it: Node and the script in full, and a note saying how to put it on PATH", () => {
    const s = selfCommand(me, path('project/node_modules/.bin', 'nodebin'))
    // Node named even when the node on this PATH is ours: cron's PATH may not have it
    assert.deepEqual(s.argv, [me.execPath, me.script])
    assert.match(notOnPathNote(s, s.argv.join(' ')) ?? '', /no "mailkey" is on PATH .*mailkey\.cjs.*npm link/)
  })

  it('the node on PATH is another one (or none): Node named all the same', () => {
    assert.deepEqual(selfCommand(me, path('oldnode', 'nodebin')).argv, [me.execPath, me.script])
    assert.deepEqual(selfCommand(me, path('empty')).argv, [me.execPath, me.script])
    assert.deepEqual(selfCommand(me, {}).argv, [me.execPath, me.script])
  })

  it('another mailkey on PATH: "mailkey" (it reads the same store), and a note naming it', () => {
    const s = selfCommand(me, path('other', 'nodebin'))
    assert.deepEqual(s.argv, ['mailkey'])
    assert.equal(s.same, false)
    assert.match(
      notOnPathNote(s, 'this') ?? '',
      new RegExp(`will run the "mailkey" on PATH, ${join(dir, 'other', 'mailkey')}, which is not this one`),
    )
  })

  it('a single executable has no script: itself, in full', () => {
    const sea = { execPath: me.execPath, script: undefined }
    assert.deepEqual(selfCommand(sea, path('nodebin')).argv, [me.execPath])
    assert.deepEqual(selfCommand(sea, path('nodebin')).absolute, [me.execPath])
  })

  it('relative PATH entries are not searched (a mail client runs in another directory)', () => {
    const s = selfCommand(me, { PATH: `global:${join(dir, 'nodebin')}` })
    assert.deepEqual(s.argv, [me.execPath, me.script])
  })
})
