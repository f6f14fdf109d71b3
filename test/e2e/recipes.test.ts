// `mailkey config` recipes, proven with the real client against the testbed: the file exactly as
// printed, `mailkey` on PATH as a user has it after installing, the servers and CA of the account.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startOAuthServer, LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES, introspectionUrl, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, type TmpHome } from '../harness/tmp-home.js'
import { BIN, runCli, spawnCli, findLeaks, noteSecrets, transcript, type LiveCli, have, runCommand } from '../harness/cli.js'
import { dovecotAvailable, freePorts, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'
import { startSmtp, type Smtp } from '../harness/smtp-server.js'

const EMAIL = 'alice@example.test'
const LOCAL_PW = 'recipe local pw 7'
const missing = [!dovecotAvailable() && 'dovecot', !have('msmtp') && 'msmtp'].filter(Boolean)
if (missing.length && process.env.CI) throw new Error(`the recipe tests need ${missing.join(', ')} in CI: apt-get install ${DOVECOT_INSTALL_HINT} msmtp`)
if (missing.length) console.error(`\n*** SKIPPING recipe tests: ${missing.join(', ')} missing ***\n`)

describe('mailkey config: recipes that work as printed', { skip: missing.length ? `${missing.join(', ')} not installed` : false }, () => {
  let lab: LabServer
  let dovecot: Dovecot
  let smtp: Smtp
  let home: TmpHome
  let env: Record<string, string>
  let proxy: LiveCli | undefined
  const secrets: string[] = [LOCAL_PW]
  const MAIL = `From: ${EMAIL}\r\nTo: bob@example.test\r\nSubject: recipe\r\n\r\nsent by msmtp as configured by mailkey\r\n`

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer) })
    smtp = await startSmtp({ introspect: (t, s) => lab.introspect(t, { service: s }), tls: { certFile: dovecot.certFile, keyFile: dovecot.keyFile } })
    home = await makeTmpHome()
    // `mailkey` on PATH, as after "npm install -g mailkey"
    const bin = join(home.dir, 'bin')
    await mkdir(bin)
    await symlink(BIN, join(bin, 'mailkey'))
    env = { ...home.env, PATH: `${bin}:${home.env.PATH ?? '/usr/bin:/bin'}` }
    await mkdir(env.HOME as string, { recursive: true })
    const cli = spawnCli(['add', EMAIL, '--device', '--json', '--issuer', lab.issuer, '--client-id', LAB_PUBLIC_CLIENT_ID, '--scope', [...MAIL_SCOPES, 'offline_access'].join(' '),
      '--imap-url', `imaps://localhost:${dovecot.ports.imaps}`, '--smtp-url', `smtp://localhost:${smtp.ports.submission}`, '--ca', dovecot.caFile], env)
    await lab.approveDevice(String((await cli.event('device_code')).user_code), { login: EMAIL })
    assert.equal((await cli.done).code, 0)
  })
  after(async () => {
    proxy?.child.kill('SIGTERM')
    await proxy?.done
    await smtp?.stop()
    await dovecot?.stop()
    await lab?.close()
    await home?.cleanup()
  })

  const msmtpWith = async (args: string[]): Promise<{ code: number; stderr: string; file: string }> => {
    const r = await runCli(['config', 'msmtp', EMAIL, ...args], env)
    assert.equal(r.code, 0, r.stderr)
    const file = join(env.HOME as string, `.msmtprc-${args.length ? 'proxy' : 'direct'}`)
    await writeFile(file, r.stdout, { mode: 0o600 })
    const sent = await runCommand('msmtp', ['-C', file, 'bob@example.test'], env, MAIL)
    return { code: sent.code ?? -1, stderr: sent.stderr, file }
  }

  it('msmtp, direct: XOAUTH2/OAUTHBEARER over STARTTLS with the account\'s CA; the server receives the mail from alice', async () => {
    const printed = await runCli(['config', 'msmtp', EMAIL], env)
    assert.match(printed.stdout, /^passwordeval "mailkey token alice@example\.test"$/m)
    assert.match(printed.stdout, new RegExp(`^tls_trust_file "${dovecot.caFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"$`, 'm'))
    assert.match(printed.stderr, /chmod 600 ~\/\.msmtprc/, 'where it goes, on stderr')
    const before = smtp.received.length
    const r = await msmtpWith([])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(smtp.received.length, before + 1)
    assert.equal(smtp.received.at(-1)?.user, EMAIL, 'authenticated with alice\'s token')
  })

  it('msmtp via the proxy: the [[proxy.listeners]] port from config.toml and the local password file', async () => {
    const [port] = await freePorts(1) as [number]
    await mkdir(join(env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
    await writeFile(join(env.XDG_CONFIG_HOME as string, 'mailkey', 'config.toml'), `[proxy]\n[[proxy.listeners]]\nprotocol = "smtp"\nport = ${port}\n`)
    // the default password command reads this file
    const pwFile = join(env.XDG_CONFIG_HOME as string, 'mailkey', 'proxy-password')
    await writeFile(pwFile, LOCAL_PW + '\n', { mode: 0o600 })
    assert.equal((await runCli(['proxy', 'password', EMAIL], env, { stdin: LOCAL_PW + '\n' })).code, 0)
    proxy = spawnCli(['proxy'], env)
    await proxy.event('listening', 15_000)
    const printed = await runCli(['config', 'msmtp', EMAIL, '--via', 'proxy'], env)
    assert.match(printed.stdout, new RegExp(`^port ${port}$`, 'm'))
    assert.match(printed.stdout, /^auth plain$/m)
    const before = smtp.received.length
    const r = await msmtpWith(['--via', 'proxy'])
    assert.equal(r.code, 0, `${r.stderr}\n${proxy.stderr()}`)
    assert.equal(smtp.received.length, before + 1)
    assert.equal(smtp.received.at(-1)?.user, EMAIL, 'the proxy signed in upstream as alice')
  })

  it('lists the clients; unknown clients and accounts get the next command to run', async () => {
    const list = await runCli(['config'], env)
    assert.equal(list.code, 0)
    assert.match(list.stdout, /^ {2}msmtp /m)
    assert.match(list.stdout, /^ {2}generic /m)
    const unknown = await runCli(['config', 'pine', EMAIL], env)
    assert.equal(unknown.code, 64)
    assert.match(unknown.stderr, /no recipe for "pine"[\s\S]*mailkey config/)
    const nobody = await runCli(['config', 'msmtp', 'nobody@example.test'], env)
    assert.equal(nobody.code, 78)
    assert.match(nobody.stderr, /mailkey add nobody@example\.test/)
    const generic = await runCli(['config', 'generic', EMAIL], env)
    assert.equal(generic.code, 64)
    assert.match(generic.stderr, /--via proxy/)
  })

  it('no secret in any output', async () => {
    const { readFile } = await import('node:fs/promises')
    const rec = JSON.parse(await readFile(join(env.XDG_STATE_HOME as string, 'mailkey', 'accounts', `${EMAIL}.json`), 'utf8')) as { grant: { accessToken: string; refreshToken: string } }
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken, LOCAL_PW)
    assert.deepEqual(findLeaks([proxy?.stderr() ?? '', ...transcript.filter((t) => t.args[0] !== 'token').map((t) => t.stdout + t.stderr)], secrets), [])
  })
})
