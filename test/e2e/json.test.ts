// End to end: every command's --json output, in success and failure, against the documented
// convention (docs/json.md) and its schema (docs/json-schema.json), with the built `mailkey`
// and a real OAuth server. A command whose output drifts (a camelCase field, a field or event the
// schema does not have, text on stdout, an error only on stderr) fails here.
//
// MAILKEY_JSON_EXAMPLES=FILE writes the first line seen of each event to FILE (docs/json.md's
// examples are taken from such a run).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startOAuthServer, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { runCli, spawnCli, type CliResult } from '../harness/cli.js'
import { labFlags, rememberTokens, signIn } from '../harness/sign-in.js'
import { checkJsonOutput, JSON_DOC } from '../harness/json-output.js'

const A = 'alice@example.test'
const G = 'grace@example.test'
/** nothing listens on port 1: every mail server test is refused at once */
const DEAD_SERVERS = ['--imap-url', 'imaps://127.0.0.1:1', '--smtp-url', 'smtp://127.0.0.1:1']

describe('--json: one shape for every command (docs/json.md)', () => {
  let lab: LabServer
  let home: TmpHome
  const examples = new Map<string, string>()

  /** The output's lines, checked; the exit code must be `code`, and a failure ends with an error line. */
  const check = (label: string, r: CliResult, code: number, o: { errorLine?: boolean } = {}): Record<string, any>[] => {
    assert.equal(r.code, code, `${label}: exit ${r.code}; stderr: ${r.stderr}`)
    const lines = checkJsonOutput(r.stdout, label, { errorLast: o.errorLine ?? code !== 0 })
    for (const [i, l] of r.stdout.trimEnd().split('\n').entries()) {
      const ev = String(lines[i]?.event)
      const key = ev === 'error' ? `error:${String(lines[i]?.error.kind)}:${label.split(' ')[0]}` : ev
      if (!examples.has(key)) examples.set(key, `${label}\n${l}`)
    }
    return lines
  }
  const json = async (
    args: string[],
    code: number,
    o: { stdin?: string; errorLine?: boolean } = {},
  ): Promise<Record<string, any>[]> =>
    check(
      args.join(' '),
      await runCli([...args, '--json'], home.env, o.stdin === undefined ? {} : { stdin: o.stdin }),
      code,
      o,
    )
  const last = (lines: Record<string, any>[]): Record<string, any> => lines.at(-1) as Record<string, any>

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    home = await makeTmpHome()
  })
  after(async () => {
    await lab.close()
    await home.cleanup()
    const file = process.env.MAILKEY_JSON_EXAMPLES
    if (file) await writeFile(file, [...examples.values()].join('\n\n') + '\n')
  })

  it('add: plan, device_code and signed_in with the account status and the next command', async () => {
    const { result } = await signIn(lab, home.env, A, [...labFlags(lab), ...DEAD_SERVERS])
    const lines = check('add --device', result, 0)
    assert.deepEqual(
      lines.map((l) => l.event),
      ['plan', 'device_code', 'signed_in'],
    )
    assert.equal(last(lines).next, `mailkey token ${A}`)
    assert.equal(last(lines).status.access_token.valid, true)
    assert.equal(last(lines).status.account, A, 'the status inside says account, as every event does')
  })

  it('add, declined: the error line (needs-sign-in) after the events, with the command to run', async () => {
    const cli = spawnCli(['add', 'frank@example.test', '--device', '--json', ...labFlags(lab)], home.env)
    await lab.approveDevice(String((await cli.event('device_code')).user_code), {
      login: 'frank@example.test',
      deny: true,
    })
    const err = last(check('add --device (declined)', await cli.done, 77)).error
    assert.equal(err.kind, 'needs-sign-in')
    assert.equal(err.exit_code, 77)
    assert.equal(err.next, 'mailkey add frank@example.test')
  })

  it('add with bad flags: a bad-request error line', async () => {
    const err = last(await json(['add', A, '--device', '--browser'], 64)).error
    assert.deepEqual([err.kind, err.code], ['bad-request', 'ERR_MAILKEY_USAGE'])
  })

  it('token and token --sasl', async () => {
    const t = last(await json(['token', A], 0))
    assert.equal(t.event, 'token')
    assert.equal(t.account, A)
    const s = last(await json(['token', A, '--sasl', 'xoauth2'], 0))
    assert.equal(Buffer.from(s.response, 'base64').toString().split('\x01')[0], `user=${A}`)
  })

  it('token for an unknown account: an error line on stdout, not nothing (issue 15, item 9)', async () => {
    const err = last(await json(['token', 'nobody@example.test'], 78)).error
    assert.equal(err.kind, 'unknown-account')
    assert.equal(err.account, 'nobody@example.test')
    assert.equal(err.next, 'mailkey add nobody@example.test')
    const usage = last(await json(['token'], 64)).error
    assert.equal(usage.kind, 'bad-request')
  })

  it('status, status of all, list', async () => {
    const one = last(await json(['status', A], 0))
    assert.equal(one.event, 'account')
    assert.equal(one.client_id, 'mailkey-lab')
    assert.equal(one.next, undefined, 'nothing to do for a working account')
    // the names the token event uses: the address is `account`, the remaining life `expires_in`
    assert.equal(one.account, A)
    assert.ok(Number.isInteger(one.access_token.expires_in) && one.access_token.expires_in > 0)
    assert.equal(one.access_token.expires_in_sec, undefined)
    const all = last(await json(['status'], 0))
    assert.deepEqual(
      all.accounts.map((a: { account: string }) => a.account),
      [A],
    )
    const list = last(await json(['list'], 0))
    assert.equal(list.accounts[0].account, A)
    assert.equal(list.accounts[0].access_token.expires_at, one.access_token.expires_at, 'nested as in status')
    assert.equal(last(await json(['status', 'nobody@example.test'], 78)).error.kind, 'unknown-account')
  })

  it('test: each protocol refused, as a result with the usual kinds and exit codes', async () => {
    const args = ['test', A, '--protocol', 'imap', '--protocol', 'smtp', '--timeout', '5', '--json']
    const run = await runCli(args, home.env)
    const r = last(check(args.join(' '), run, run.code ?? -1, { errorLine: false }))
    assert.equal(r.event, 'test')
    assert.equal(r.ok, false)
    assert.equal(r.results.length, 2)
    for (const p of r.results) {
      assert.equal(p.ok, false)
      assert.equal(p.error.kind, p.error.exit_code === 75 ? 'unavailable' : 'failed', JSON.stringify(p))
    }
    assert.equal(run.code, r.results[0].error.exit_code, "the exit code is the first failure's")
    assert.equal(last(await json(['test', A, '--protocol', 'nntp'], 64)).error.kind, 'bad-request')
  })

  it('config: the clients, a configuration, an unknown client', async () => {
    assert.ok(last(await json(['config'], 0)).clients.some((c: { name: string }) => c.name === 'msmtp'))
    const c = last(await json(['config', 'msmtp', A], 0))
    assert.match(c.text, /passwordeval/)
    assert.equal(last(await json(['config', 'nosuchclient', A], 64)).error.kind, 'bad-request')
  })

  it('serve key add, list, remove', async () => {
    const added = last(await json(['serve', 'key', 'add', 'ops', '--accounts', A], 0))
    assert.deepEqual(added.accounts, [A])
    assert.deepEqual(
      last(await json(['serve', 'key', 'list'], 0)).keys.map((k: { name: string }) => k.name),
      ['ops'],
    )
    assert.equal(last(await json(['serve', 'key', 'remove', 'ops'], 0)).name, 'ops')
    assert.equal(last(await json(['serve', 'key', 'remove', 'ops'], 64)).error.kind, 'bad-request')
    // no verb: a usage error like any other, not the help on stdout
    assert.match(last(await json(['serve', 'key'], 64)).error.hint, /mailkey serve key --help/)
  })

  it('proxy: password, listening, install-service', async () => {
    const pw = last(await json(['proxy', 'password', A, '--save'], 0, { stdin: 'a-long-local-password\n' }))
    assert.equal(pw.account, A)
    const proxy = spawnCli(['proxy', '--imap-port', '0', '--json'], home.env)
    await proxy.event('listening')
    proxy.child.kill('SIGTERM')
    // its stdout only: the signal may come before the proxy's own SIGTERM handler is set
    const lines = checkJsonOutput((await proxy.done).stdout, 'proxy --imap-port 0')
    examples.set('listening', `proxy --imap-port 0 --json\n${JSON.stringify(lines[0])}`)
    assert.equal(lines[0]?.protocol, 'imap')
    assert.match(last(await json(['proxy', 'install-service'], 0)).file, /mailkey-proxy\.service$/)
    assert.equal(last(await json(['proxy', '--imap-port', 'x'], 64)).error.kind, 'bad-request')
  })

  it('store status, migrate, lock; unlock, passphrase and init where they cannot work', async () => {
    const st = last(await json(['store', 'status'], 0))
    assert.equal(st.kind, 'file')
    assert.ok(Number.isInteger(st.account_count) && Number.isInteger(st.encrypted_count), JSON.stringify(st))
    assert.equal(st.accounts, undefined, 'accounts is an array everywhere else')
    assert.equal(last(await json(['store', 'migrate', '--to', 'file'], 0)).to, 'file')
    assert.equal(last(await json(['lock'], 0)).agent_stopped, false)
    for (const args of [['unlock'], ['store', 'passphrase'], ['store', 'init']])
      assert.equal(last(await json(args, 64)).error.kind, 'bad-request', args.join(' '))
  })

  it('sweep: a summary line', async () => {
    const swept = last(await json(['sweep'], 0))
    assert.equal(swept.event, 'swept')
    assert.equal(swept.refreshed_count, 0, 'a count, where refreshed is a boolean in the token event')
  })

  it('import: the status of the imported grant', async () => {
    const other = await makeTmpHome()
    try {
      const { refreshToken } = await signIn(lab, other.env, G)
      const file = join(home.dir, 'rt.txt')
      await writeFile(file, refreshToken + '\n', { mode: 0o600 })
      const imported = last(await json(['import', G, '--refresh-token-file', file, ...labFlags(lab)], 0))
      assert.equal(imported.status.flow, 'import')
      const missing = join(home.dir, 'missing.txt')
      assert.equal(
        last(await json(['import', G, '--refresh-token-file', missing, ...labFlags(lab)], 64)).error.kind,
        'bad-request',
      )
    } finally {
      await other.cleanup()
    }
  })

  it('an account that needs a sign-in: token says so with the command, status no longer calls its token valid', async () => {
    const { refreshToken } = await rememberTokens(home.env, A)
    await lab.revokeGrant(refreshToken)
    const forced = last(await json(['token', A, '--force-refresh'], 77)).error
    assert.equal(forced.kind, 'needs-sign-in')
    const err = last(await json(['token', A], 77)).error
    assert.deepEqual([err.kind, err.exit_code, err.account, err.next], ['needs-sign-in', 77, A, `mailkey add ${A}`])
    const st = last(await json(['status', A], 0))
    assert.equal(st.state, 'reauth')
    assert.equal(st.access_token.valid, false, 'a token mailkey will not hand out is not valid (issue 15, item 7)')
    assert.equal(st.next, `mailkey add ${A}`)
    const rec = JSON.parse(await readFile(recordFile(home.env, A), 'utf8')) as { grant: { expiresAt: number } }
    assert.ok(rec.grant.expiresAt > Date.now(), 'the stored token has not expired: only the grant is dead')
    const listed = last(await json(['list'], 0)).accounts as { account: string; next?: string }[]
    assert.equal(listed.find((a) => a.account === A)?.next, `mailkey add ${A}`)
    assert.equal(listed.find((a) => a.account === G)?.next, undefined)
    const sweep = await json(['sweep'], 77, { errorLine: false })
    const swept = sweep.find((l) => l.event === 'sweep' && l.account === A)
    assert.equal(swept?.next, `mailkey add ${A}`)
    assert.match(swept?.reauth_message ?? '', /mailkey add/, 'the message is reauth_message; reauth stays a boolean')
    assert.equal(swept?.reauth, undefined)
    assert.equal(last(sweep).needs_sign_in_count, 1)
  })

  it('remove, then remove again', async () => {
    assert.equal(last(await json(['remove', A], 0)).account, A)
    assert.equal(last(await json(['remove', A], 78)).error.kind, 'unknown-account')
  })

  it('an unknown command', async () => {
    assert.equal(last(await json(['frobnicate'], 64)).error.kind, 'bad-request')
  })

  it('saw an example of every event the schema has but the shared store and the agent', () => {
    const seen = new Set([...examples.keys()].map((k) => k.split(':')[0]))
    const notHere = ['client_rejected', 'authorization_url', 'certificate', 'store_init', 'key_rotated', 'unlocked']
    notHere.push('passphrase_changed')
    notHere.push('graph') // add --graph: test/e2e/graph-*.test.ts check its lines against the schema
    const missing = Object.keys(JSON_DOC.events).filter((e) => !seen.has(e) && !notHere.includes(e))
    assert.deepEqual(missing, [])
  })
})
