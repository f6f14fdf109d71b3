// [hooks] in config.toml: a shell command for a waiting device code, a grant that needs a new
// sign-in, and a failed refresh. Facts arrive in MAILKEY_* variables; no token ever does; a hook
// never holds up the command that triggered it and is killed at timeout_sec.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startOAuthServer, LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { runCli, spawnCli, findLeaks, noteSecrets, transcript } from '../harness/cli.js'

const EMAIL = 'alice@example.test'

describe('hooks: device_code, refresh_error, reauth', () => {
  let lab: LabServer
  let home: TmpHome
  let out: string
  const secrets: string[] = []
  const cfgFile = (): string => join(home.env.XDG_CONFIG_HOME as string, 'mailkey', 'config.toml')
  /** the MAILKEY_* variables a hook saw, once its file appears */
  const seen = async (event: string): Promise<Record<string, string>> => {
    const f = join(out, `${event}.env`)
    const end = Date.now() + 10_000
    // the hook renames its file into place when it is complete (below): no guess at how long writing takes
    while (!existsSync(f) && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
    const text = await readFile(f, 'utf8')
    return Object.fromEntries(
      text
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )
  }

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    home = await makeTmpHome()
    out = join(home.dir, 'hook-out')
    await mkdir(out)
    await mkdir(join(home.env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
    const file = `'${out}/'"$MAILKEY_EVENT"`
    const record = `env | grep '^MAILKEY_' | sort > ${file}.part && mv ${file}.part ${file}.env`
    await writeFile(
      cfgFile(),
      `[hooks]\nreauth = "${record.replace(/"/g, '\\"')}"\ndevice_code = "${record.replace(/"/g, '\\"')}"\nrefresh_error = "${record.replace(/"/g, '\\"')}"\ntimeout_sec = 5\n`,
    )
  })
  after(async () => {
    await lab?.close()
    await home?.cleanup()
  })

  it('device_code: the code and where to enter it, while the sign-in waits', async () => {
    const cli = spawnCli(
      [
        'add',
        EMAIL,
        '--device',
        '--json',
        '--issuer',
        lab.issuer,
        '--client-id',
        LAB_PUBLIC_CLIENT_ID,
        '--scope',
        [...MAIL_SCOPES, 'offline_access'].join(' '),
      ],
      home.env,
    )
    const ev = await cli.event('device_code')
    const vars = await seen('device_code')
    assert.equal(vars.MAILKEY_ACCOUNT, EMAIL)
    assert.equal(vars.MAILKEY_USER_CODE, String(ev.user_code))
    assert.equal(vars.MAILKEY_VERIFICATION_URI, String(ev.verification_uri))
    assert.match(vars.MAILKEY_MESSAGE ?? '', /enter .* to sign in alice@example\.test/)
    await lab.approveDevice(String(ev.user_code), { login: EMAIL })
    assert.equal((await cli.done).code, 0)
    const rec = JSON.parse(await readFile(recordFile(home.env, EMAIL), 'utf8')) as {
      grant: { accessToken: string; refreshToken: string }
    }
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
  })

  it('refresh_error: an outage at the token endpoint, marked transient; the grant is kept', async () => {
    lab.injectTokenFault({ grantType: 'refresh_token', status: 503, body: 'down', times: 10 })
    const r = await runCli(['token', EMAIL, '--force-refresh'], home.env)
    lab.clearFaults()
    assert.equal(r.code, 75, r.stderr)
    const vars = await seen('refresh_error')
    assert.equal(vars.MAILKEY_ACCOUNT, EMAIL)
    assert.equal(vars.MAILKEY_TRANSIENT, '1')
    assert.ok(vars.MAILKEY_MESSAGE && vars.MAILKEY_ERROR_CODE, JSON.stringify(vars))
  })

  it('reauth: a revoked grant; the hook gets the command to run', async () => {
    const rec = JSON.parse(await readFile(recordFile(home.env, EMAIL), 'utf8')) as { grant: { accessToken: string } }
    await lab.revokeGrant(rec.grant.accessToken)
    const r = await runCli(['token', EMAIL, '--force-refresh'], home.env)
    assert.equal(r.code, 77, r.stderr)
    const vars = await seen('reauth')
    assert.equal(vars.MAILKEY_ACCOUNT, EMAIL)
    assert.equal(vars.MAILKEY_COMMAND, `mailkey add ${EMAIL}`)
    assert.equal(vars.MAILKEY_TRANSIENT, '0')
  })

  it('a slow hook does not hold up the command, and is killed at timeout_sec', async () => {
    // a marker no other process has: the hook's sleep
    const marker = `sleep 21.${process.pid % 1000}`
    const slow = `echo started > '${out}/started'; ${marker}; touch '${out}/late'`
    // the grant is revoked by now, so this refresh ends in reauth; the same hook for both events
    await writeFile(cfgFile(), `[hooks]\nrefresh_error = "${slow}"\nreauth = "${slow}"\ntimeout_sec = 1\n`)
    const r = await runCli(['token', EMAIL, '--force-refresh'], home.env)
    assert.equal(r.code, 77, r.stderr)
    // any process whose command line holds the marker (read from /proc: no pgrep needed)
    const running = (): boolean =>
      readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .some((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(marker)
          } catch {
            return false
          }
        })
    let end = Date.now() + 5_000
    while (!existsSync(join(out, 'started')) && Date.now() < end) await new Promise((res) => setTimeout(res, 50))
    assert.ok(existsSync(join(out, 'started')), 'the hook ran')
    end = Date.now() + 10_000
    while (running() && Date.now() < end) await new Promise((res) => setTimeout(res, 100))
    assert.equal(running(), false, 'killed long before its 21 s')
    assert.equal(existsSync(join(out, 'late')), false)
  })

  it('no token or refresh token reaches a hook or any output', async () => {
    const { readdir } = await import('node:fs/promises')
    const files = await Promise.all((await readdir(out)).map((f) => readFile(join(out, f), 'utf8')))
    assert.deepEqual(
      findLeaks(
        [...files, ...transcript.map((t) => t.stdout + t.stderr)].filter((_, i, a) => i < a.length),
        secrets.filter(Boolean),
      ),
      [],
    )
  })
})
