// The unit `mailkey proxy install-service` writes, for installations and XDG directories under
// paths with systemd's own special characters (%, $, quotes, backslashes, spaces): systemd-analyze
// verify finds the very executable (so it parsed ExecStart back to the exact path) and has nothing
// to say; control characters, which would start a new setting, are refused.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { proxyServiceUnit, unitWord } from '../../src/proxy/service-unit.js'
import { UsageError } from '../../src/errors.js'

const haveAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0
// systemd takes any of these in arguments, but no quote or backslash in the program's own path
const PROGRAM_DIR = '50%off $HOME'
const SCRIPT_DIR = `50%off $HOME "q" \\back 'x'`

it(
  'paths with %, $, quotes, backslashes and spaces: systemd finds the exact files, with no warning',
  { skip: !haveAnalyze && !process.env.CI ? 'systemd-analyze missing' : false },
  async () => {
    assert.ok(haveAnalyze, 'systemd-analyze is needed under CI (.ci/run installs systemd)')
    const dir = await mkdtemp(join(tmpdir(), 'mailkey-unit-'))
    try {
      const odd = join(dir, PROGRAM_DIR)
      const scripts = join(dir, SCRIPT_DIR)
      await mkdir(odd)
      await mkdir(scripts)
      await symlink(process.execPath, join(odd, 'node'))
      await writeFile(join(scripts, 'mailkey.cjs'), '')
      const unit = proxyServiceUnit({
        start: [join(odd, 'node'), join(scripts, 'mailkey.cjs')],
        readme: `file://${encodeURI(join(odd, 'README.md'))}`,
        env: { XDG_CONFIG_HOME: join(scripts, 'config'), XDG_STATE_HOME: '/tmp/state' },
      })
      const file = join(dir, 'mailkey-proxy.service')
      await writeFile(file, unit)
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' })
      assert.equal(r.status, 0, `${r.stderr}\n${unit}`)
      assert.equal((r.stdout + r.stderr).trim(), '', 'no warning')
      // and verify does look for the program: one that is not there is reported
      await writeFile(file, proxyServiceUnit({ start: [join(odd, 'no-node'), 'x'], env: {} }))
      const bad = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' })
      assert.notEqual(bad.status, 0)
      assert.match(bad.stdout + bad.stderr, /no-node/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  },
)

it('the words as systemd reads them: %% everywhere, $$ in arguments, C escapes in quotes', () => {
  assert.equal(unitWord('/usr/bin/node', true), '/usr/bin/node')
  assert.equal(unitWord('/opt/50%off/node', true), '"/opt/50%%off/node"')
  assert.equal(unitWord('/opt/my $dir/mailkey.cjs', true), '"/opt/my $$dir/mailkey.cjs"')
  // the program's own path expands nothing: "$" is itself there
  assert.match(
    proxyServiceUnit({ start: ['/my $dir/node', '/my $dir/m'], env: {} }),
    /^ExecStart="\/my \$dir\/node" "\/my \$\$dir\/m" proxy$/m,
  )
  assert.equal(unitWord('/a "b" \\c', true), '"/a \\"b\\" \\\\c"')
  // Environment= expands no variables: "$" stays itself there
  assert.equal(unitWord('XDG_CONFIG_HOME=/h/$x y', false), '"XDG_CONFIG_HOME=/h/$x y"')
  const unit = proxyServiceUnit({ start: ['/n', '/s'], env: { XDG_CONFIG_HOME: '/h/a b' } })
  assert.match(unit, /^Environment="XDG_CONFIG_HOME=\/h\/a b"$/m)
  assert.match(unit, /^ExecStart=\/n \/s proxy$/m)
})

it('a line break or another control character in a path is refused, never written', () => {
  for (const s of ['/a\nExecStartPre=/bin/evil', '/a\tb', '/a\rb'])
    assert.throws(() => proxyServiceUnit({ start: [s], env: {} }), UsageError)
  assert.throws(() => proxyServiceUnit({ start: ['/n'], env: { XDG_STATE_HOME: '/x\n[Service]' } }), UsageError)
  // and a program path systemd would refuse to start is said at once, not at "systemctl start"
  for (const p of ["/o'brien/node", '/a"b/node', '/a\\b/node'])
    assert.throws(() => proxyServiceUnit({ start: [p, '/s'], env: {} }), /systemd cannot start a program/)
})
