// Issue 16 end to end: a mailbox whose SMTP AUTH is off (the SMTP testbed answers 535 5.7.139)
// sends through Microsoft Graph. `mailkey add --graph --device` (two codes: a device code has one
// resource) against the lab OAuth server; `mailkey proxy`'s SMTP listener relays to the Graph
// emulator (test/harness/graph-server.ts, real HTTPS with the test CA, tokens checked by
// introspection for Mail.Send and the Graph audience). Real clients: msmtp, Python smtplib,
// nodemailer, git send-email, and a raw pipelining client. Messages arrive byte for byte;
// throttling, outages and a refused token never lose a message: each send is either accepted by
// Graph (and the client heard 250) or refused to the client.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import nodemailer from 'nodemailer'
import type { GraphServer } from '../harness/graph-server.js'
import type { LabServer } from '../harness/oauth-server.js'
import type { Smtp } from '../harness/smtp-server.js'
import type { TmpHome } from '../harness/tmp-home.js'
import { findLeaks, have, noteSecrets, runCli, runCommand, spawnCli, transcript, type LiveCli } from '../harness/cli.js'
import { LineClient } from '../harness/line-client.js'
import { repoWithOneCommit } from '../harness/git.js'
import { checkJsonOutput } from '../harness/json-output.js'
import { assertAdded, startGraphLab, type GraphLab } from '../harness/graph-lab.js'

