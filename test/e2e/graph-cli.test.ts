// Issue 16 from the command line: `mailkey send` (sendmail-style, for git, cron and scripts) for an
// account that sends through Microsoft Graph, one that sends over SMTP, and one whose mailbox
// refuses SMTP AUTH without Graph; a browser-style (--paste) sign-in with --graph, where the Graph
// scope is consented in the same authorization request and its token comes from a refresh; and
// what status shows. Real lab OAuth server, SMTP testbed and Graph emulator (test/harness/graph-lab.ts).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BIN, findLeaks, have, runCli, runCommand, spawnCli, transcript } from '../harness/cli.js'
import { LAB_SCOPE, labFlags } from '../harness/sign-in.js'
import { runInPty } from '../harness/pty.js'
import { repoWithOneCommit } from '../harness/git.js'
import { checkJsonOutput } from '../harness/json-output.js'
import { assertAdded, startGraphLab, type GraphLab } from '../harness/graph-lab.js'

const ALICE = 'alice@example.test'
const DAVE = 'dave@example.test'
const CAROL = 'carol@example.test'
const PAT = 'pat@example.test'
const QUINN = 'quinn@example.test'
const skip = !have('git') ? 'git not installed' : false
if (skip && process.env.CI) throw new Error('the Graph CLI tests need git in CI')

