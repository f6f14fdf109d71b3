// The token service over TLS and as a system service or container would run it (issue 14): a
// replica configured from the environment only (no HOME, another user, the store key and the
// database password as systemd credentials, XDG_STATE_HOME as its StateDirectory) serving https
// with a test CA's certificate; `mailkey token` on a worker trusting that CA through
// MAILKEY_STORE_CA, and refused (exit 78, naming MAILKEY_STORE_CA) without it, with no plain-http
// retry on the wire; and --listen off loopback refused without TLS (exit 64) and allowed with it
// (in a network namespace, where a non-loopback address can be had without touching the host's).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, connect, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findLeaks, runCli, spawnCli, type CliResult } from '../harness/cli.js'
import { makeTestCA, type TestCA } from '../harness/certs.js'
import { makeTmpHome } from '../harness/tmp-home.js'
import { addApiKey, api, credentialsDir, startReplica, tokenPath, type Replica } from '../harness/service.js'
import { sharedLabSkip, startSharedLab, type SharedLab } from '../harness/shared-lab.js'

const skip = sharedLabSkip('the service tests')

const ALICE = 'alice@example.test'
const NOBODY = 65534
const asRoot = process.getuid?.() === 0
const netns = spawnSync('unshare', ['-n', 'true']).status === 0
if (process.env.CI && !(asRoot && netns)) throw new Error('CI runs these tests as root, with unshare -n')
/** runs the rest in a new network namespace whose loopback also holds 10.77.0.1 (not a loopback address) */
const NETNS = ['unshare', '-n', 'sh', '-c', 'ip link set lo up && ip addr add 10.77.0.1/32 dev lo && exec "$@"', 'sh']

