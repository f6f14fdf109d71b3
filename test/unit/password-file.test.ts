// The saved local proxy password (`mailkey proxy password <email> --save`): one 0600 file per
// account in a 0700 directory, never written through a symbolic link, at the very path the
// recipes' default password command reads.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Secret } from '../../src/core/secret.js'
import { resolvePaths } from '../../src/config/paths.js'
import {
  passwordFileCommand,
  passwordFileName,
  passwordFilePath,
  savePasswordFile,
} from '../../src/proxy/password-file.js'

describe('saved proxy password file', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mk-pwfile-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('names one path segment per account, safe for sh, case-folded like the account id', () => {
    assert.equal(passwordFileName('Alice@Example.test'), 'alice@example.test')
    assert.equal(passwordFileName('a/b$`x\'"@example.test'), 'a%2Fb%24%60x%27%22@example.test')
    assert.equal(passwordFileName('jörg@example.test'), 'j%C3%B6rg@example.test')
    assert.doesNotMatch(passwordFileName('../..@x'), /\//)
  })

  it('writes 0600 in a 0700 directory, and the recipes command reads exactly that file', async () => {
    const env = { HOME: join(dir, 'home'), XDG_CONFIG_HOME: join(dir, 'cfg') }
    const { configDir } = resolvePaths(env)
    const email = "o'neil/x@example.test"
    const path = await savePasswordFile(configDir, email, new Secret('local password 1'))
    assert.equal(path, passwordFilePath(configDir, email))
    assert.equal((await stat(path)).mode & 0o777, 0o600)
    assert.equal((await stat(join(configDir, 'proxy-passwords'))).mode & 0o777, 0o700)
    const out = execFileSync('/bin/sh', ['-c', passwordFileCommand(email)], { env, encoding: 'utf8' })
    assert.equal(out, 'local password 1\n')
    // without XDG_CONFIG_HOME: $HOME/.config, as config/paths.ts
    const env2 = { HOME: join(dir, 'home2') }
    await savePasswordFile(resolvePaths(env2).configDir, email, new Secret('local password 2'))
    assert.equal(
      execFileSync('/bin/sh', ['-c', passwordFileCommand(email)], { env: env2, encoding: 'utf8' }),
      'local password 2\n',
    )
  })

  it('replaces a symbolic link at the file instead of writing through it', async () => {
    const configDir = join(dir, 'link-file')
    await mkdir(join(configDir, 'proxy-passwords'), { recursive: true, mode: 0o700 })
    const target = join(dir, 'victim')
    await writeFile(target, 'untouched')
    await symlink(target, passwordFilePath(configDir, 'bob@example.test'))
    await savePasswordFile(configDir, 'bob@example.test', new Secret('local password 3'))
    assert.equal(await readFile(target, 'utf8'), 'untouched')
    assert.equal(await readFile(passwordFilePath(configDir, 'bob@example.test'), 'utf8'), 'local password 3\n')
  })

  it('refuses a directory that is a symbolic link or open to others', async () => {
    const linked = join(dir, 'link-dir')
    await mkdir(join(dir, 'elsewhere'), { mode: 0o700 })
    await mkdir(linked)
    await symlink(join(dir, 'elsewhere'), join(linked, 'proxy-passwords'))
    await assert.rejects(savePasswordFile(linked, 'c@example.test', new Secret('local password 4')), /symbolic link/)
    const open = join(dir, 'open-dir')
    await mkdir(join(open, 'proxy-passwords'), { recursive: true })
    await chmod(join(open, 'proxy-passwords'), 0o755)
    await assert.rejects(savePasswordFile(open, 'c@example.test', new Secret('local password 4')), /readable by other/)
  })
})
