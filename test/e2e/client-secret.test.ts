// Issue 11, item 15: a client secret given on the command line is visible to every user in `ps`.
// `--client-secret-file -` reads it from stdin instead, for add and for import, against the lab's
// confidential client (oidc-provider refuses that client without its secret); --help says why.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startOAuthServer, LAB_CLIENT_SECRET, LAB_SECRET_CLIENT_ID, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { findLeaks, noteSecrets, runCli, spawnCli, transcript } from '../harness/cli.js'
import { LAB_SCOPE } from '../harness/sign-in.js'

describe('--client-secret-file - (stdin) for add and import', () => {
  let lab: LabServer
  let home: TmpHome
  let env: Record<string, string>
  const secrets = [LAB_CLIENT_SECRET]
  const flags = (): string[] => ['--issuer', lab.issuer, '--client-id', LAB_SECRET_CLIENT_ID, '--scope', LAB_SCOPE]

  before(async () => {
    await noteSecrets(LAB_CLIENT_SECRET)
    lab = await startOAuthServer({ deviceInterval: 1 })
    home = await makeTmpHome()
    env = home.env
  })
  after(async () => {
    await lab?.close()
    await home?.cleanup()
  })

  it('add: the secret piped on stdin signs in with the confidential client, and is stored for refreshes', async () => {
    const cli = spawnCli(
      ['add', 'bob@example.test', '--device', '--json', ...flags(), '--client-secret-file', '-'],
      env,
    )
    cli.child.stdin.end(`${LAB_CLIENT_SECRET}\n`)
    await lab.approveDevice(String((await cli.event('device_code')).user_code), { login: 'bob@example.test' })
    const r = await cli.done
    assert.equal(r.code, 0, r.stderr)
    const rec = JSON.parse(await readFile(recordFile(env, 'bob@example.test'), 'utf8')) as {
      settings: { clientSecret?: string }
      grant: { refreshToken: string; accessToken: string }
    }
    secrets.push(rec.grant.refreshToken, rec.grant.accessToken)
    await noteSecrets(rec.grant.refreshToken, rec.grant.accessToken)
    assert.equal(rec.settings.clientSecret, LAB_CLIENT_SECRET)
    const t = await runCli(['token', 'bob@example.test', '--force-refresh'], env)
    assert.equal(t.code, 0, t.stderr)
    secrets.push(t.stdout.trim())
  })

  it('import: the refresh token from a file, the secret from stdin', async () => {
    const { grant } = JSON.parse(await readFile(recordFile(env, 'bob@example.test'), 'utf8')) as {
      grant: { refreshToken: string }
    }
    const file = join(home.dir, 'rt.txt')
    await writeFile(file, grant.refreshToken + '\n', { mode: 0o600 })
    const r = await runCli(
      ['import', 'carol@example.test', '--refresh-token-file', file, ...flags(), '--client-secret-file', '-'],
      env,
      { stdin: `${LAB_CLIENT_SECRET}\n` },
    )
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /Imported the grant for carol@example\.test/)
    const rec = JSON.parse(await readFile(recordFile(env, 'carol@example.test'), 'utf8')) as {
      settings: { clientSecret?: string }
      grant: { refreshToken: string; accessToken: string }
    }
    secrets.push(rec.grant.refreshToken, rec.grant.accessToken)
    await noteSecrets(rec.grant.refreshToken, rec.grant.accessToken)
    assert.equal(rec.settings.clientSecret, LAB_CLIENT_SECRET)
  })

  it('stdin can carry only one thing; an empty secret is refused', async () => {
    const both = await runCli(
      ['import', 'dave@example.test', '--refresh-token-file', '-', ...flags(), '--client-secret-file', '-'],
      env,
      { stdin: 'x\n' },
    )
    assert.equal(both.code, 64)
    assert.match(both.stderr, /both read stdin/)
    const paste = await runCli(['add', 'dave@example.test', '--paste', ...flags(), '--client-secret-file', '-'], env, {
      stdin: 'x\n',
    })
    assert.equal(paste.code, 64)
    assert.match(paste.stderr, /--paste takes the address back/)
    const empty = await runCli(['add', 'dave@example.test', '--device', ...flags(), '--client-secret-file', '-'], env, {
      stdin: '\n',
    })
    assert.equal(empty.code, 64)
    assert.match(empty.stderr, /gives an empty secret/)
  })

  it('--help says that --client-secret S shows in "ps" and names --client-secret-file', async () => {
    const h = await runCli(['--help'], env)
    assert.match(h.stdout, /--client-secret-file F \(- for stdin\)/)
    assert.match(h.stdout, /--client-secret S +\(also works, but other users see it in "ps"/)
  })

  it('no secret in any output', () => {
    // (mailkey token prints a token on stdout by design)
    assert.deepEqual(
      findLeaks(
        transcript.filter((t) => t.args[0] !== 'token').map((t) => t.stdout + t.stderr),
        secrets,
      ),
      [],
    )
  })
})
