// `mailkey proxy` with real classic clients and under stress: mbsync (isync) and fetchmail log in
// with the local password; two accounts share one listener; an expired token is refreshed in the
// middle of a run; 200 concurrent sessions; and scripted misbehaving upstream servers (STARTTLS
// injection, a connection dropped in the middle of AUTHENTICATE).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, chown, mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { startOAuthServer, introspectionUrl, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { runCli, spawnCli, transcript, findLeaks, type LiveCli, have, runCommand } from '../harness/cli.js'
import { labFlags, rememberTokens, signIn as labSignIn } from '../harness/sign-in.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'
import { startSmtp, type Smtp } from '../harness/smtp-server.js'
import { startScriptedServer, type ScriptedServer, type ScriptStep } from '../harness/scripted-server.js'

const ALICE = 'alice@example.test'
const BOB = 'bob@example.test'
const LOCAL_PW = 'local proxy pw 2'
const missing = [
  !dovecotAvailable() && 'dovecot',
  !have('mbsync') && 'mbsync',
  !have('fetchmail') && 'fetchmail',
  !have('python3') && 'python3',
].filter(Boolean)
if (missing.length && process.env.CI)
  throw new Error(
    `the proxy client tests need ${missing.join(', ')} in CI: apt-get install ${DOVECOT_INSTALL_HINT} isync fetchmail python3`,
  )
if (missing.length)
  console.error(
    `\n*** SKIPPING proxy client tests: ${missing.join(', ')} missing (apt-get install ${DOVECOT_INSTALL_HINT} isync fetchmail python3) ***\n`,
  )
const skip = missing.length ? `${missing.join(', ')} not installed` : false

