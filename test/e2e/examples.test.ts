// examples/ run as a user would run them (node --import tsx examples/X.ts), against the testbed,
// with the library resolved by the package's own name ("mailkey" -> dist/index.js).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startOAuthServer, introspectionUrl, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { findLeaks, noteSecrets, runCommand } from '../harness/cli.js'
import { labFlags, signIn } from '../harness/sign-in.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'
import { startSmtp, type Smtp } from '../harness/smtp-server.js'

const EMAIL = 'alice@example.test'
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const missing = [!dovecotAvailable() && 'dovecot'].filter(Boolean)
if (missing.length && process.env.CI)
  throw new Error(`the examples need Dovecot in CI: apt-get install ${DOVECOT_INSTALL_HINT}`)
if (missing.length) console.error('\n*** SKIPPING examples tests: dovecot missing ***\n')

describe(
  'examples/: the poller and the sender against the testbed',
  { skip: missing.length ? 'dovecot not installed' : false },
  () => {
    let lab: LabServer
    let dovecot: Dovecot
    let smtp: Smtp
    let home: TmpHome
    let env: Record<string, string>
    const outputs: string[] = []
    const secrets: string[] = []
    const example = async (
      file: string,
      args: string[],
      stdin = '',
    ): Promise<{ code: number; stdout: string; stderr: string }> => {
      const r = await runCommand(
        process.execPath,
        ['--import', 'tsx', join(ROOT, 'examples', file), ...args],
        env,
        stdin,
      )
      outputs.push(r.stdout + r.stderr)
      return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr }
    }

    before(async () => {
      lab = await startOAuthServer({ deviceInterval: 1 })
      dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer) })
      smtp = await startSmtp({
        introspect: (t, s) => lab.introspect(t, { service: s }),
        tls: { certFile: dovecot.certFile, keyFile: dovecot.keyFile },
      })
      home = await makeTmpHome()
      // the test CA, the way any Node program is told about one
      env = { ...home.env, NODE_EXTRA_CA_CERTS: dovecot.caFile }
      await signIn(lab, home.env, EMAIL, [
        ...labFlags(lab),
        '--imap-url',
        `imaps://localhost:${dovecot.ports.imaps}`,
        '--smtp-url',
        `smtp://localhost:${smtp.ports.submission}`,
        '--ca',
        dovecot.caFile,
      ])
    })
    after(async () => {
      await smtp?.stop()
      await dovecot?.stop()
      await lab?.close()
      await home?.cleanup()
    })

    const record = async (): Promise<{ grant: { accessToken: string; refreshToken: string; expiresAt: number } }> =>
      JSON.parse(await readFile(recordFile(home.env, EMAIL), 'utf8'))

    it('the poller prints each INBOX message once, as JSON lines', async () => {
      const r = await example('poller.ts', [EMAIL, '--once'])
      assert.equal(r.code, 0, r.stderr)
      const lines = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { uid: number; subject: string })
      assert.deepEqual(
        lines.map((l) => l.uid),
        [1, 2, 3],
      )
      assert.ok(
        lines.every((l) => /Seed message/.test(l.subject)),
        r.stdout,
      )
    })

    it('the poller refreshes an expired token before connecting (one refresh at the server)', async () => {
      const rec = await record()
      rec.grant.expiresAt = Date.now() - 1000
      await writeFile(recordFile(home.env, EMAIL), JSON.stringify(rec), { mode: 0o600 })
      lab.resetCounts()
      const r = await example('poller.ts', [EMAIL, '--once'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.trim().split('\n').length, 3)
      assert.equal(lab.counts.refresh, 1)
    })

    it('the sender sends with nodemailer and a token from mailkey', async () => {
      const before = smtp.received.length
      const r = await example(
        'sender.ts',
        [EMAIL, 'bob@example.test', 'from the example'],
        'hello from examples/sender.ts\n',
      )
      assert.equal(r.code, 0, r.stderr)
      assert.deepEqual((JSON.parse(r.stdout) as { accepted: string[] }).accepted, ['bob@example.test'])
      assert.equal(smtp.received.length, before + 1)
      assert.equal(smtp.received.at(-1)?.user, EMAIL)
    })

    it('a revoked grant: both refuse once, force one refresh, then stop with exit 77 and the command to run', async () => {
      const rec = await record()
      secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
      await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
      await lab.revokeGrant(rec.grant.accessToken)
      const p = await example('poller.ts', [EMAIL, '--once'])
      assert.equal(p.code, 77, p.stderr)
      assert.match(p.stderr, /the server refused the token; refreshing it once/)
      assert.match(p.stderr, /Run "mailkey add alice@example\.test" to sign in again/)
      assert.equal(p.stdout, '')
      const s = await example('sender.ts', [EMAIL, 'bob@example.test', 'never sent'], 'x\n')
      assert.equal(s.code, 77, s.stderr)
      assert.match(s.stderr, /Run "mailkey add alice@example\.test" to sign in again/)
    })

    it("no secret in the examples' output", () => {
      assert.deepEqual(findLeaks(outputs, secrets), [])
    })
  },
)
