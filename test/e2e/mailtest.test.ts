// `mailkey test` against real Dovecot (oauth2 passdb validating tokens at the real OAuth server
// by introspection), over implicit TLS and STARTTLS, with the failures users meet.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { startOAuthServer, MAIL_SCOPES, introspectionUrl, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { runCli, transcript, findLeaks } from '../harness/cli.js'
import { labFlags, signIn as labSignIn } from '../harness/sign-in.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'

const SCOPE = [...MAIL_SCOPES, 'offline_access', 'openid', 'email'].join(' ')
const skip = !dovecotAvailable()
if (skip && process.env.CI) throw new Error(`Dovecot is required in CI: ${DOVECOT_INSTALL_HINT}`)
if (skip)
  console.error(`\n*** SKIPPING mailkey test against Dovecot: Dovecot is not installed (${DOVECOT_INSTALL_HINT}) ***\n`)

describe(
  'mailkey test against Dovecot',
  { skip: skip ? `Dovecot is not installed (${DOVECOT_INSTALL_HINT})` : false },
  () => {
    let lab: LabServer
    let dovecot: Dovecot
    let home: TmpHome
    const secrets: string[] = []

    const signIn = async (email: string, extra: string[]): Promise<void> => {
      await labSignIn(lab, home.env, email, [...labFlags(lab, SCOPE), ...extra], secrets)
    }

    before(async () => {
      lab = await startOAuthServer({ deviceInterval: 1 })
      dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer) })
      home = await makeTmpHome()
      const p = dovecot.ports
      await signIn('alice@example.test', [
        '--imap-url',
        `imaps://127.0.0.1:${p.imaps}`,
        '--pop-url',
        `pop3s://localhost:${p.pop3s}`,
        '--ca',
        dovecot.caFile,
      ])
      await signIn('bob@example.test', [
        '--imap-url',
        `imap://localhost:${p.imap}`,
        '--pop-url',
        `pop3://127.0.0.1:${p.pop3}`,
        '--ca',
        dovecot.caFile,
      ])
    })
    after(async () => {
      await dovecot?.stop()
      await lab?.close()
      await home?.cleanup()
    })

    it('implicit TLS: IMAP AUTHENTICATE + SELECT INBOX and POP3 AUTH + STAT pass', async () => {
      const r = await runCli(['test', 'alice@example.test', '--protocol', 'imap', '--protocol', 'pop'], home.env)
      assert.equal(r.code, 0, r.stdout + r.stderr)
      assert.match(r.stdout, /IMAP\s+imaps:\/\/127\.0\.0\.1:\d+\s+ok/)
      assert.match(r.stdout, /SELECT INBOX \(3 messages\)/)
      assert.match(r.stdout, /POP3\s+pop3s:\/\/localhost:\d+\s+ok/)
      assert.match(r.stdout, /STAT \(3 messages\)/)
    })

    it('STARTTLS on both protocols, with the --json report', async () => {
      const r = await runCli(
        ['test', 'bob@example.test', '--protocol', 'imap', '--protocol', 'pop3', '--json'],
        home.env,
      )
      assert.equal(r.code, 0, r.stdout + r.stderr)
      const j = JSON.parse(r.stdout) as {
        ok: boolean
        results: { protocol: string; ok: boolean; steps: string[]; messages: number; mechanism: string }[]
      }
      assert.equal(j.ok, true)
      assert.deepEqual(
        j.results.map((x) => [x.protocol, x.ok, x.messages]),
        [
          ['imap', true, 3],
          ['pop', true, 3],
        ],
      )
      assert.ok(j.results[0]?.steps.includes('STARTTLS'))
      assert.ok(j.results[1]?.steps.includes('STLS'))
    })

    it('a token the server refuses although it looked valid is refreshed once and tried again', async () => {
      const raw = JSON.parse(await readFile(recordFile(home.env, 'alice@example.test'), 'utf8')) as {
        grant: { accessToken: string }
      }
      raw.grant.accessToken = 'a-dead-access-token-the-server-never-issued'
      await writeFile(recordFile(home.env, 'alice@example.test'), JSON.stringify(raw))
      const r = await runCli(['test', 'alice@example.test', '--protocol', 'imap', '--json'], home.env)
      assert.equal(r.code, 0, r.stdout + r.stderr)
      const j = JSON.parse(r.stdout) as { results: { ok: boolean; retried_with_fresh_token: boolean }[] }
      assert.equal(j.results[0]?.ok, true)
      assert.equal(j.results[0]?.retried_with_fresh_token, true)
      const rec = JSON.parse(await readFile(recordFile(home.env, 'alice@example.test'), 'utf8')) as {
        grant: { accessToken: string; refreshToken: string }
      }
      secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
      assert.notEqual(rec.grant.accessToken, 'a-dead-access-token-the-server-never-issued')
    })

    it('opening a mailbox the signed-in user does not own fails with a diagnosis naming both', async () => {
      const r = await runCli(
        ['test', 'alice@example.test', '--protocol', 'imap', '--mailbox', 'bob@example.test'],
        home.env,
      )
      assert.equal(r.code, 78, r.stdout + r.stderr)
      assert.match(r.stdout, /FAILED at auth/)
      assert.match(r.stdout, /signed in as alice@example\.test, but logging in to the mailbox bob@example\.test/)
      assert.match(r.stdout, /warning: the provider says you signed in as alice@example\.test/)
    })

    it('an untrusted certificate is refused, with the --ca fix', async () => {
      const other = await makeTmpHome()
      try {
        const saved = home
        home = other
        await signIn('carol@example.test', ['--imap-url', `imaps://127.0.0.1:${dovecot.ports.imaps}`])
        home = saved
        const r = await runCli(['test', 'carol@example.test', '--protocol', 'imap'], other.env)
        assert.equal(r.code, 78, r.stdout + r.stderr)
        assert.match(r.stdout, /is not trusted/)
        assert.match(r.stdout, /--ca ca\.pem/)
      } finally {
        await other.cleanup()
      }
    })

    it('implicit TLS against a STARTTLS port, and a closed port, are told apart', async () => {
      const other = await makeTmpHome()
      const srv = createServer()
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
      const closed = (srv.address() as { port: number }).port
      await new Promise((r) => srv.close(r))
      try {
        const saved = home
        home = other
        await signIn('dave@example.test', [
          '--imap-url',
          `imaps://127.0.0.1:${dovecot.ports.imap}`,
          '--pop-url',
          `pop3s://127.0.0.1:${closed}`,
          '--ca',
          dovecot.caFile,
        ])
        home = saved
        const r = await runCli(
          ['test', 'dave@example.test', '--protocol', 'imap', '--protocol', 'pop', '--json'],
          other.env,
        )
        assert.equal(r.code, 78, r.stdout + r.stderr)
        const j = JSON.parse(r.stdout) as {
          results: { ok: boolean; error: { kind: string; exit_code: number; cause: string; fix: string } }[]
        }
        assert.equal(j.results[0]?.error.kind, 'failed')
        assert.equal(j.results[0]?.error.exit_code, 78, 'a configuration problem')
        assert.match(j.results[0]?.error.fix ?? '', /STARTTLS port/)
        assert.equal(j.results[1]?.error.kind, 'unavailable')
        assert.equal(j.results[1]?.error.exit_code, 75)
        assert.match(j.results[1]?.error.cause ?? '', /nothing accepts connections/)
      } finally {
        await other.cleanup()
      }
    })

    it('a revoked grant: the retry cannot refresh, so the answer is "sign in again" (77)', async () => {
      const rec = JSON.parse(await readFile(recordFile(home.env, 'bob@example.test'), 'utf8')) as {
        grant: { refreshToken: string }
      }
      await lab.revokeGrant(rec.grant.refreshToken)
      const r = await runCli(['test', 'bob@example.test', '--protocol', 'imap'], home.env)
      assert.equal(r.code, 77, r.stdout + r.stderr)
      assert.match(r.stdout, /mailkey add bob@example\.test/)
    })

    it('no secret appeared in any output', () => {
      const texts = transcript.flatMap((t) => [t.stdout, t.stderr])
      assert.deepEqual(findLeaks(texts, secrets), [])
    })
  },
)