describe('mailkey send, add --graph --paste, status', { skip }, () => {
  let g: GraphLab

  before(async () => {
    g = await startGraphLab({ smtpAuthDisabled: (u) => u === ALICE || u === CAROL || u === QUINN })
    assertAdded(await g.add(ALICE, g.serverFlags(true)))
    assertAdded(await g.add(DAVE, g.serverFlags(false)))
    assertAdded(await g.add(CAROL, [...g.serverFlags(false), '--send', 'auto']))
  })
  after(async () => await g?.stop())

  const send = (args: string[], stdin: string) => runCli(['send', ...args], g.home.env, { stdin })

  it('mailkey send -t: through Graph, Bcc taken from the header and removed from it, LF made CRLF', async () => {
    const before = g.graph.received.length
    const r = await send(
      ['-t', '-oi', '-v'],
      `From: ${ALICE}\nTo: bob@example.test\nBcc: eve@example.test\nSubject: cron\n\nreport\n`,
    )
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /via Microsoft Graph/)
    assert.equal(g.graph.received.length, before + 1)
    const got = g.graph.received.at(-1)
    assert.deepEqual(got?.to, ['bob@example.test'])
    assert.deepEqual(got?.bcc, ['eve@example.test'])
    assert.equal(
      got?.mime?.toString(),
      `Bcc: eve@example.test\r\nFrom: ${ALICE}\r\nTo: bob@example.test\r\nSubject: cron\r\n\r\nreport\r\n`,
    )
  })

  it('git send-email with sendemail.sendmailcmd = mailkey send', async () => {
    const h = join(g.home.dir, 'git-home')
    const repo = join(h, 'repo')
    await mkdir(repo, { recursive: true })
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} send`
    await writeFile(
      join(h, '.gitconfig'),
      `[user]\n\tname = Alice\n\temail = ${ALICE}\n[sendemail]\n\tsendmailcmd = ${cmd.replace(/"/g, '\\"').replace(/^/, '"').replace(/$/, '"')}\n`,
    )
    const genv = { ...g.home.env, HOME: h, GIT_CONFIG_NOSYSTEM: '1' }
    await repoWithOneCommit(repo, genv, 'sent with mailkey send')
    const before = g.graph.received.length
    const r = await runCommand(
      'git',
      [
        '-C',
        repo,
        'send-email',
        '--to=bob@example.test',
        '--cc=carl@example.test',
        '--confirm=never',
        '--suppress-cc=self',
        '-1',
      ],
      genv,
    )
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.equal(g.graph.received.length, before + 1)
    const got = g.graph.received.at(-1)
    assert.deepEqual(got?.to, ['bob@example.test'])
    assert.deepEqual(got?.cc, ['carl@example.test'])
    assert.match(got?.mime?.toString() ?? '', /Subject: \[PATCH\] sent with mailkey send\r\n/)
  })

  it('mailkey send for an SMTP account goes over SMTP with its token', async () => {
    const before = g.smtp.received.length
    const r = await send(
      ['--account', DAVE, 'bob@example.test'],
      `From: ${DAVE}\nTo: bob@example.test\nSubject: smtp\n\n.dot line\n`,
    )
    assert.equal(r.code, 0, r.stderr)
    assert.equal(g.smtp.received.length, before + 1)
    assert.equal(g.smtp.received.at(-1)?.user, DAVE)
    assert.deepEqual(g.smtp.received.at(-1)?.to, ['bob@example.test'])
  })

  it('mailkey send for a mailbox that refuses SMTP AUTH, without Graph: exit 77 and the command to run', async () => {
    const r = await send(
      ['--account', CAROL, 'bob@example.test'],
      `From: ${CAROL}\nTo: bob@example.test\nSubject: x\n\nx\n`,
    )
    assert.equal(r.code, 77, r.stderr)
    assert.match(
      r.stderr,
      /SMTP AUTH is switched off for this mailbox \(535 5\.7\.139\); run "mailkey add carol@example\.test --graph"/,
    )
  })

  it('mailkey send when Graph throttles for long: exit 75 (try again later), nothing sent', async () => {
    g.graph.script({ status: 429, headers: { 'retry-after': '300' } })
    const before = g.graph.received.length
    const r = await send([ALICE.replace('alice', 'bob')], `From: ${ALICE}\nTo: bob@example.test\nSubject: t\n\nt\n`)
    assert.equal(r.code, 75, r.stderr)
    assert.match(r.stderr, /451 4\.7\.0 Microsoft Graph is throttling this mailbox; try again in 300 s/)
    assert.equal(g.graph.received.length, before)
  })

  it('mailkey send: which account, when it cannot tell', async () => {
    const r = await send(['bob@example.test'], 'From: nobody@example.test\nSubject: x\n\nx\n')
    assert.equal(r.code, 64)
    assert.match(r.stderr, /which account sends this message\?/)
  })

  it('add --graph --paste: the Graph scope is consented in the same request; its token comes from a refresh', async () => {
    const cli = spawnCli(['add', PAT, '--paste', '--json', ...labFlags(g.lab), ...g.serverFlags(true)], g.home.env)
    const url = String((await cli.event('authorization_url')).url)
    const scope = new URL(url).searchParams.get('scope') ?? ''
    assert.match(scope, /https:\/\/outlook\.office\.com\/SMTP\.Send/)
    assert.match(scope, /https:\/\/graph\.microsoft\.com\/Mail\.Send/)
    const refreshes = g.lab.counts.refresh
    cli.child.stdin.write(`${await g.lab.completeAuthorization(url, { login: PAT })}\n`)
    const r = await cli.done
    assert.equal(r.code, 0, r.stderr)
    checkJsonOutput(r.stdout, 'add --graph --paste --json')
    assert.equal(cli.events('graph')[0]?.granted, true)
    assert.equal(g.lab.counts.refresh, refreshes + 1, 'one refresh, for the Graph token')
    const rec = await g.record(PAT)
    g.secrets.push(rec.grant.accessToken, rec.grant.refreshToken, rec.grant.resources.graph.accessToken)
    assert.equal((await g.lab.introspectGraph(rec.grant.resources.graph.accessToken)).active, true)
    assert.equal(
      (await g.lab.introspect(rec.grant.accessToken)).active,
      true,
      'the code was redeemed for the mail servers',
    )
    const st = await runCli(['status', PAT], g.home.env)
    assert.match(st.stdout, /sending +through Microsoft Graph \(https:\/\/127\.0\.0\.1:\d+\/v1\.0; Graph token until /)
  })

  it('mailkey test on a terminal offers the Graph sign-in when SMTP answers 5.7.139; yes signs in with --graph', async () => {
    const cfgDir = join(g.home.env.XDG_CONFIG_HOME as string, 'mailkey')
    await mkdir(cfgDir, { recursive: true })
    await writeFile(
      join(cfgDir, 'config.toml'),
      [
        '[providers.lab]',
        `issuer = "${g.lab.issuer}"`,
        'client_id = "mailkey-lab"',
        `scopes = [${LAB_SCOPE.split(' ')
          .map((x) => `"${x}"`)
          .join(', ')}]`,
        `smtp_url = "smtp://localhost:${g.smtp.ports.submission}"`,
        `graph_url = "${g.graph.url}"`,
        'flows = ["device"]',
        '',
      ].join('\n'),
    )
    const cli = spawnCli(['add', QUINN, '--provider', 'lab', '--device', '--json', '--ca', g.pki.caFile], g.home.env)
    await g.lab.approveDevice(String((await cli.event('device_code')).user_code), { login: QUINN })
    assert.equal((await cli.done).code, 0)
    const t = runInPty([process.execPath, BIN, 'test', QUINN, '--protocol', 'smtp'], g.home.env)
    try {
      await t.waitFor(/Sign in again with Graph now \("mailkey add quinn@example\.test --graph"\)\? \[y\/N\]/, 30_000)
      t.type('y\r')
      for (const n of [1, 2]) {
        await t.waitFor(new RegExp(`(enter the code\\s+[A-Z]{4}-[A-Z]{4}[\\s\\S]*){${n}}`), 30_000)
        const codes = [...t.screen().matchAll(/enter the code\s+([A-Z]{4}-[A-Z]{4})/g)].map((m) => m[1] as string)
        await g.lab.approveDevice(codes[n - 1] as string, { login: QUINN })
      }
      await t.waitFor(/Microsoft Graph: Mail\.Send granted/, 30_000)
      assert.equal(await t.end(30_000), 0, t.screen())
    } finally {
      await t.end(1000)
    }
    const rec = await g.record(QUINN)
    assert.equal(rec.settings.send, 'graph')
    assert.equal(rec.settings.provider, 'lab')
    g.secrets.push(rec.grant.accessToken, rec.grant.refreshToken, rec.grant.resources.graph.accessToken)
    assert.equal((await g.lab.introspectGraph(rec.grant.resources.graph.accessToken)).active, true)
  })

  it('the second (Graph) code approved by someone else: nothing is stored', async () => {
    const scope = ['--scope', `${LAB_SCOPE} openid email`]
    const r = await g.add(
      'rita@example.test',
      [...g.serverFlags(true), ...scope],
      [{}, { login: 'mallory@example.test' }],
    )
    assert.notEqual(r.code, 0)
    assert.equal(r.codes, 2)
    assert.match(r.stderr, /mallory@example\.test/)
    const st = await runCli(['status', 'rita@example.test'], g.home.env)
    assert.equal(st.code, 78, 'no account was stored')
  })

  it('the Graph code declined: the mail sign-in is kept, Graph reported, the account keeps SMTP', async () => {
    const r = await g.add('sam@example.test', g.serverFlags(true), [{}, { deny: true }])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /warning: Microsoft Graph was not granted for sam@example\.test/)
    const rec = await g.record('sam@example.test')
    assert.equal(rec.settings.send, undefined)
    assert.equal(rec.grant.resources, undefined)
  })

  it('--graph is refused for a provider without Graph', async () => {
    const r = await runCli(['add', 'x@gmail.com', '--provider', 'google', '--graph'], g.home.env)
    assert.equal(r.code, 64)
    assert.match(r.stderr, /--graph sends through Microsoft Graph; Google .* has no Graph/)
  })

  it('no token appears in any output', () => {
    assert.deepEqual(
      findLeaks(
        transcript.map((t) => t.stdout + t.stderr),
        g.secrets,
      ),
      [],
    )
  })
})
