// Proxy replicas (issue 14): three `mailkey proxy` processes on three "hosts" (each its own HOME and
// state directory) over one PostgreSQL store with one key, in front of the real OAuth server, Dovecot
// and the SMTP submission server. The local password is set once, on one host, and holds on every
// replica; a replica killed with SIGKILL mid-session loses only its own sessions; a password changed
// on one host is refused as old and taken as new on the others (their caches of verified passwords
// included); the store holds only the scrypt entry, never the password.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Host } from '../harness/fleet.js'
import { findLeaks, spawnCli, type LiveCli } from '../harness/cli.js'
import { LineClient } from '../harness/line-client.js'
import { sharedLabSkip, startSharedLab, type SharedLab } from '../harness/shared-lab.js'

const skip = sharedLabSkip('the proxy replica tests', { mail: true })

const EMAIL = 'alice@example.test'
const PW1 = 'replica password one'
const PW2 = 'replica password two'
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')

interface Replica {
  host: Host
  proc: LiveCli
  ports: Record<string, number>
}

describe('proxy replicas on a shared PostgreSQL store', { skip }, () => {
  let shared: SharedLab
  const replicas: Replica[] = []
  const clients: LineClient[] = []

  async function startReplica(host: Host): Promise<Replica> {
    const proc = spawnCli(['proxy', '--imap-port', '0', '--smtp-port', '0'], host.env)
    const end = Date.now() + 20_000
    while (proc.events('listening').length < 2 && Date.now() < end) await sleep(50)
    assert.equal(proc.events('listening').length, 2, proc.stderr())
    const ports: Record<string, number> = {}
    for (const l of proc.events('listening')) ports[String(l.protocol)] = Number(l.port)
    return { host, proc, ports }
  }

  /** an IMAP session logged in through `r` (tagged OK), or the tagged reply that refused it */
  async function imapLogin(r: Replica, pw: string): Promise<{ c: LineClient; reply: string }> {
    const c = await LineClient.open(r.ports.imap as number)
    clients.push(c)
    await c.until(/^\* OK .*\r\n/m)
    c.send(`a1 LOGIN ${EMAIL} "${pw}"`)
    return { c, reply: await c.until(/^a1 .*$/m) }
  }

  async function smtpAuth(r: Replica, pw: string): Promise<string> {
    const c = await LineClient.open(r.ports.smtp as number)
    clients.push(c)
    await c.until(/^220 .*\r\n/m)
    c.send('EHLO client.example')
    await c.until(/^250 .*\r\n/m)
    c.send(`AUTH PLAIN ${b64(`\0${EMAIL}\0${pw}`)}`)
    const reply = await c.until(/^(235|535|454)[ -].*$/m)
    c.send('QUIT')
    return reply
  }

  before(async () => {
    shared = await startSharedLab({ mail: 'imap+smtp', admin: 'a' })
    const hosts = [shared.admin, ...(await Promise.all(['b', 'c'].map((n) => shared.fleet.host(n))))]
    await shared.signIn(EMAIL)
    // once, on host a only
    const pw = await hosts[0]!.cli(['proxy', 'password', EMAIL], PW1 + '\n')
    assert.equal(pw.code, 0, pw.stderr)
    assert.match(pw.stderr, /kept in the shared store \(postgres[^)]*\): every proxy on that store takes it/)
    assert.ok(!pw.stderr.includes(shared.pg.password), 'the store label holds no password')
    replicas.push(...(await Promise.all(hosts.map(startReplica))))
  })
  after(async () => {
    for (const c of clients) c.close()
    for (const r of replicas) r.proc.child.kill('SIGTERM')
    await Promise.all(replicas.map((r) => r.proc.done))
    await shared?.stop()
  })

  it('the store holds the scrypt entry, not the password; no host has a password file', async () => {
    const rows = await shared.pg.query<{ value: string }>(
      `SELECT value::text AS value FROM mailkey_items WHERE kind = 'proxy-password' AND name = $1`,
      [EMAIL],
      'mailkey',
    )
    assert.equal(rows.rows.length, 1)
    const text = rows.rows[0]!.value
    assert.ok(!text.includes(PW1), 'no clear password in the store')
    // the scrypt entry, bound to the store key (store/shared/keyed-items.ts): a value, its key id, a MAC
    const stored = JSON.parse(text) as { v: Record<string, unknown>; kid: string; mac: string }
    assert.deepEqual(Object.keys(stored).sort(), ['kid', 'mac', 'v'])
    assert.equal(stored.v.alg, 'scrypt')
    assert.deepEqual(Object.keys(stored.v).sort(), ['alg', 'hash', 'logN', 'p', 'r', 'salt', 'setAt'])
    for (const r of replicas)
      assert.equal(existsSync(join(r.host.env.XDG_STATE_HOME as string, 'mailkey', 'proxy-passwords.json')), false)
  })

  it('the password set once logs in through every replica, IMAP LOGIN and SMTP AUTH PLAIN', async () => {
    for (const r of replicas) {
      const { c, reply } = await imapLogin(r, PW1)
      assert.match(reply, /^a1 OK/, `${r.host.name}: ${reply}`)
      c.send('a2 SELECT INBOX')
      assert.match(await c.until(/^a2 .*$/m), /^a2 OK/)
      c.send('a3 LOGOUT')
      assert.match(await smtpAuth(r, PW1), /^235 /, r.host.name)
    }
    const wrong = await imapLogin(replicas[1]!, 'not the password')
    assert.match(wrong.reply, /^a1 NO/)
  })

  it('a replica killed mid-session loses only its own sessions', async () => {
    const [a, b, c] = replicas as [Replica, Replica, Replica]
    const onB = await imapLogin(b, PW1)
    const onC = await imapLogin(c, PW1)
    for (const s of [onB, onC]) {
      assert.match(s.reply, /^a1 OK/)
      s.c.send('a2 SELECT INBOX')
      assert.match(await s.c.until(/^a2 .*$/m), /^a2 OK/)
    }
    c.proc.child.kill('SIGKILL')
    const gone = await c.proc.done
    assert.equal(gone.signal, 'SIGKILL')
    await onC.c.untilClosed()
    assert.doesNotMatch(onC.c.text, /^a3 /m)
    // the session on b goes on
    onB.c.send('a3 NOOP')
    assert.match(await onB.c.until(/^a3 .*$/m), /^a3 OK/)
    onB.c.send('a4 FETCH 1 (FLAGS)')
    assert.match(await onB.c.until(/^a4 .*$/m), /^a4 OK/)
    assert.match(onB.c.text, /^\* 1 FETCH \(FLAGS/m, 'a seeded message')
    assert.equal(onB.c.closed, false)
    // and a new client logs in through a surviving replica
    const fresh = await imapLogin(a, PW1)
    assert.match(fresh.reply, /^a1 OK/)
    fresh.c.send('a2 EXAMINE INBOX')
    assert.match(await fresh.c.until(/^a2 .*$/m), /^a2 OK/)
    onB.c.send('a5 LOGOUT')
  })

  it('a password changed on one host: the old one is refused and the new one taken on the others', async () => {
    const [a, b] = replicas as [Replica, Replica]
    // both have verified PW1 and remember it; the change is made on host b
    const set = await b.host.cli(['proxy', 'password', EMAIL], PW2 + '\n')
    assert.equal(set.code, 0, set.stderr)
    for (const r of [a, b]) {
      assert.match((await imapLogin(r, PW1)).reply, /^a1 NO/, `${r.host.name}: the old password`)
      assert.match((await imapLogin(r, PW2)).reply, /^a1 OK/, `${r.host.name}: the new password`)
      assert.match(await smtpAuth(r, PW2), /^235 /, r.host.name)
    }
    const rows = await shared.pg.query<{ value: string }>(
      `SELECT value::text AS value FROM mailkey_items WHERE kind = 'proxy-password' AND name = $1`,
      [EMAIL],
      'mailkey',
    )
    assert.ok(!rows.rows[0]!.value.includes(PW2))
  })

  it('no replica logged a local password', () => {
    const leaks = findLeaks(
      replicas.map((r) => r.proc.stderr()),
      [PW1, PW2],
    )
    assert.deepEqual(leaks, [])
  })
})