interface Ports {
  imap: number
  pop3: number
  smtp: number
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * A raw IMAP client: sends each command after the previous one's tagged reply and returns the
 * whole transcript (the LOGIN line itself is not recorded). Ends early at a tagged NO/BAD.
 */
async function imapRaw(
  port: number,
  user: string,
  pw: string,
  commands: string[],
  timeoutMs = 60_000,
): Promise<{ text: string; ok: boolean }> {
  const sock = connect(port, '127.0.0.1')
  let text = ''
  let closed = false
  sock.setEncoding('utf8').on('data', (d: string) => (text += d))
  sock.on('close', () => (closed = true))
  sock.on('error', () => {})
  const deadline = Date.now() + timeoutMs
  const until = async (re: RegExp): Promise<boolean> => {
    while (!re.test(text)) {
      if (closed || Date.now() > deadline) return false
      await sleep(10)
    }
    return true
  }
  try {
    if (!(await until(/^\* OK/m))) return { text, ok: false }
    const lines = [`a1 LOGIN "${user}" "${pw}"`, ...commands.map((c, i) => `a${i + 2} ${c}`)]
    for (let i = 0; i < lines.length; i++) {
      const tag = `a${i + 1}`
      sock.write(lines[i] + '\r\n')
      if (!(await until(new RegExp(`^${tag} (OK|NO|BAD)`, 'm')))) return { text, ok: false }
      if (new RegExp(`^${tag} (NO|BAD)`, 'm').test(text)) return { text, ok: false }
    }
    return { text, ok: true }
  } finally {
    sock.destroy()
  }
}

async function startProxy(home: TmpHome, args: string[], want: number, procs: LiveCli[]): Promise<Ports> {
  const p = spawnCli(['proxy', ...args], home.env)
  procs.push(p)
  const end = Date.now() + 15_000
  while (p.events('listening').length < want && Date.now() < end) await sleep(50)
  const ports: Ports = { imap: 0, pop3: 0, smtp: 0 }
  for (const l of p.events('listening')) ports[l.protocol as keyof Ports] = Number(l.port)
  assert.equal(p.events('listening').length, want, p.stderr())
  return ports
}

async function signIn(
  lab: LabServer,
  home: TmpHome,
  email: string,
  servers: string[],
  ca: string,
  secrets: string[],
): Promise<void> {
  await labSignIn(lab, home.env, email, [...labFlags(lab), ...servers, '--ca', ca], secrets)
  const pw = await runCli(['proxy', 'password', email], home.env, { stdin: LOCAL_PW + '\n' })
  assert.equal(pw.code, 0, pw.stderr)
}

describe('mailkey proxy with classic clients: mbsync, fetchmail, two accounts, refresh', { skip }, () => {
  let lab: LabServer
  let dovecot: Dovecot
  let smtp: Smtp
  let home: TmpHome
  const procs: LiveCli[] = []
  let ports: Ports = { imap: 0, pop3: 0, smtp: 0 }
  const secrets: string[] = [LOCAL_PW]

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer) })
    smtp = await startSmtp({
      introspect: (t, s) => lab.introspect(t, { service: s }),
      tls: { certFile: dovecot.certFile, keyFile: dovecot.keyFile },
    })
    home = await makeTmpHome()
    const p = dovecot.ports
    const servers = [
      '--imap-url',
      `imaps://localhost:${p.imaps}`,
      '--pop-url',
      `pop3://localhost:${p.pop3}`,
      '--smtp-url',
      `smtp://localhost:${smtp.ports.submission}`,
    ]
    await signIn(lab, home, ALICE, servers, dovecot.caFile, secrets)
    // bob upstream over STARTTLS, alice over implicit TLS: the same listener serves both
    await signIn(
      lab,
      home,
      BOB,
      [
        '--imap-url',
        `imap://localhost:${p.imap}`,
        '--pop-url',
        `pop3s://localhost:${p.pop3s}`,
        '--smtp-url',
        `smtps://localhost:${smtp.ports.smtps}`,
      ],
      dovecot.caFile,
      secrets,
    )
    ports = await startProxy(home, ['--imap-port', '0', '--pop-port', '0', '--smtp-port', '0'], 3, procs)
  })
  after(async () => {
    for (const p of procs) p.child.kill('SIGTERM')
    await Promise.all(procs.map((p) => p.done))
    await smtp?.stop()
    await dovecot?.stop()
    await lab?.close()
    await home?.cleanup()
  })

  it('mbsync (AuthMechs LOGIN, SSLType None, PassCmd) syncs INBOX into a local Maildir', async () => {
    const dir = join(home.dir, 'mbsync')
    await mkdir(join(dir, 'mail'), { recursive: true })
    const pwFile = join(dir, 'pw')
    await writeFile(pwFile, LOCAL_PW + '\n', { mode: 0o600 })
    const rc = join(dir, 'mbsyncrc')
    await writeFile(
      rc,
      [
        'IMAPAccount proxy',
        'Host 127.0.0.1',
        `Port ${ports.imap}`,
        `User ${ALICE}`,
        `PassCmd "cat ${pwFile}"`,
        'AuthMechs LOGIN',
        // isync 1.4 spells it SSLType (1.5 renamed it TLSType); the proxy listens on loopback without TLS
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
    assert.equal(r.code, 0, r.stdout + r.stderr)
    const files = [
      ...(await readdir(join(dir, 'mail', 'INBOX', 'new'))),
      ...(await readdir(join(dir, 'mail', 'INBOX', 'cur'))),
    ]
    assert.equal(files.length, 3, `mbsync delivered ${files.length} files`)
    const bodies = await Promise.all(
      files.map(async (f) => {
        const sub = (await readdir(join(dir, 'mail', 'INBOX', 'new'))).includes(f) ? 'new' : 'cur'
        return readFile(join(dir, 'mail', 'INBOX', sub, f), 'utf8')
      }),
    )
    assert.deepEqual(bodies.map((b) => /Seed message (\d+)/.exec(b)?.[1]).sort(), ['1', '2', '3'])
  })

  async function fetchmail(proto: 'POP3' | 'IMAP', port: number): Promise<string[]> {
    const dir = join(home.dir, `fetchmail-${proto}`)
    const out = join(dir, 'out')
    await mkdir(out, { recursive: true })
    const mda = join(dir, 'mda.sh')
    await writeFile(mda, `#!/bin/sh\nexec cat > "${out}/$(date +%s%N).$$"\n`, { mode: 0o700 })
    const rc = join(dir, 'fetchmailrc')
    await writeFile(
      rc,
      [
        'set no syslog',
        `poll 127.0.0.1 with proto ${proto} port ${port} timeout 60`,
        `  user "${ALICE}" there with password "${LOCAL_PW}"`,
        `  sslproto '' keep fetchall mda "${mda}"`,
        '',
      ].join('\n'),
    )
    await chmod(rc, 0o600) // fetchmail refuses a control file others can read
    const r = await runCommand(
      'fetchmail',
      ['-f', rc, '--idfile', join(dir, 'ids'), '--pidfile', join(dir, 'pid'), '--nodetach'],
      home.env,
    )
    assert.equal(r.code, 0, `fetchmail ${proto} exit ${r.code}: ${r.stdout}${r.stderr}`)
    const files = await readdir(out)
    return Promise.all(files.map((f) => readFile(join(out, f), 'utf8')))
  }

  it('fetchmail over the POP3 listener retrieves the 3 messages, --keep leaves them', async () => {
    const msgs = await fetchmail('POP3', ports.pop3)
    assert.deepEqual(msgs.map((b) => /Seed message (\d+)/.exec(b)?.[1]).sort(), ['1', '2', '3'])
    const again = await imapRaw(ports.imap, ALICE, LOCAL_PW, ['EXAMINE INBOX'])
    assert.ok(again.ok)
    assert.match(again.text, /^\* 3 EXISTS/m, 'INBOX intact')
  })

  it('fetchmail over the IMAP listener retrieves the 3 messages', async () => {
    const msgs = await fetchmail('IMAP', ports.imap)
    assert.deepEqual(msgs.map((b) => /Seed message (\d+)/.exec(b)?.[1]).sort(), ['1', '2', '3'])
  })

  it('two accounts on one IMAP port each see their own mailbox; SMTP upstream sees each identity', async () => {
    // a message only bob has
    const bobNew = join(dovecot.mailDir(BOB), 'new')
    const file = join(bobNew, `${Math.floor(Date.now() / 1000)}.Mbob1P${process.pid}.mailkey`)
    await writeFile(file, `From: carol@example.test\r\nTo: ${BOB}\r\nSubject: only for bob\r\n\r\nhi bob\r\n`)
    await chown(file, 65534, 65534).catch(() => {})
    const [a, b] = await Promise.all([
      imapRaw(ports.imap, ALICE, LOCAL_PW, ['SELECT INBOX', 'SEARCH SUBJECT "only for bob"', 'LOGOUT']),
      imapRaw(ports.imap, BOB, LOCAL_PW, ['SELECT INBOX', 'SEARCH SUBJECT "only for bob"', 'LOGOUT']),
    ])
    assert.ok(a.ok && b.ok, 'both logged in')
    assert.match(a.text, /^\* 3 EXISTS/m)
    assert.match(b.text, /^\* 4 EXISTS/m)
    assert.match(a.text, /^\* SEARCH\r?$/m, "alice does not have bob's message")
    assert.match(b.text, /^\* SEARCH 4\r?$/m)

    const before = smtp.received.length
    const PY = `
import smtplib, os
s = smtplib.SMTP('127.0.0.1', int(os.environ['SMTP']))
s.login(os.environ['U'], os.environ['PW'])
s.sendmail(os.environ['U'], ['carol@example.test'], 'Subject: hi\\r\\n\\r\\nhello\\r\\n')
s.quit()
print('sent')
`
    const send = (u: string) =>
      runCommand('python3', ['-c', PY], { ...home.env, U: u, PW: LOCAL_PW, SMTP: String(ports.smtp) })
    const rs = await Promise.all([send(ALICE), send(BOB)])
    for (const r of rs) assert.match(r.stdout, /^sent$/m, r.stderr.slice(-300))
    assert.deepEqual(
      smtp.received
        .slice(before)
        .map((m) => m.user)
        .sort(),
      [ALICE, BOB],
    )
  })

  it('POP3 and SMTP with TLS on both sides: STLS/STARTTLS and implicit TLS towards the client; STARTTLS (alice) and implicit (bob) upstream', async () => {
    const tlsFlags = ['--tls-cert', dovecot.certFile, '--tls-key', dovecot.keyFile]
    const starttls = await startProxy(
      home,
      ['--pop-port', '0', '--smtp-port', '0', ...tlsFlags, '--tls', 'starttls'],
      2,
      procs,
    )
    const implicit = await startProxy(
      home,
      ['--pop-port', '0', '--smtp-port', '0', ...tlsFlags, '--tls', 'implicit'],
      2,
      procs,
    )
    const PY = `
import poplib, smtplib, ssl, os
ctx = ssl.create_default_context(cafile=os.environ['CA'])
u, pw, mode = os.environ['U'], os.environ['PW'], os.environ['MODE']
out = []
try:
    if mode == 'implicit':
        p = poplib.POP3_SSL('localhost', int(os.environ['POP']), context=ctx)
    else:
        p = poplib.POP3('localhost', int(os.environ['POP']))
        p.stls(context=ctx)
    p.user(u)
    p.pass_(pw)
    out.append(f'pop {p.stat()[0]} {p.sock.version()}')
    p.quit()
except Exception as e:
    out.append(f'pop FAIL {type(e).__name__}: {str(e)[:120]}')
try:
    if mode == 'implicit':
        s = smtplib.SMTP_SSL('localhost', int(os.environ['SMTP']), context=ctx)
    else:
        s = smtplib.SMTP('localhost', int(os.environ['SMTP']))
        s.starttls(context=ctx)
    s.login(u, pw)
    s.sendmail(u, ['carol@example.test'], 'Subject: tls both sides\\r\\n\\r\\nhello\\r\\n')
    out.append(f'smtp sent {s.sock.version()}')
    s.quit()
except Exception as e:
    out.append(f'smtp FAIL {type(e).__name__}: {str(e)[:120]}')
print('\\n'.join(out))
`
    const before = smtp.received.length
    const run = (p: Ports, mode: string, u: string) =>
      runCommand('python3', ['-c', PY], {
        ...home.env,
        CA: dovecot.caFile,
        MODE: mode,
        U: u,
        PW: LOCAL_PW,
        POP: String(p.pop3),
        SMTP: String(p.smtp),
      })
    for (const [p, mode] of [
      [starttls, 'starttls'],
      [implicit, 'implicit'],
    ] as const) {
      for (const u of [ALICE, BOB]) {
        const r = await run(p, mode, u)
        assert.match(r.stdout, /^pop \d+ TLSv1\.[23]$/m, `${mode} ${u}: ${r.stdout}${r.stderr.slice(-300)}`)
        assert.match(r.stdout, /^smtp sent TLSv1\.[23]$/m, `${mode} ${u}: ${r.stdout}`)
      }
    }
    assert.deepEqual(
      smtp.received
        .slice(before)
        .map((m) => m.user)
        .sort(),
      [ALICE, ALICE, BOB, BOB],
    )
  })

  it('an access token that expired while the proxy runs is refreshed transparently, once', async () => {
    const ok = await imapRaw(ports.imap, ALICE, LOCAL_PW, ['SELECT INBOX', 'LOGOUT'])
    assert.ok(ok.ok, 'logged in before the expiry')
    const path = recordFile(home.env, ALICE)
    const raw = JSON.parse(await readFile(path, 'utf8')) as { grant: { expiresAt: number; accessToken: string } }
    const oldToken = raw.grant.accessToken
    raw.grant.expiresAt = Date.now() - 1000
    await writeFile(path, JSON.stringify(raw))
    lab.resetCounts()
    const r = await imapRaw(ports.imap, ALICE, LOCAL_PW, ['SELECT INBOX', 'LOGOUT'])
    assert.ok(r.ok, 'logged in with the refreshed token')
    assert.match(r.text, /^\* 3 EXISTS/m)
    assert.equal(lab.counts.refresh, 1, 'exactly one refresh request')
    const again = await imapRaw(ports.imap, ALICE, LOCAL_PW, ['SELECT INBOX', 'LOGOUT'])
    assert.ok(again.ok)
    assert.equal(lab.counts.refresh, 1, 'the next login uses the stored fresh token')
    const after = JSON.parse(await readFile(path, 'utf8')) as { grant: { expiresAt: number; accessToken: string } }
    assert.notEqual(after.grant.accessToken, oldToken, 'a new access token was stored')
    assert.ok(after.grant.expiresAt > Date.now())
    await rememberTokens(home.env, ALICE, secrets)
  })

  it('no secret in any output', () => {
    assert.deepEqual(
      findLeaks([...procs.map((p) => p.stderr()), ...transcript.map((t) => t.stdout + t.stderr)], secrets),
      [],
    )
  })
})

