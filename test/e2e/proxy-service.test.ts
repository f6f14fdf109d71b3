// `mailkey proxy` on a worker host that holds only the token service's URL and an API key (issue
// 14): no store URL of the database, no store key, no database password. The account's grant
// stays on the service's side (one `mailkey serve` replica over the real PostgreSQL); the local
// proxy password is set on the worker; a client logs in with IMAP LOGIN through the proxy to the
// real Dovecot and selects INBOX. When the grant is revoked at the OAuth server, the proxy answers
// its needs-sign-in NO at once rather than hanging.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Dovecot } from '../harness/dovecot.js'
import { findLeaks, runCli, spawnCli, type LiveCli } from '../harness/cli.js'
import { makeTmpHome } from '../harness/tmp-home.js'
import { addApiKey, startReplica, type Replica } from '../harness/service.js'
import { LineClient } from '../harness/line-client.js'
import { sharedLabSkip, startSharedLab, type SharedLab } from '../harness/shared-lab.js'

const skip = sharedLabSkip('the proxy-through-service tests', { mail: true })

const EMAIL = 'alice@example.test'
const LOCAL_PW = 'worker proxy password'

describe('mailkey proxy through the token service', { skip }, () => {
  let shared: SharedLab
  let rep: Replica
  let proxy: LiveCli
  let port: number
  let workerEnv: Record<string, string>
  const clients: LineClient[] = []
  const secrets: string[] = []
  const texts: string[] = []

  async function login(): Promise<{ c: LineClient; reply: string }> {
    const c = await LineClient.open(port)
    clients.push(c)
    await c.until(/^\* OK .*\r\n/m)
    c.send(`a1 LOGIN ${EMAIL} "${LOCAL_PW}"`)
    // the proxy's own deadline for an upstream sign-in is 30 s: an answer well before it, not a hang
    return { c, reply: await c.until(/^a1 .*$/m, 20_000) }
  }

  before(async () => {
    shared = await startSharedLab({ mail: 'imap' })
    const { fleet } = shared
    const dovecot = shared.dovecot as Dovecot
    secrets.push(shared.pg.password)
    const rec = await shared.signIn(EMAIL)
    secrets.push(rec.grant?.refreshToken as string, rec.grant?.accessToken as string)
    const { key } = await addApiKey(shared.admin, 'worker', ['--accounts', EMAIL])
    secrets.push(key)
    rep = await startReplica(fleet, 'service', { args: ['--cache-ms', '0'] })
    // the worker: a home of its own, the service's URL and a key file; nothing of the store
    const home = await makeTmpHome()
    fleet.homes.push(home)
    const keyFile = join(home.dir, 'api.key')
    await writeFile(keyFile, `${key}\n`, { mode: 0o600 })
    workerEnv = { ...home.env, MAILKEY_STORE_URL: rep.url, MAILKEY_API_KEY_FILE: keyFile }
    // the account's --ca is a file of the store's host and stays there; the worker trusts the lab's
    // Dovecot through its own config, as it would name any private CA
    await mkdir(join(home.env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true, mode: 0o700 })
    await writeFile(
      join(home.env.XDG_CONFIG_HOME as string, 'mailkey', 'config.toml'),
      `[[proxy.listeners]]\nprotocol = "imap"\nport = 0\nupstream = "imaps://localhost:${dovecot.ports.imaps}"\nca = ${JSON.stringify(dovecot.caFile)}\n`,
    )
  })

  after(async () => {
    for (const c of clients) c.close()
    proxy?.child.kill('SIGTERM')
    await proxy?.done
    rep?.cli.child.kill('SIGKILL')
    await shared?.stop()
  })

  it('the worker holds no store: only the service URL and an API key', () => {
    assert.match(workerEnv.MAILKEY_STORE_URL ?? '', /^http:\/\/127\.0\.0\.1:\d+$/)
    for (const v of ['MAILKEY_STORE_KEY_FILE', 'MAILKEY_STORE_KEY', 'PGPASSWORD', 'PGPASSFILE', 'REDISCLI_AUTH'])
      assert.equal(workerEnv[v], undefined, v)
    for (const [k, v] of Object.entries(workerEnv)) {
      assert.ok(!/^(postgres|redis)s?:/i.test(v), `${k} names no database`)
      assert.ok(!v.includes(shared.pg.password), `${k} holds no database password`)
    }
  })

  it('a local proxy password, then IMAP LOGIN through the proxy to Dovecot, and SELECT INBOX', async () => {
    const pw = await runCli(['proxy', 'password', EMAIL], workerEnv, { stdin: LOCAL_PW + '\n' })
    assert.equal(pw.code, 0, pw.stderr)
    const file = join(workerEnv.XDG_STATE_HOME as string, 'mailkey', 'proxy-passwords.json')
    assert.ok(existsSync(file), 'the password is kept on the worker')
    proxy = spawnCli(['proxy'], workerEnv)
    port = Number((await proxy.event('listening', 30_000)).port)
    const { c, reply } = await login()
    assert.match(reply, /^a1 OK/, proxy.stderr())
    c.send('a2 SELECT INBOX')
    assert.match(await c.until(/^a2 .*$/m), /^a2 OK/)
    c.send('a3 LOGOUT')
    await c.until(/^a3 OK.*$/m)
    const wrong = await LineClient.open(port)
    clients.push(wrong)
    await wrong.until(/^\* OK .*\r\n/m)
    wrong.send(`b1 LOGIN ${EMAIL} "not the password"`)
    assert.match(await wrong.until(/^b1 .*$/m), /^b1 NO/)
    texts.push(pw.stderr, c.text)
  })

  it('a revoked grant: the needs-sign-in NO, at once', async () => {
    const rec = await shared.fleet.record(EMAIL)
    await shared.lab.revokeGrant(rec?.grant?.refreshToken as string)
    await shared.fleet.expire(EMAIL)
    const { reply } = await login()
    assert.match(reply, /^a1 NO \[AUTHENTICATIONFAILED\] This account needs a new sign-in/)
    const again = await login()
    assert.match(again.reply, /^a1 NO \[AUTHENTICATIONFAILED\] This account needs a new sign-in/)
    texts.push(reply, again.reply)
  })

  it('no secret in the worker proxy, the service or the clients', () => {
    assert.deepEqual(findLeaks([...texts, proxy.stderr(), rep.output()], secrets.filter(Boolean)), [])
  })
})
