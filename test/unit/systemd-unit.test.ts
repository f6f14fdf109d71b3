// contrib/systemd/mailkey-serve.service: what the unit promises (credentials, no home, hardening,
// a stop longer than serve's grace period), read from the file itself; and systemd's own check of
// it (systemd-analyze verify), which .ci/run installs so CI never skips it.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const UNIT = fileURLToPath(new URL('../../contrib/systemd/mailkey-serve.service', import.meta.url))

/** key -> every value it is given in [Service] (comments and other sections left out) */
async function serviceSection(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>()
  let section = ''
  for (const raw of (await readFile(UNIT, 'utf8')).split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    if (line.startsWith('[')) section = line
    else if (section === '[Service]') {
      const i = line.indexOf('=')
      const k = line.slice(0, i)
      out.set(k, [...(out.get(k) ?? []), line.slice(i + 1)])
    }
  }
  return out
}

it('the unit: credentials, no home, graceful stop, hardening', async () => {
  const s = await serviceSection()
  const one = (k: string): string | undefined => s.get(k)?.at(-1)
  const env = new Map((s.get('Environment') ?? []).map((e) => e.split(/=(.*)/s).slice(0, 2) as [string, string]))
  assert.ok(
    s.get('LoadCredential')?.some((c) => c.startsWith('mailkey-store-key:')),
    'the store key as credential',
  )
  assert.ok(s.get('LoadCredential')?.some((c) => c.startsWith('mailkey-pgpass:')))
  assert.equal(env.get('PGPASSFILE'), '%d/mailkey-pgpass')
  assert.match(env.get('MAILKEY_STORE_URL') ?? '', /^postgres:\/\//)
  assert.match(env.get('MAILKEY_SERVE_LISTEN') ?? '', /^127\.0\.0\.1:\d+$/)
  assert.equal(env.get('XDG_STATE_HOME'), '%S')
  assert.equal(one('StateDirectory'), 'mailkey')
  assert.equal(one('DynamicUser'), 'yes')
  assert.ok(!env.has('PGPASSWORD') && !env.has('MAILKEY_API_KEY'), 'no secret in the unit')
  assert.equal(one('KillSignal'), 'SIGTERM')
  const grace = Number(/--grace-sec (\d+)/.exec(one('ExecStart') ?? '')?.[1])
  assert.ok(grace > 0, 'ExecStart names the grace period')
  assert.ok(Number(one('TimeoutStopSec')) > grace, 'systemd waits longer than serve does')
  const hardening: [string, string][] = [
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['PrivateDevices', 'yes'],
    ['RestrictAddressFamilies', 'AF_INET AF_INET6 AF_UNIX'],
    ['CapabilityBoundingSet', ''],
  ]
  for (const [k, v] of hardening) assert.equal(one(k), v, k)
  assert.ok(s.get('SystemCallFilter')?.includes('@system-service'))
  assert.ok(!s.has('MemoryDenyWriteExecute'), "V8's JIT needs writable and executable memory")
})

const haveAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0

it(
  'systemd-analyze verify finds nothing to say about it',
  { skip: !haveAnalyze && !process.env.CI ? 'systemd-analyze missing' : false },
  async () => {
    assert.ok(haveAnalyze, 'systemd-analyze is needed under CI (.ci/run installs systemd)')
    const dir = await mkdtemp(join(tmpdir(), 'mailkey-unit-'))
    try {
      // verify checks that ExecStart's program exists: point it at this node instead of /usr/bin/mailkey
      const text = (await readFile(UNIT, 'utf8')).replace(
        /^ExecStart=\/usr\/bin\/mailkey /m,
        `ExecStart=${process.execPath} `,
      )
      assert.notEqual(text, await readFile(UNIT, 'utf8'))
      const copy = join(dir, 'mailkey-serve.service')
      await writeFile(copy, text)
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' })
      assert.equal(r.status, 0, r.stderr)
      assert.equal((r.stdout + r.stderr).trim(), '', 'no warning')
      // and it does speak up: a broken copy is reported
      await writeFile(copy, text.replace('KillSignal=SIGTERM', 'KillSignal=SIGNOPE'))
      const bad = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' })
      assert.match(bad.stdout + bad.stderr, /SIGNOPE/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  },
)
