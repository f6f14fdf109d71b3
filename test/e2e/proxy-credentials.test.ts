// `mailkey proxy` protecting the local password (issue 11, items 2, 3 and 6), with real sockets
// against the real testbed (Dovecot with an oauth2 passdb -> the lab OAuth server):
// - a STARTTLS listener bound beyond loopback takes no credentials before STARTTLS, even from
//   127.0.0.1, and nothing sent in clear is checked;
// - parallel connections from one address share one guess budget; a known-good password still
//   gets in at once;
// - mbsync with a Cyrus XOAUTH2 plugin never gets the local password to the provider; unknown and
//   known accounts get the same answer.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, readdir, writeFile, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { startOAuthServer, introspectionUrl, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, type TmpHome } from '../harness/tmp-home.js'
import { runCli, spawnCli, transcript, findLeaks, type LiveCli, have, runCommand } from '../harness/cli.js'
import { labFlags, signIn } from '../harness/sign-in.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'
import { LineClient } from '../harness/line-client.js'

const ALICE = 'alice@example.test'
// no spaces: a Cyrus XOAUTH2 plugin then sends it as a well-formed token (one with spaces is caught earlier, in the session)
const LOCAL_PW = 'local-proxy-pw-3'
const SASL_XOAUTH2 = '/usr/lib/x86_64-linux-gnu/sasl2/libkdexoauth2.so'
const missing = [
  !dovecotAvailable() && 'dovecot',
  !have('mbsync') && 'isync',
  !existsSync(SASL_XOAUTH2) && 'libsasl2-modules-kdexoauth2',
].filter(Boolean)
if (missing.length && process.env.CI)
  throw new Error(
    `the proxy credential tests need ${missing.join(', ')} in CI: apt-get install ${DOVECOT_INSTALL_HINT} isync libsasl2-modules-kdexoauth2`,
  )
if (missing.length) console.error(`\n*** SKIPPING proxy credential tests: ${missing.join(', ')} missing ***\n`)
const skip = missing.length ? `${missing.join(', ')} not installed` : false

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')