const ALICE = 'alice@example.test'
const BOB = 'bob@example.test'
const CAROL = 'carol@example.test'
const LOCAL_PW = 'graph proxy local pw'
const missing = [!have('msmtp') && 'msmtp', !have('python3') && 'python3', !have('git') && 'git'].filter(Boolean)
if (missing.length && process.env.CI) throw new Error(`the Graph tests need ${missing.join(', ')} in CI`)
const skip = missing.length ? `${missing.join(', ')} not installed` : false

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A message with 8-bit header text, a dot-led line, an attachment, CRLF throughout. */
function message(subject: string, headers: string[] = []): Buffer {
  const attachment = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256)).toString('base64')
  const lines = [
    `From: Alice <${ALICE}>`,
    `To: Bob <${BOB}>`,
    ...headers,
    `Subject: ${subject} Grüße, ñandú`,
    'Date: Sun, 06 Dec 2026 10:00:00 +0000',
    `Message-ID: <${subject.replace(/\W/g, '')}@example.test>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Grüße aus Köln.',
    '.a line that starts with a dot',
    '..and one with two',
    '',
    '--b1',
    'Content-Type: application/octet-stream; name="data.bin"',
    'Content-Transfer-Encoding: base64',
    'Content-Disposition: attachment; filename="data.bin"',
    '',
    ...(attachment.match(/.{1,76}/g) ?? []),
    '--b1--',
    '',
  ]
  return Buffer.from(lines.join('\r\n'), 'utf8')
}

describe('sending through Microsoft Graph when SMTP AUTH is off', { skip }, () => {
  let g: GraphLab
  let lab: LabServer
  let smtp: Smtp
  let graph: GraphServer
  let home: TmpHome
  let proxy: LiveCli
  let smtpPort = 0
  let secrets: string[] = []
  const recordOf = (email: string): Promise<Record<string, any>> => g.record(email)

  before(async () => {
    g = await startGraphLab({ smtpAuthDisabled: (user) => [ALICE, BOB, CAROL].includes(user) })
    ;({ lab, smtp, graph, home } = g)
    secrets = g.secrets
    secrets.push(LOCAL_PW)
    const a = await g.add(ALICE, g.serverFlags(true))
    assertAdded(a)
    assert.equal(a.codes, 2, 'a device code for the mail servers, then one for Graph')
    assert.match(a.stderr, /One more code: to let mailkey send mail for alice@example\.test through Microsoft Graph/)
    assert.match(a.stderr, /Microsoft Graph: Mail\.Send granted/)
    assert.match(a.stderr, /sends through Microsoft Graph, which saves each message in Sent Items/)
    // bob: Graph in the grant, but "auto": SMTP first, Graph after 5.7.139
    assertAdded(await g.add(BOB, [...g.serverFlags(true), '--send', 'auto']))
    // carol: no Graph at all
    const c = await g.add(CAROL, [...g.serverFlags(false), '--send', 'auto'])
    assertAdded(c)
    assert.equal(c.codes, 1)
    for (const email of [ALICE, BOB, CAROL]) {
      const pw = await runCli(['proxy', 'password', email], home.env, { stdin: LOCAL_PW + '\n' })
      assert.equal(pw.code, 0, pw.stderr)
    }
    proxy = spawnCli(['proxy', '--smtp-port', '0'], home.env)
    const end = Date.now() + 15_000
    while (proxy.events('listening').length < 1 && Date.now() < end) await sleep(50)
    smtpPort = Number(proxy.events('listening')[0]?.port)
    assert.ok(smtpPort > 0, proxy.stderr())
  })

  after(async () => {
    proxy?.child.kill('SIGTERM')
    await proxy?.done
    await g?.stop()
  })

  it('the grant holds a Graph token beside the mail token, and the account sends through Graph', async () => {
    const rec = await recordOf(ALICE)
    assert.equal(rec.settings.send, 'graph')
    assert.deepEqual(rec.settings.resources, { graph: { scopes: ['https://graph.microsoft.com/Mail.Send'] } })
    const graphToken = rec.grant.resources.graph.accessToken as string
    assert.notEqual(graphToken, rec.grant.accessToken)
    const g = await lab.introspectGraph(graphToken)
    assert.equal(g.active, true)
    assert.match(String(g.scope), /Mail\.Send/)
    const m = await lab.introspect(rec.grant.accessToken as string)
    assert.equal(m.active, true, 'the mail token still works for the mail servers')
  })

  /** Python smtplib through the proxy: login(), then sendmail(from, to, bytes); prints the reply or the error code. */
  async function smtplibSend(user: string, to: string[], msg: Buffer): Promise<{ code: number | null; out: string }> {
    const f = join(home.dir, `msg-${Date.now()}-${Math.random()}.eml`)
    await writeFile(f, msg)
    const py = `
import smtplib, os, sys, json
s = smtplib.SMTP('127.0.0.1', int(os.environ['SMTP']), timeout=120)
s.ehlo()
try:
    s.login(os.environ['U'], os.environ['PW'])
    refused = s.sendmail(os.environ['U'], json.loads(os.environ['TO']), open(os.environ['F'], 'rb').read())
    print('SENT', refused)
except smtplib.SMTPResponseException as e:
    print('ERR', e.smtp_code, e.smtp_error.decode())
    sys.exit(3)
except smtplib.SMTPRecipientsRefused as e:
    print('ERR', e.recipients)
    sys.exit(3)
finally:
    try: s.quit()
    except Exception: pass
`
    const r = await runCommand('python3', ['-c', py], {
      ...home.env,
      SMTP: String(smtpPort),
      U: user,
      PW: LOCAL_PW,
      TO: JSON.stringify(to),
      F: f,
    })
    return { code: r.code, out: r.stdout + r.stderr }
  }

  it('smtplib: a message with 8-bit headers, an attachment and Bcc arrives byte for byte', async () => {
    const msg = message('smtplib', [`Bcc: ${CAROL}`])
    const before = graph.received.length
    const r = await smtplibSend(ALICE, [BOB, CAROL], msg)
    assert.equal(r.code, 0, r.out + proxy.stderr())
    assert.equal(graph.received.length, before + 1)
    const got = graph.received.at(-1)
    assert.ok(got?.mime?.equals(msg), 'the MIME Graph got is the message, byte for byte')
    assert.deepEqual(got?.bcc, [CAROL])
    assert.equal(got?.user, ALICE)
    assert.equal(got?.savedToSentItems, true)
  })

  it('smtplib: an envelope-only (Bcc) recipient is added as a Bcc field before the untouched message', async () => {
    const msg = message('envelope-bcc')
    const r = await smtplibSend(ALICE, [BOB, 'hidden@example.test'], msg)
    assert.equal(r.code, 0, r.out)
    const got = graph.received.at(-1)
    const head = Buffer.from('Bcc: hidden@example.test\r\n')
    assert.ok(got?.mime?.subarray(0, head.length).equals(head))
    assert.ok(got?.mime?.subarray(head.length).equals(msg), 'the rest is the message, byte for byte')
    assert.deepEqual(got?.bcc, ['hidden@example.test'])
    assert.deepEqual(got?.to, [BOB])
  })

  it('a To recipient the client did not give as RCPT TO is refused, not sent', async () => {
    const before = graph.received.length
    const r = await smtplibSend(ALICE, ['someone-else@example.test'], message('extra'))
    assert.equal(r.code, 3, r.out)
    assert.match(r.out, /ERR 554 .*Microsoft Graph sends to every To\/Cc\/Bcc address/)
    assert.equal(graph.received.length, before)
  })

  it('a From the user may not send as: 550 5.7.60 from Graph (ErrorSendAsDenied), nothing sent', async () => {
    const before = graph.received.length
    const msg = Buffer.from(`From: boss@example.test\r\nTo: ${BOB}\r\nSubject: x\r\n\r\nx\r\n`)
    const r = await smtplibSend(ALICE, [BOB], msg)
    assert.equal(r.code, 3, r.out)
    assert.match(r.out, /ERR 550 5\.7\.60 Not allowed to send as this From address \(Graph ErrorSendAsDenied/)
    assert.equal(graph.received.length, before)
  })

  it('msmtp -t: sends through the proxy to Graph (msmtp removes the Bcc field; Graph still gets the Bcc)', async () => {
    const rc = join(home.dir, 'msmtprc')
    await writeFile(
      rc,
      [
        'account default',
        'host 127.0.0.1',
        `port ${smtpPort}`,
        'tls off',
        'auth plain',
        `user ${ALICE}`,
        `password ${LOCAL_PW}`,
        `from ${ALICE}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    )
    const msg = message('msmtp', [`Bcc: ${CAROL}`])
    const before = graph.received.length
    const r = await runCommand('msmtp', ['-C', rc, '-t'], home.env, msg.toString('utf8'))
    assert.equal(r.code, 0, r.stdout + r.stderr + proxy.stderr())
    assert.equal(graph.received.length, before + 1)
    const got = graph.received.at(-1)
    assert.deepEqual(got?.to, [BOB])
    assert.deepEqual(got?.bcc, [CAROL])
    const text = got?.mime?.toString('utf8') ?? ''
    assert.ok(text.startsWith(`Bcc: ${CAROL}\r\n`), 'the Bcc msmtp removed comes back as our field')
    assert.ok(text.includes('Subject: msmtp Grüße, ñandú'), '8-bit header text unchanged')
    assert.ok(
      text.includes('\r\n.a line that starts with a dot\r\n..and one with two\r\n'),
      'dot-stuffing undone exactly',
    )
  })

  it('nodemailer (raw message, envelope with Bcc) through the proxy', async () => {
    const t = nodemailer.createTransport({
      host: '127.0.0.1',
      port: smtpPort,
      secure: false,
      ignoreTLS: true,
      auth: { user: ALICE, pass: LOCAL_PW },
    })
    const msg = message('nodemailer')
    const info = await t.sendMail({ envelope: { from: ALICE, to: [BOB, 'nm-bcc@example.test'] }, raw: msg })
    t.close()
    assert.match(String(info.response), /^250 /)
    const got = graph.received.at(-1)
    assert.deepEqual(got?.bcc, ['nm-bcc@example.test'])
    assert.ok(got?.mime?.subarray(got.mime.length - msg.length).equals(msg))
  })

  it('a pipelining client: two messages in one connection, RSET between, QUIT', async () => {
    const c = await LineClient.open(smtpPort)
    const times = async (re: RegExp, n: number): Promise<void> => {
      const end = Date.now() + 60_000
      while ((c.text.match(new RegExp(re.source, 'gm')) ?? []).length < n) {
        assert.ok(Date.now() < end && !c.closed, `waiting for ${n} x ${re}: ${c.text.slice(-400)}`)
        await sleep(20)
      }
    }
    try {
      await c.until(/^220 /m)
      c.send(`EHLO pipe.example\r\nAUTH PLAIN ${Buffer.from(`\0${ALICE}\0${LOCAL_PW}`).toString('base64')}`)
      await c.until(/^235 /m)
      const before = graph.received.length
      for (const n of [1, 2]) {
        c.send(`MAIL FROM:<${ALICE}>\r\nRCPT TO:<${BOB}>\r\nDATA`)
        await times(/^354 /, n)
        c.send(`From: ${ALICE}\r\nTo: ${BOB}\r\nSubject: pipe ${n}\r\n\r\nbody ${n}\r\n.\r\nRSET`)
        await times(/^250 2\.0\.0 OK: accepted by Microsoft Graph/, n)
      }
      c.send('QUIT')
      await c.until(/^221 /m)
      assert.equal(graph.received.length, before + 2)
      assert.deepEqual(
        graph.received.slice(-2).map((m) => m.mime?.toString().match(/Subject: (.*)\r\n/)?.[1]),
        ['pipe 1', 'pipe 2'],
      )
    } finally {
      c.close()
    }
  })

  it('a client that leaves while Graph has its message: the request is not cut off, and the log says how it ended', async () => {
    graph.script({ delayMs: 800 })
    const before = graph.received.length
    const c = await LineClient.open(smtpPort)
    await c.until(/^220 /m)
    c.send(`EHLO gone.example\r\nAUTH PLAIN ${Buffer.from(`\0${ALICE}\0${LOCAL_PW}`).toString('base64')}`)
    await c.until(/^235 /m)
    c.send(`MAIL FROM:<${ALICE}>\r\nRCPT TO:<${BOB}>\r\nDATA`)
    await c.until(/^354 /m)
    c.send(`From: ${ALICE}\r\nTo: ${BOB}\r\nSubject: left early\r\n\r\nbye\r\n.`)
    await sleep(100)
    c.close()
    const end = Date.now() + 20_000
    while (!/the client left before the answer/.test(proxy.stderr()) && Date.now() < end) await sleep(50)
    assert.match(proxy.stderr(), /"event":"graph-submit".*"outcome":"accepted".*the client left before the answer/)
    assert.equal(graph.received.length, before + 1, 'Graph got it; the log says the client never heard so')
  })

  it('git send-email through the proxy sends the patch through Graph', async () => {
    const h = join(home.dir, 'git-home')
    const repo = join(h, 'repo')
    await mkdir(repo, { recursive: true })
    await writeFile(
      join(h, '.gitconfig'),
      [
        '[user]',
        '\tname = Alice',
        `\temail = ${ALICE}`,
        '[sendemail]',
        '\tsmtpServer = 127.0.0.1',
        `\tsmtpServerPort = ${smtpPort}`,
        `\tsmtpUser = ${ALICE}`,
        `\tsmtpPass = ${LOCAL_PW}`,
        '\tsmtpEncryption = none',
        '',
      ].join('\n'),
    )
    const genv = { ...home.env, HOME: h, GIT_CONFIG_NOSYSTEM: '1' }
    await repoWithOneCommit(repo, genv, 'a patch sent through Graph')
    const before = graph.received.length
    const sent = await runCommand(
      'git',
      ['-C', repo, 'send-email', `--to=${BOB}`, `--bcc=${CAROL}`, '--confirm=never', '--suppress-cc=all', '-1'],
      genv,
    )
    assert.equal(sent.code, 0, sent.stdout + sent.stderr + proxy.stderr())
    assert.equal(graph.received.length, before + 1)
    const got = graph.received.at(-1)
    assert.deepEqual(got?.to, [BOB])
    assert.deepEqual(got?.bcc, [CAROL])
    assert.match(got?.mime?.toString() ?? '', /Subject: \[PATCH\] a patch sent through Graph/)
  })

  it('429 with a short Retry-After is waited out: one message, accepted once', async () => {
    graph.script({
      status: 429,
      headers: { 'retry-after': '1' },
      body: { error: { code: 'TooManyRequests', message: 'slow down' } },
    })
    const before = graph.received.length
    const r = await smtplibSend(ALICE, [BOB], message('throttled-short'))
    assert.equal(r.code, 0, r.out)
    assert.equal(graph.received.length, before + 1)
    assert.deepEqual(
      graph.requests.slice(-2).map((q) => q.status),
      [429, 202],
    )
  })

  it('429 with a long Retry-After reaches the client as 451; sent again later, it goes once', async () => {
    graph.script({
      status: 429,
      headers: { 'retry-after': '120' },
      body: { error: { code: 'TooManyRequests', message: 'later' } },
    })
    const before = graph.received.length
    const msg = message('throttled-long')
    const r = await smtplibSend(ALICE, [BOB], msg)
    assert.equal(r.code, 3, r.out)
    assert.match(r.out, /ERR 451 4\.7\.0 Microsoft Graph is throttling this mailbox; try again in 120 s/)
    assert.equal(graph.received.length, before, 'not accepted, and the client knows')
    const again = await smtplibSend(ALICE, [BOB], msg)
    assert.equal(again.code, 0, again.out)
    assert.equal(graph.received.length, before + 1)
  })

  it('a 503 with Retry-After (throttling) is waited out here; the message goes once', async () => {
    graph.script({ status: 503, headers: { 'retry-after': '1' } })
    const before = graph.received.length
    const r = await smtplibSend(ALICE, [BOB], message('outage-503'))
    assert.equal(r.code, 0, r.out)
    assert.equal(graph.received.length, before + 1)
    assert.deepEqual(
      graph.requests.slice(-2).map((q) => q.status),
      [503, 202],
    )
  })

  it('a 500 is not sent again here (Graph may have taken it): 451 to the client; its retry goes once', async () => {
    graph.script({ status: 500 })
    const before = graph.received.length
    const msg = message('outage-500')
    const r = await smtplibSend(ALICE, [BOB], msg)
    assert.equal(r.code, 3, r.out)
    assert.match(
      r.out,
      /ERR 451 4\.3\.0 Microsoft Graph failed \(500\) before it confirmed the message; it may have gone out/,
    )
    assert.equal(graph.received.length, before)
    const again = await smtplibSend(ALICE, [BOB], msg)
    assert.equal(again.code, 0, again.out)
    assert.equal(graph.received.length, before + 1)
  })

  it('a connection dropped after the request went out: 451 to the client (it may have arrived); its retry goes once', async () => {
    graph.script({ destroySocket: true })
    const before = graph.received.length
    const msg = message('outage-drop')
    const r = await smtplibSend(ALICE, [BOB], msg)
    assert.equal(r.code, 3, r.out)
    assert.match(r.out, /ERR 451 4\.4\.2 .*may have gone out/)
    assert.equal(graph.received.length, before, 'this time Graph did not take it')
    const again = await smtplibSend(ALICE, [BOB], msg)
    assert.equal(again.code, 0, again.out)
    assert.equal(graph.received.length, before + 1)
  })

  it('an answer lost after Graph accepted: the client hears 451 "may have gone out", never 250 on a guess', async () => {
    graph.script({ afterAccept: true })
    const before = graph.received.length
    const r = await smtplibSend(ALICE, [BOB], message('lost-answer'))
    assert.equal(r.code, 3, r.out)
    assert.match(r.out, /ERR 451 4\.4\.2 .*may have gone out/)
    assert.equal(graph.received.length, before + 1, 'Graph has it; the client was told the truth')
  })

  it('a Graph token Graph refuses (401) is refreshed once and the message goes', async () => {
    graph.script({ status: 401, body: { error: { code: 'InvalidAuthenticationToken', message: 'expired' } } })
    const refreshes = lab.counts.refresh
    const before = graph.received.length
    const r = await smtplibSend(ALICE, [BOB], message('token-refused'))
    assert.equal(r.code, 0, r.out)
    assert.equal(graph.received.length, before + 1)
    assert.equal(lab.counts.refresh, refreshes + 1, 'one refresh, for Graph')
    const rec = await recordOf(ALICE)
    secrets.push(rec.grant.resources.graph.accessToken, rec.grant.refreshToken)
    await noteSecrets(rec.grant.resources.graph.accessToken, rec.grant.refreshToken)
  })

  it('an auto account switches to Graph on 5.7.139, once, and remembers it', async () => {
    const refusals = smtp.counts.authDisabled
    const r = await smtplibSend(
      BOB,
      [ALICE],
      Buffer.from(`From: ${BOB}\r\nTo: ${ALICE}\r\nSubject: auto\r\n\r\nhi\r\n`),
    )
    assert.equal(r.code, 0, r.out + proxy.stderr())
    assert.equal(smtp.counts.authDisabled, refusals + 1, 'SMTP was tried once')
    assert.equal(graph.received.at(-1)?.user, BOB)
    assert.equal((await recordOf(BOB)).settings.send, 'graph')
    assert.match(proxy.stderr(), /this account now sends through Microsoft Graph/)
    const r2 = await smtplibSend(
      BOB,
      [ALICE],
      Buffer.from(`From: ${BOB}\r\nTo: ${ALICE}\r\nSubject: auto 2\r\n\r\nhi\r\n`),
    )
    assert.equal(r2.code, 0, r2.out)
    assert.equal(smtp.counts.authDisabled, refusals + 1, 'the second login went straight to Graph')
  })

  it('5.7.139 for an account without Graph: 535 with the command that fixes it', async () => {
    const before = graph.received.length
    const r = await smtplibSend(CAROL, [BOB], Buffer.from(`From: ${CAROL}\r\nTo: ${BOB}\r\nSubject: x\r\n\r\nx\r\n`))
    assert.equal(r.code, 3, r.out)
    assert.match(
      r.out,
      /ERR 535 5\.7\.8 SMTP AUTH is switched off for this mailbox \(535 5\.7\.139\); run "mailkey add carol@example\.test --graph"/,
    )
    assert.equal(graph.received.length, before)
  })

  it('mailkey test: the Graph check passes without sending; SMTP 5.7.139 says Graph covers it', async () => {
    const before = graph.received.length
    const r = await runCli(['test', ALICE, '--json'], home.env)
    checkJsonOutput(r.stdout, 'test --json')
    const report = JSON.parse(r.stdout) as { results: { protocol: string; ok: boolean; error?: { fix: string } }[] }
    const byName = Object.fromEntries(report.results.map((x) => [x.protocol, x]))
    assert.equal(byName.graph?.ok, true, r.stdout + r.stderr)
    assert.equal(byName.smtp?.ok, false)
    assert.match(byName.smtp?.error?.fix ?? '', /submit through Microsoft Graph/)
    assert.equal(graph.received.length, before, 'nothing was sent')
    const c = await runCli(['test', CAROL, '--protocol', 'smtp'], home.env)
    assert.match(c.stdout, /mailkey add carol@example\.test --graph/)
  })

  it('mailkey config msmtp for a Graph account goes through the proxy and mentions Sent Items', async () => {
    const r = await runCli(['config', 'msmtp', ALICE], home.env)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /sends through Microsoft Graph, and the proxy's SMTP listener relays to it/)
    assert.match(r.stderr, /Microsoft Graph saves every message it sends in Sent Items/)
    assert.match(r.stdout, /host 127\.0\.0\.1/)
  })

  it('no token or password appears in any output', () => {
    const texts = [...transcript.map((t) => t.stdout + t.stderr), proxy.stderr()]
    assert.deepEqual(findLeaks(texts, secrets), [])
  })
})
