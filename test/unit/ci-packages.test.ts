// .ci/packages.txt is the one list of Debian packages the suite uses: .ci/run installs from it
// (each package whose check fails, waiting for another apt's lock), and the README's install
// command reads it. Checks the list's form, that the README and .ci/run name no list of their own,
// and runs .ci/run's own loop on a small list.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const read = (p: string): Promise<string> => readFile(join(ROOT, p), 'utf8')

/** package -> check, from the list's non-comment lines */
async function packages(): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const line of (await read('.ci/packages.txt')).split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue
    const [, pkg = '', check = ''] = /^(\S+)\s+(.*)$/.exec(line) ?? [undefined, line]
    assert.ok(!out.has(pkg), `${pkg} listed once`)
    out.set(pkg, check.trim())
  }
  return out
}

/** the lines of .ci/run from `need=()` to the end of its read loop */
async function runLoop(): Promise<string> {
  const run = await read('.ci/run')
  const m = /^need=\(\)\n[\s\S]*?^done <\.ci\/packages\.txt$/m.exec(run)
  assert.ok(m, '.ci/run reads .ci/packages.txt in a loop that starts with need=()')
  return m[0]
}

it('the list: one Debian package a line, each with a check bash can parse', async () => {
  const list = await packages()
  assert.ok(list.size >= 20, `${list.size} packages`)
  for (const [pkg, check] of list) {
    assert.match(pkg, /^[a-z0-9][a-z0-9+.-]+$/, 'a Debian package name')
    assert.notEqual(check, '', `${pkg} has a check`)
    assert.equal(spawnSync('bash', ['-n', '-c', check]).status, 0, `${pkg}: bash parses ${check}`)
  }
})

it('.ci/run installs from the list only, and every apt-get waits for the lock', async () => {
  const run = await read('.ci/run')
  await runLoop()
  assert.deepEqual(run.match(/need\+=\([^)]*\)/g), ['need+=("$pkg")'], 'no package named in .ci/run')
  const aptCalls = run.split('\n').filter((l) => /^\s*apt-get\s/.test(l))
  assert.ok(aptCalls.length >= 2, 'update and install')
  for (const call of aptCalls) assert.match(call, /apt-get "\$\{apt_wait\[@\]\}" /, call)
  assert.match(run, /^\s*apt_wait=\(.*-o DPkg::Lock::Timeout=\d+/m)
})

it('.ci/run needs exactly the packages whose check fails; a check cannot eat the list', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mailkey-ci-'))
  try {
    await mkdir(join(dir, '.ci'))
    const list = ['# a comment', 'there   true', '', 'missing false', 'eater   cat', 'after  [ -x /nonexistent ]']
    await writeFile(join(dir, '.ci', 'packages.txt'), list.join('\n') + '\n')
    const script = `set -euo pipefail\n${await runLoop()}\nprintf '%s\\n' "\${need[@]}"`
    const out = execFileSync('bash', ['-c', script], { cwd: dir, encoding: 'utf8', input: 'x\n' })
    assert.deepEqual(out.trim().split('\n'), ['missing', 'after'])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

it("the README's install command reads the list, and the README names no list of its own", async () => {
  const readme = await read('README.md')
  const cmd = /`(awk [^`]*\.ci\/packages\.txt[^`]*apt-get install[^`]*)`/.exec(readme)?.[1]
  assert.ok(cmd, 'README gives the install command that reads .ci/packages.txt')
  const named = execFileSync('bash', ['-c', cmd.replace(/\|.*$/, '')], { cwd: ROOT, encoding: 'utf8' })
  assert.deepEqual(named.trim().split('\n'), [...(await packages()).keys()])
  for (const m of readme.matchAll(/apt-get install[^`]*/g))
    assert.match(m[0], /^apt-get install( -\S+)*$/, `no package list in README: ${m[0]}`)
})