describe('mailkey proxy: 200 concurrent sessions and misbehaving upstream servers (scripted)', { skip }, () => {
  let lab: LabServer
  let dovecot: Dovecot
  let home: TmpHome
  const procs: LiveCli[] = []
  const scripted: ScriptedServer[] = []
  let port = 0
  const secrets: string[] = [LOCAL_PW]
  let proxy: LiveCli

  // A well-behaved implicit-TLS upstream: greeting with capabilities, AUTHENTICATE with SASL-IR,
  // then SELECT and LOGOUT from the spliced client.
  const good = (): ScriptStep[] => [
    { send: '* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] scripted ready\r\n' },
    { expect: /^(\S+) AUTHENTICATE (XOAUTH2|OAUTHBEARER) \S+$/i },
    { send: (m) => `${m?.[1]} OK [CAPABILITY IMAP4rev1] Logged in\r\n` },
    { expect: /^(\S+) SELECT INBOX$/i },
    { send: (m) => `* FLAGS (\\Seen)\r\n* 7 EXISTS\r\n${m?.[1]} OK [READ-WRITE] SELECT completed\r\n` },
    { expect: /^(\S+) LOGOUT$/i },
    { send: (m) => `* BYE scripted logging out\r\n${m?.[1]} OK LOGOUT completed\r\n` },
    { close: 'end' },
  ]

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer), users: [ALICE] })
    home = await makeTmpHome()
    const tls = { certFile: dovecot.certFile, keyFile: dovecot.keyFile }
    const many = await startScriptedServer({ tls: { ...tls, implicit: true }, script: good })
    // (a) STARTTLS answered with OK plus an injected CAPABILITY line in the same segment
    const inject = await startScriptedServer({
      tls,
      script: () => [
        { send: '* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] scripted ready\r\n' },
        { expect: /^(\S+) STARTTLS$/i },
        {
          send: (m) =>
            `${m?.[1]} OK Begin TLS negotiation now\r\n* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] injected\r\n`,
        },
        { tls: true },
        { expect: /^(\S+) CAPABILITY$/i },
        { send: (m) => `* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER\r\n${m?.[1]} OK done\r\n` },
        { expect: /^(\S+) AUTHENTICATE/i },
        { send: (m) => `${m?.[1]} OK logged in after injection\r\n` },
      ],
    })
    // (b) implicit TLS; the connection drops after the client's SASL response
    const drop = await startScriptedServer({
      tls: { ...tls, implicit: true },
      script: () => [
        { send: '* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 AUTH=OAUTHBEARER] scripted ready\r\n' },
        { expect: /^(\S+) AUTHENTICATE (XOAUTH2|OAUTHBEARER)$/i },
        { send: '+ \r\n' },
        { expect: /./, secret: true },
        { close: 'destroy' },
      ],
    })
    // (c) stalls: a server that greets and then never answers AUTHENTICATE, and one that never greets
    const mute = await startScriptedServer({
      tls: { ...tls, implicit: true },
      script: () => [
        { send: '* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] scripted ready\r\n' },
        { expect: /^(\S+) AUTHENTICATE/i, secret: true },
      ],
    })
    const silent = await startScriptedServer({ tls: { ...tls, implicit: true }, script: () => [] })
    // (d) STARTTLS stripped: an imap:// account whose server offers no STARTTLS and refuses it
    const stripped = await startScriptedServer({
      script: () => [
        { send: '* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] no TLS here\r\n' },
        {
          repeat: [
            { expect: /^(\S+) (\S+)/ },
            {
              send: (m) =>
                /^starttls$/i.test(m?.[2] ?? '')
                  ? `${m?.[1]} BAD STARTTLS not supported\r\n`
                  : /^authenticate$/i.test(m?.[2] ?? '')
                    ? `${m?.[1]} OK logged in without TLS\r\n`
                    : `* CAPABILITY IMAP4rev1 AUTH=XOAUTH2\r\n${m?.[1]} OK\r\n`,
            },
          ],
        },
      ],
    })
    scripted.push(many, inject, drop, mute, silent, stripped)
    await signIn(
      lab,
      home,
      'mute@example.test',
      ['--imap-url', `imaps://localhost:${mute.port}`],
      dovecot.caFile,
      secrets,
    )
    await signIn(
      lab,
      home,
      'silent@example.test',
      ['--imap-url', `imaps://localhost:${silent.port}`],
      dovecot.caFile,
      secrets,
    )
    await signIn(
      lab,
      home,
      'stripped@example.test',
      ['--imap-url', `imap://localhost:${stripped.port}`],
      dovecot.caFile,
      secrets,
    )
    // a login may take 10 s upstream here (default 30), so the stalled ones end within the test;
    // not less: 200 logins at once on a machine shared with other test files take seconds each
    await mkdir(join(home.env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
    await writeFile(
      join(home.env.XDG_CONFIG_HOME as string, 'mailkey', 'config.toml'),
      '[proxy]\nlogin_timeout_sec = 10\n',
    )
    await signIn(lab, home, ALICE, ['--imap-url', `imaps://localhost:${dovecot.ports.imaps}`], dovecot.caFile, secrets)
    await signIn(
      lab,
      home,
      'many@example.test',
      ['--imap-url', `imaps://localhost:${many.port}`],
      dovecot.caFile,
      secrets,
    )
    await signIn(
      lab,
      home,
      'mallory@example.test',
      ['--imap-url', `imap://localhost:${inject.port}`],
      dovecot.caFile,
      secrets,
    )
    await signIn(
      lab,
      home,
      'dropped@example.test',
      ['--imap-url', `imaps://localhost:${drop.port}`],
      dovecot.caFile,
      secrets,
    )
    port = (await startProxy(home, ['--imap-port', '0'], 1, procs)).imap
    proxy = procs[0] as LiveCli
  })
  after(async () => {
    for (const p of procs) p.child.kill('SIGTERM')
    await Promise.all(procs.map((p) => p.done))
    for (const s of scripted) await s.close()
    await dovecot?.stop()
    await lab?.close()
    await home?.cleanup()
  })

  // Dovecot's mail_max_userip_connections (10 per user and IP) would refuse 200 parallel sessions
  // of one user, and test/harness/dovecot.ts has no option to raise it: these 200 sessions go to
  // the scripted upstream instead (the proxy's half is the same: local password, token, TLS,
  // AUTHENTICATE, splice).
  let results: { text: string; ok: boolean }[] = []
  let slow = ''
  it('200 concurrent sessions through one listener: each ends cleanly, the proxy stays up and serves the next client', async () => {
    const many = scripted[0] as ScriptedServer
    const before = many.connections()
    lab.resetCounts()
    results = await Promise.all(
      Array.from({ length: 200 }, () =>
        imapRaw(port, 'many@example.test', LOCAL_PW, ['SELECT INBOX', 'LOGOUT'], 120_000),
      ),
    )
    const ok = results.filter((r) => r.ok)
    // every session either completes or gets a clean tagged NO: no hang, no reset, no BAD
    for (const r of results) assert.match(r.text, /^a1 (OK|NO \[UNAVAILABLE\])/m, r.text.slice(-200))
    assert.ok(ok.every((r) => /^\* 7 EXISTS/m.test(r.text) && /^a3 OK/m.test(r.text)))
    assert.ok(many.connections() - before >= ok.length, 'one upstream connection per completed session')
    assert.equal(lab.counts.refresh, 0, 'no refresh for a valid token')
    assert.equal(proxy.child.exitCode, null, 'the proxy is still running')
    // how long the failed logins took, from the proxy's own log (connect -> login event)
    const lines = proxy
      .stderr()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, string>)
    const connectAt = new Map(lines.filter((l) => l.event === 'connect').map((l) => [l.cid, Date.parse(l.t as string)]))
    const failedAfter = lines
      .filter((l) => l.event === 'login' && l.account === 'many@example.test' && l.outcome !== 'ok')
      .map((l) => Date.parse(l.t as string) - (connectAt.get(l.cid) ?? 0))
    slow = `${200 - ok.length} of 200 got NO (${[...new Set(lines.filter((l) => l.event === 'login' && l.outcome !== 'ok' && l.account === 'many@example.test').map((l) => `${l.outcome}: ${l.msg}`))].join(', ')}) after ${failedAfter.length ? Math.min(...failedAfter) : 0}-${failedAfter.length ? Math.max(...failedAfter) : 0} ms`
    console.error(`200 sessions: ${ok.length} ok; ${slow}`)
    const real = await imapRaw(port, ALICE, LOCAL_PW, ['SELECT INBOX', 'LOGOUT'])
    assert.ok(real.ok, 'and still serves a real account')
    assert.match(real.text, /^\* 3 EXISTS/m)
  })

  // 200 local-password checks at once used to starve the token-store reads on libuv's thread pool
  // (logins hit the 30 s deadline): the proxy now shares one KDF run per credential, runs at most
  // two at a time, and remembers verified passwords.
  it('200 concurrent sessions: all 200 log in', () => {
    assert.equal(results.filter((r) => !r.ok).length, 0, slow)
  })

  it('(a) STARTTLS answered with an injected line before the handshake: the proxy refuses', async () => {
    const inject = scripted[1] as ScriptedServer
    const r = await imapRaw(port, 'mallory@example.test', LOCAL_PW, ['SELECT INBOX'])
    assert.equal(r.ok, false)
    assert.match(r.text, /^a1 NO \[(UNAVAILABLE|CONTACTADMIN)\]/m)
    assert.doesNotMatch(r.text, /^a1 OK/m)
    assert.ok(inject.sessions.length >= 1)
    assert.ok(
      inject.sessions.every((s) => !s.lines.some((l) => /AUTHENTICATE/i.test(l))),
      `no AUTHENTICATE reached the server: ${JSON.stringify(inject.sessions)}`,
    )
    const log = proxy
      .stderr()
      .split('\n')
      .filter((l) => l.includes('mallory@example.test') && l.includes('"event":"login"'))
    assert.match(log.at(-1) ?? '', /inject/i)
  })

  it('(b) the upstream drops the connection in the middle of AUTHENTICATE: a clean NO; the proxy serves the next client', async () => {
    const drop = scripted[2] as ScriptedServer
    lab.resetCounts()
    const r = await imapRaw(port, 'dropped@example.test', LOCAL_PW, ['SELECT INBOX'])
    assert.equal(r.ok, false)
    assert.match(r.text, /^a1 NO \[(UNAVAILABLE|CONTACTADMIN|AUTHENTICATIONFAILED)\]/m)
    assert.ok(drop.sessions.length >= 1)
    assert.ok(
      drop.sessions.every((s) => s.outcome === 'done'),
      'the script reached the drop',
    )
    assert.equal(proxy.child.exitCode, null, 'the proxy is still running')
    const next = await imapRaw(port, ALICE, LOCAL_PW, ['SELECT INBOX', 'LOGOUT'])
    assert.ok(next.ok, next.text.slice(-200))
    assert.match(next.text, /^\* 3 EXISTS/m)
    // reported, not asserted: how many upstream attempts (and refreshes) a dropped connection caused
    console.error(
      `(b) upstream connections: ${drop.sessions.length}, refreshes: ${lab.counts.refresh}, reply: ${/^a1 .*$/m.exec(r.text)?.[0]}`,
    )
  })

  it('(c) upstream servers that stall (no greeting; no answer to AUTHENTICATE): those logins end with NO [UNAVAILABLE] at login_timeout_sec, the others go through meanwhile', async () => {
    const t0 = Date.now()
    let stalledEnded = 0
    const stalled = [
      imapRaw(port, 'mute@example.test', LOCAL_PW, ['SELECT INBOX'], 30_000),
      imapRaw(port, 'silent@example.test', LOCAL_PW, ['SELECT INBOX'], 30_000),
    ].map((p) => p.finally(() => stalledEnded++))
    const meanwhile = await imapRaw(port, ALICE, LOCAL_PW, ['SELECT INBOX', 'LOGOUT'])
    assert.ok(meanwhile.ok, meanwhile.text.slice(-200))
    // the order, not the clock: alice was in and out while both stalled logins still waited
    assert.equal(stalledEnded, 0, 'a healthy account is not held up by stalled ones')
    const [mute, silent] = await Promise.all(stalled)
    const ms = Date.now() - t0
    for (const r of [mute, silent]) {
      assert.equal(r?.ok, false)
      assert.match(r?.text ?? '', /^a1 NO \[UNAVAILABLE\]/m)
    }
    // not before the 10 s deadline (a lower bound a busy machine cannot break); a hang would miss
    // the NO above, since the client gives up at 30 s
    assert.ok(ms >= 9900, `they ended at the login deadline (${ms} ms)`)
    assert.equal(proxy.child.exitCode, null, 'the proxy is still running')
  })

  it('(d) STARTTLS stripped (an imap:// server that does not offer it): no credentials in clear text, a clean NO', async () => {
    const stripped = scripted[5] as ScriptedServer
    const r = await imapRaw(port, 'stripped@example.test', LOCAL_PW, ['SELECT INBOX'])
    assert.equal(r.ok, false)
    assert.match(r.text, /^a1 NO \[(UNAVAILABLE|CONTACTADMIN)\]/m)
    assert.ok(stripped.sessions.length >= 1)
    assert.ok(
      stripped.sessions.every((s) => !s.lines.some((l) => /AUTHENTICATE/i.test(l))),
      `no AUTHENTICATE reached the server: ${JSON.stringify(stripped.sessions)}`,
    )
    const log = proxy
      .stderr()
      .split('\n')
      .filter((l) => l.includes('stripped@example.test') && l.includes('"event":"login"'))
    assert.match(log.at(-1) ?? '', /STARTTLS|TLS/i)
  })

  it('no secret in any output', async () => {
    for (const e of [
      'many@example.test',
      'mallory@example.test',
      'dropped@example.test',
      'mute@example.test',
      'silent@example.test',
      'stripped@example.test',
      ALICE,
    ])
      await rememberTokens(home.env, e, secrets)
    assert.deepEqual(
      findLeaks([...procs.map((p) => p.stderr()), ...transcript.map((t) => t.stdout + t.stderr)], secrets),
      [],
    )
  })
})