/** A TCP relay that notes the first byte of every connection: 0x16 opens a TLS handshake, "G" a plain GET. */
async function firstBytes(port: number): Promise<{ server: Server; port: number; seen: number[] }> {
  const seen: number[] = []
  const server = createServer((a) => {
    const b = connect(port, '127.0.0.1')
    a.once('data', (d: Buffer) => seen.push(d[0] as number))
    a.pipe(b).pipe(a)
    a.on('error', () => b.destroy())
    b.on('error', () => a.destroy())
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const addr = server.address()
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0, seen }
}

describe('mailkey serve over TLS, configured from the environment', { skip }, () => {
  let shared: SharedLab
  let ca: TestCA
  let base: string
  let rep: Replica
  let opsKey: string
  const secrets: string[] = []
  const outputs: string[] = []

  before(async () => {
    shared = await startSharedLab()
    secrets.push(shared.pg.password)
    const rec = await shared.signIn(ALICE)
    secrets.push(rec.grant?.refreshToken as string, rec.grant?.accessToken as string)
    opsKey = (await addApiKey(shared.admin, 'ops', ['--all'])).key
    secrets.push(opsKey)
    base = await mkdtemp(join(tmpdir(), 'mailkey-serve-tls-'))
    await chmod(base, 0o711) // the service's user may pass through, as through /run and /var/lib
    await mkdir(join(base, 'ca'), { mode: 0o700 })
    ca = await makeTestCA(join(base, 'ca'))
  })

  after(async () => {
    rep?.cli.child.kill('SIGKILL')
    await shared?.stop()
    if (base) await rm(base, { recursive: true, force: true })
  })

  it('runs with no HOME, as another user, every setting from the environment and credentials', async () => {
    const uid = asRoot ? NOBODY : undefined
    const esc = (s: string): string => s.replace(/[\\:]/g, '\\$&')
    const creds = await credentialsDir(
      join(base, 'credentials'),
      {
        'mailkey-store-key': { from: shared.fleet.keyFile },
        'mailkey-pgpass': { text: `*:*:*:*:${esc(shared.pg.password)}\n` },
        'mailkey-tls-cert': { from: ca.certFile },
        'mailkey-tls-key': { from: ca.keyFile },
      },
      uid,
    )
    const state = join(base, 'state') // systemd's StateDirectory=mailkey is XDG_STATE_HOME/mailkey
    await mkdir(state, { mode: 0o700 })
    if (uid !== undefined) await chown(state, uid, uid)
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      MAILKEY_STORE_URL: shared.fleet.url,
      CREDENTIALS_DIRECTORY: creds,
      PGPASSFILE: join(creds, 'mailkey-pgpass'),
      MAILKEY_SERVE_LISTEN: '127.0.0.1:0',
      MAILKEY_SERVE_TLS_CERT: join(creds, 'mailkey-tls-cert'),
      MAILKEY_SERVE_TLS_KEY: join(creds, 'mailkey-tls-key'),
      XDG_CONFIG_HOME: join(base, 'etc'),
      XDG_STATE_HOME: state,
    }
    assert.ok(!('HOME' in env) && !('PGPASSWORD' in env) && !('MAILKEY_STORE_KEY_FILE' in env))
    const wrap = uid !== undefined ? ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'] : []
    rep = await startReplica(shared.fleet, 'container', { bareEnv: env, listen: null, wrap })
    assert.match(rep.url, /^https:\/\/127\.0\.0\.1:\d+$/)
    const t = await api(rep.url, tokenPath(ALICE), opsKey, ca.caPem)
    assert.equal(t.status, 200, t.text)
    assert.equal(t.body.access_token, (await shared.fleet.record(ALICE))?.grant?.accessToken)
    assert.ok(existsSync(join(state, 'mailkey', 'tokens')), 'its state went to XDG_STATE_HOME/mailkey')
    const ready = await api(rep.url, '/readyz', undefined, ca.caPem)
    assert.equal(ready.status, 200, ready.text)
    const proc = `/proc/${rep.cli.child.pid}`
    if (uid !== undefined) assert.match(await readFile(`${proc}/status`, 'utf8'), new RegExp(`^Uid:\\s+${uid}\\s`, 'm'))
    const environ = (await readFile(`${proc}/environ`, 'utf8')).split('\0')
    assert.ok(
      !environ.some((e) => /^(HOME|PGPASSWORD|MAILKEY_STORE_KEY_FILE)=/.test(e)),
      'no HOME, no secret in the env',
    )
    // logs: JSON lines on stdout, nothing on stderr
    assert.equal(rep.cli.stderr(), '')
    const lines = rep.output().trim().split('\n')
    for (const l of lines) assert.equal(typeof (JSON.parse(l) as { event?: unknown }).event, 'string', l)
    assert.ok(lines.some((l) => l.includes('"event":"request"')))
    outputs.push(rep.output())
  })

  it('mailkey token over https: trusted through MAILKEY_STORE_CA, refused without it, never plain http', async () => {
    const home = await makeTmpHome()
    shared.fleet.homes.push(home)
    const keyFile = join(home.dir, 'api.key')
    await writeFile(keyFile, `${opsKey}\n`, { mode: 0o600 })
    const relay = await firstBytes(Number(new URL(rep.url).port))
    try {
      const env = {
        ...home.env,
        MAILKEY_STORE_URL: `https://127.0.0.1:${relay.port}`,
        MAILKEY_API_KEY_FILE: keyFile,
      }
      const ok = await runCli(['token', ALICE], { ...env, MAILKEY_STORE_CA: ca.caFile })
      assert.equal(ok.code, 0, ok.stderr)
      assert.equal(ok.stdout, `${(await shared.fleet.record(ALICE))?.grant?.accessToken}\n`)
      const before = relay.seen.length
      const untrusted = await runCli(['token', ALICE], env)
      assert.equal(untrusted.code, 78, untrusted.stderr)
      assert.match(untrusted.stderr, /certificate this host does not trust/)
      assert.match(untrusted.stderr, /MAILKEY_STORE_CA/)
      assert.ok(relay.seen.length > before, 'the refused attempt reached the service')
      assert.deepEqual(
        relay.seen.filter((b) => b !== 0x16),
        [],
        'every connection opened with a TLS handshake: no plain-http retry',
      )
      outputs.push(ok.stderr, untrusted.stderr)
    } finally {
      relay.server.close()
    }
  })

  it(
    'off loopback: refused without TLS (64), allowed with it',
    { skip: !(asRoot && netns) && 'needs root and unshare -n' },
    async () => {
      const home = await makeTmpHome() // the file store: the namespace has no way to the PostgreSQL
      shared.fleet.homes.push(home)
      const clear: CliResult = await runCli(['serve', '--listen', '0.0.0.0:0'], home.env)
      assert.equal(clear.code, 64, clear.stderr)
      assert.match(clear.stderr, /refusing to listen on 0\.0\.0\.0 without TLS/)
      const tls = ['--tls-cert', ca.certFile, '--tls-key', ca.keyFile]
      // a certificate that cannot work is refused at the start, not at every handshake
      for (const [cert, key, why] of [
        ['/dev/null', '/dev/null', /holds no PEM certificate/],
        [ca.caFile, ca.keyFile, /cannot serve TLS with/],
      ] as const) {
        const r = await runCli(['serve', '--listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key], home.env)
        assert.equal(r.code, 78, r.stderr)
        assert.match(r.stderr, why)
      }
      const other = spawnCli(['serve', '--listen', '10.77.0.1:0'], home.env, NETNS)
      const refused = await other.done
      assert.equal(refused.code, 64, refused.stderr)
      assert.match(refused.stderr, /refusing to listen on 10\.77\.0\.1 without TLS/)
      for (const listen of ['10.77.0.1:0', '0.0.0.0:0']) {
        const s = spawnCli(['serve', '--listen', listen, ...tls], home.env, NETNS)
        const ev = await s.event('listening', 30_000)
        assert.match(String(ev.url), new RegExp(`^https://${listen.split(':')[0]!.replace(/\./g, '\\.')}:\\d+$`))
        s.child.kill('SIGTERM')
        const done = await s.done
        assert.equal(done.code, 0, `${listen} ${done.signal} ${done.stdout} ${done.stderr}`)
        outputs.push(done.stdout, done.stderr)
      }
    },
  )

  it('SIGTERM stops the container-mode replica gracefully, and nothing secret was printed', async () => {
    rep.cli.child.kill('SIGTERM')
    const done = await rep.cli.done
    assert.equal(done.code, 0, done.stderr)
    assert.match(done.stdout, /"event":"stopped"/)
    assert.ok(!existsSync(join(base, 'etc', 'mailkey')), 'nothing written to the config directory')
    assert.deepEqual(findLeaks([...outputs, done.stdout, done.stderr], secrets.filter(Boolean)), [])
  })
})