function logEvents(p: LiveCli): Record<string, unknown>[] {
  return p
    .stderr()
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

describe('mailkey proxy: the local password stays local', { skip }, () => {
  let lab: LabServer
  let dovecot: Dovecot
  let home: TmpHome
  const procs: LiveCli[] = []
  const secrets: string[] = [LOCAL_PW]
  const configFile = (): string => join(home.env.XDG_CONFIG_HOME as string, 'mailkey', 'config.toml')

  async function startProxy(args: string[], want = 1): Promise<{ proc: LiveCli; ports: Record<string, number> }> {
    const proc = spawnCli(['proxy', ...args], home.env)
    procs.push(proc)
    const end = Date.now() + 15_000
    while (proc.events('listening').length < want && Date.now() < end) await sleep(50)
    assert.equal(proc.events('listening').length, want, proc.stderr())
    const ports: Record<string, number> = {}
    for (const l of proc.events('listening')) ports[String(l.protocol)] = Number(l.port)
    return { proc, ports }
  }

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer) })
    home = await makeTmpHome()
    const p = dovecot.ports
    await signIn(
      lab,
      home.env,
      ALICE,
      [
        ...labFlags(lab),
        '--imap-url',
        `imaps://localhost:${p.imaps}`,
        '--pop-url',
        `pop3s://localhost:${p.pop3s}`,
        '--ca',
        dovecot.caFile,
      ],
      secrets,
    )
    const pw = await runCli(['proxy', 'password', ALICE], home.env, { stdin: LOCAL_PW + '\n' })
    assert.equal(pw.code, 0, pw.stderr)
    await mkdir(join(home.env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
  })
  after(async () => {
    for (const p of procs) p.child.kill('SIGTERM')
    await Promise.all(procs.map((p) => p.done))
    await dovecot?.stop()
    await lab?.close()
    await home?.cleanup()
  })

  it('a STARTTLS listener on 0.0.0.0, reached over 127.0.0.1, takes no credentials in clear and checks none (item 2)', async () => {
    const { proc, ports } = await startProxy(
      ['--host', '0.0.0.0', '--imap-port', '0', '--pop-port', '0', '--smtp-port', '0', '--tls', 'starttls'],
      3,
    )
    // IMAP: RFC 9051 §6.2.3 LOGINDISABLED, no AUTH=; LOGIN and AUTHENTICATE refused
    const imap = await LineClient.open(ports.imap as number)
    const greeting = await imap.until(/^\* OK .*\r\n/m)
    assert.match(greeting, /LOGINDISABLED/)
    assert.doesNotMatch(greeting, /AUTH=/)
    imap.send(`a1 LOGIN ${ALICE} "${LOCAL_PW}"`)
    assert.match(await imap.until(/^a1 .*$/m), /^a1 NO \[PRIVACYREQUIRED\]/)
    imap.send(`a2 AUTHENTICATE PLAIN ${b64(`\0${ALICE}\0${LOCAL_PW}`)}`)
    assert.match(await imap.until(/^a2 .*$/m), /^a2 NO \[PRIVACYREQUIRED\]/)
    // after STARTTLS the same password logs in
    imap.send('a3 STARTTLS')
    await imap.until(/^a3 OK/m)
    await imap.starttls()
    imap.send('a4 CAPABILITY')
    const caps = await imap.until(/^\* CAPABILITY .*$/m)
    assert.doesNotMatch(caps, /LOGINDISABLED/)
    assert.match(caps, /AUTH=PLAIN/)
    imap.send(`a5 LOGIN ${ALICE} "${LOCAL_PW}"`)
    assert.match(await imap.until(/^a5 .*$/m), /^a5 OK/)
    imap.close()

    // POP3: RFC 2595 §4 / RFC 2449: no USER or SASL in CAPA before STLS; USER, PASS, AUTH refused
    const pop = await LineClient.open(ports.pop3 as number)
    await pop.until(/^\+OK .*\r\n/m)
    pop.send('CAPA')
    const capa = await pop.until(/^\+OK Capability[\s\S]*?\r\n\.\r\n/m)
    assert.match(capa, /^STLS\r$/m)
    assert.doesNotMatch(capa, /^(USER|SASL)/m)
    pop.send(`USER ${ALICE}`)
    pop.send(`PASS ${LOCAL_PW}`)
    pop.send(`AUTH PLAIN ${b64(`\0${ALICE}\0${LOCAL_PW}`)}`)
    await pop.until(/(-ERR \[AUTH\] TLS required[^\n]*\n[\s\S]*){3}/)
    pop.close()

    // SMTP: RFC 3207 §4.2: no AUTH in EHLO before STARTTLS; AUTH answered 530 5.7.0
    const smtp = await LineClient.open(ports.smtp as number)
    await smtp.until(/^220 .*\r\n/m)
    smtp.send('EHLO client.example')
    const ehlo = await smtp.until(/^250 .*\r\n/m)
    assert.doesNotMatch(smtp.text, /AUTH/, ehlo)
    smtp.send(`AUTH PLAIN ${b64(`\0${ALICE}\0${LOCAL_PW}`)}`)
    assert.match(await smtp.until(/^5\d\d .*$/m), /^530 5\.7\.0 Must issue a STARTTLS command first/)
    smtp.close()

    // Nothing sent in clear was checked: one login event in all, the one after STARTTLS.
    await sleep(200)
    const logins = logEvents(proc).filter((e) => e.event === 'login')
    assert.deepEqual(
      logins.map((e) => [e.proto, e.outcome]),
      [['imap', 'ok']],
      proc.stderr(),
    )
  })

  it('parallel connections from one address share one guess budget; a known-good password still gets in at once (item 3)', async () => {
    // A budget of 4 guesses that does not refill during the test: the count is exact.
    await writeFile(configFile(), '[proxy]\nguess_burst_per_address = 4\nguesses_per_min_per_address = 0.01\n')
    try {
      const { proc, ports } = await startProxy(['--imap-port', '0'])
      const port = ports.imap as number
      // the owner's first login, before any attack: verified once, then remembered
      const owner = await LineClient.open(port)
      await owner.until(/^\* OK/m)
      owner.send(`o1 LOGIN ${ALICE} "${LOCAL_PW}"`)
      assert.match(await owner.until(/^o1 .*$/m), /^o1 OK/)
      owner.close()
      // 40 parallel attackers, one wrong password each
      const attackers = await Promise.all(Array.from({ length: 40 }, () => LineClient.open(port)))
      await Promise.all(attackers.map((c) => c.until(/^\* OK/m)))
      attackers.forEach((c, i) => c.send(`x1 LOGIN ${ALICE} "wrong guess ${i}"`))
      const replies = await Promise.all(attackers.map((c) => c.until(/^x1 .*$/m, 60_000)))
      const checked = replies.filter((r) => /AUTHENTICATIONFAILED/.test(r))
      const refused = replies.filter((r) => /^x1 NO \[UNAVAILABLE\] .*Too many login attempts/.test(r))
      assert.equal(checked.length, 4, replies.join('\n'))
      assert.equal(refused.length, 36, replies.join('\n'))
      // the budget is spent: another wrong guess, on a connection that already had one, is refused too
      attackers[0]?.send('x2 LOGIN alice@example.test "another guess"')
      assert.match(await (attackers[0] as LineClient).until(/^x2 .*$/m), /^x2 NO \[UNAVAILABLE\]/)
      // ...but the owner's known-good password is accepted without a check
      const again = await LineClient.open(port)
      await again.until(/^\* OK/m)
      again.send(`o2 LOGIN ${ALICE} "${LOCAL_PW}"`)
      assert.match(await again.until(/^o2 .*$/m), /^o2 OK/)
      again.send('o3 EXAMINE INBOX')
      assert.match(await again.until(/^o3 .*$/m), /^o3 OK/)
      again.close()
      for (const c of attackers) c.close()
      const events = logEvents(proc).filter((e) => e.event === 'login')
      assert.equal(events.filter((e) => e.outcome === 'bad-credentials').length, 4)
      assert.equal(events.filter((e) => e.outcome === 'throttled').length, 37)
    } finally {
      await rm(configFile(), { force: true })
    }
  })

  async function mbsync(port: number, name: string): Promise<{ code: number | null; out: string; files: number }> {
    const dir = join(home.dir, name)
    await mkdir(join(dir, 'mail'), { recursive: true })
    const pwFile = join(dir, 'pw')
    await writeFile(pwFile, LOCAL_PW + '\n', { mode: 0o600 })
    const rc = join(dir, 'mbsyncrc')
    // No AuthMechs: Cyrus SASL picks the mechanism, and with the XOAUTH2 plugin installed it
    // prefers XOAUTH2 when the server offers it (the issue's mbsync user).
    await writeFile(
      rc,
      [
        'IMAPAccount proxy',
        'Host 127.0.0.1',
        `Port ${port}`,
        `User ${ALICE}`,
        `PassCmd "cat ${pwFile}"`,
        'SSLType None',
        '',
        'IMAPStore remote',
        'Account proxy',
        '',
        'MaildirStore local',
        `Path ${join(dir, 'mail')}/`,
        `Inbox ${join(dir, 'mail', 'INBOX')}`,
        '',
        'Channel inbox',
        'Far :remote:INBOX',
        'Near :local:INBOX',
        'Create Near',
        'Sync Pull',
        `SyncState ${dir}/`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    )
    const r = await runCommand('mbsync', ['-c', rc, '-a'], home.env)
    const inbox = join(dir, 'mail', 'INBOX')
    const files = existsSync(inbox)
      ? (await readdir(join(inbox, 'new'))).length + (await readdir(join(inbox, 'cur'))).length
      : 0
    return { code: r.code, out: r.stdout + r.stderr, files }
  }

  it('mbsync with the XOAUTH2 SASL plugin and no AuthMechs syncs; the provider never sees the local password (item 6)', async () => {
    const { proc, ports } = await startProxy(['--imap-port', '0'])
    const r = await mbsync(ports.imap as number, 'mbsync-default')
    assert.equal(r.code, 0, r.out)
    assert.equal(r.files, 3)
    assert.ok(lab.introspectedHashes.length > 0, 'the upstream login reached the provider')
    assert.ok(!lab.introspectedHashes.includes(sha256(LOCAL_PW)), 'the local password reached the provider')
    assert.ok(
      logEvents(proc).some((e) => e.event === 'login' && e.outcome === 'ok'),
      'a password login',
    )
  })

  it('with --oauth-passthrough, mbsync sending the local password as an XOAUTH2 token is a password login, never forwarded', async () => {
    const { proc, ports } = await startProxy(['--imap-port', '0', '--oauth-passthrough'])
    const r = await mbsync(ports.imap as number, 'mbsync-passthrough')
    assert.equal(r.code, 0, r.out)
    assert.ok(!lab.introspectedHashes.includes(sha256(LOCAL_PW)), 'the local password reached the provider')
    const ev = logEvents(proc).filter((e) => e.event === 'passthrough')
    assert.ok(
      ev.some((e) => /local password as an OAuth token/.test(String(e.msg))),
      proc.stderr(),
    )
    assert.ok(ev.some((e) => e.outcome === 'ok'))
  })

  it('an unknown account and a known one with a wrong token get the same answer (item 6)', async () => {
    const { ports } = await startProxy(['--imap-port', '0', '--oauth-passthrough'])
    const ask = async (user: string): Promise<string> => {
      const c = await LineClient.open(ports.imap as number)
      await c.until(/^\* OK/m)
      c.send(`t1 AUTHENTICATE XOAUTH2 ${b64(`user=${user}\x01auth=Bearer not-a-token-anyone-issued\x01\x01`)}`)
      const line = await c.until(/^t1 .*$/m)
      c.close()
      return line.trim()
    }
    const unknown = await ask('nobody@example.test')
    const known = await ask(ALICE)
    assert.equal(unknown, known)
    assert.match(known, /^t1 NO \[AUTHENTICATIONFAILED\]/)
  })

  it('pass-through is per listener: off by default, on with oauth_passthrough = true in config.toml', async () => {
    await writeFile(
      configFile(),
      '[[proxy.listeners]]\nprotocol = "imap"\nport = 0\noauth_passthrough = true\n\n[[proxy.listeners]]\nprotocol = "imap"\nport = 0\n',
    )
    try {
      const { proc } = await startProxy([], 2)
      const greetings: string[] = []
      for (const l of proc.events('listening')) {
        const c = await LineClient.open(Number(l.port))
        greetings.push(await c.until(/^\* OK .*$/m))
        c.close()
      }
      assert.match(greetings[0] as string, /AUTH=PLAIN AUTH=LOGIN AUTH=XOAUTH2 AUTH=OAUTHBEARER/)
      assert.match(greetings[1] as string, /AUTH=PLAIN AUTH=LOGIN\]/)
      assert.doesNotMatch(greetings[1] as string, /XOAUTH2|OAUTHBEARER/)
    } finally {
      await rm(configFile(), { force: true })
    }
  })

  it('no secret in any output', () => {
    assert.deepEqual(
      findLeaks(
        [
          ...procs.map((p) => p.stderr()),
          ...transcript.filter((t) => t.args[0] !== 'token').map((t) => t.stdout + t.stderr),
        ],
        secrets,
      ),
      [],
    )
  })
})
