// Grants that end without anyone revoking them (issue 5): the idle limit of a refresh token
// (Microsoft: 90 days unused) and a maximum age (Google "testing" apps: 7 days). `status` says
// when; `mailkey token` warns on stderr only; a running proxy refreshes idle-limited grants in time.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startOAuthServer, LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { runCli, spawnCli, findLeaks, noteSecrets, transcript } from '../harness/cli.js'
import { signIn } from '../harness/sign-in.js'

const DAY = 86_400_000

describe("grant horizons: status, token warnings, the proxy's keep-alive", () => {
  let lab: LabServer
  let home: TmpHome
  const secrets: string[] = []
  /** move the grant's clock back: signed in / last refreshed `days` ago (the access token stays fresh) */
  const age = async (email: string, o: { grantedDays: number; usedDays: number }): Promise<void> => {
    const rec = JSON.parse(await readFile(recordFile(home.env, email), 'utf8')) as { grant: Record<string, number> }
    rec.grant.grantedAt = Date.now() - o.grantedDays * DAY
    rec.grant.refreshedAt = Date.now() - o.usedDays * DAY
    rec.grant.refreshTokenAt = Date.now() - o.usedDays * DAY
    await writeFile(recordFile(home.env, email), JSON.stringify(rec), { mode: 0o600 })
  }

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    home = await makeTmpHome()
    const cfgDir = join(home.env.XDG_CONFIG_HOME as string, 'mailkey')
    await mkdir(cfgDir, { recursive: true })
    const provider = (name: string, extra: string): string =>
      [
        `[providers.${name}]`,
        `issuer = "${lab.issuer}"`,
        `client_id = "${LAB_PUBLIC_CLIENT_ID}"`,
        `scopes = ${JSON.stringify([...MAIL_SCOPES, 'offline_access'])}`,
        'flows = ["device"]',
        'imap_url = "imaps://127.0.0.1:9993"',
        extra,
        '',
      ].join('\n')
    await writeFile(
      join(cfgDir, 'config.toml'),
      provider('idle', 'refresh_token_idle_days = 10') + provider('testing', 'grant_max_age_days = 7'),
    )
    for (const [email, p] of [
      ['ida@example.test', 'idle'],
      ['tess@example.test', 'testing'],
    ] as const) {
      await signIn(lab, home.env, email, ['--provider', p], secrets)
    }
  })
  after(async () => {
    await lab?.close()
    await home?.cleanup()
  })

  it('a fresh grant: status gives the date, no warning anywhere', async () => {
    const st = JSON.parse((await runCli(['status', 'ida@example.test', '--json'], home.env)).stdout) as {
      grant_horizon: { kind: string; days: number; days_left: number; warn: boolean }
    }
    assert.deepEqual([st.grant_horizon.kind, st.grant_horizon.days, st.grant_horizon.warn], ['idle', 10, false])
    assert.ok(st.grant_horizon.days_left >= 9)
    const t = await runCli(['token', 'ida@example.test'], home.env)
    assert.equal(t.code, 0)
    assert.equal(t.stderr, '')
  })

  it('near the idle limit: status warns, token warns on stderr and stdout is the token alone', async () => {
    await age('ida@example.test', { grantedDays: 30, usedDays: 8.5 })
    const st = await runCli(['status', 'ida@example.test'], home.env)
    assert.match(
      st.stdout,
      /grant ends +WARNING: the grant of ida@example\.test expires on .* \(in 1 days\) unless it is used/,
    )
    const t = await runCli(['token', 'ida@example.test'], home.env)
    assert.equal(t.code, 0)
    assert.match(t.stdout, /^\S+\n$/, 'one line: the token')
    assert.match(t.stderr, /^mailkey: warning: the grant of ida@example\.test expires on .*--force-refresh/)
  })

  it('a maximum age cannot be refreshed away: status and token say to sign in again before the date', async () => {
    await age('tess@example.test', { grantedDays: 6, usedDays: 0.01 })
    const t = await runCli(['token', 'tess@example.test'], home.env)
    assert.equal(t.code, 0)
    assert.match(
      t.stderr,
      /the grant of tess@example\.test ends on .* \(in 0 days; grants of this provider live 7 days\); run "mailkey add tess@example\.test" before then/,
    )
  })

  it('a running proxy refreshes the idle-limited grant at once, and logs the one that will end', async () => {
    lab.resetCounts()
    const proxy = spawnCli(['proxy', '--imap-port', '0'], home.env)
    try {
      const end = Date.now() + 15_000
      while (!/"event":"grant-ending".*tess@example\.test/.test(proxy.stderr()) && Date.now() < end)
        await new Promise((r) => setTimeout(r, 50))
      const log = proxy.stderr()
      assert.match(log, /"event":"keepalive","account":"ida@example\.test","outcome":"ok"/)
      assert.doesNotMatch(
        log,
        /"event":"keepalive","account":"tess@example\.test"/,
        'a max-age grant is not refreshed for nothing',
      )
      assert.match(log, /"event":"grant-ending","account":"tess@example\.test"/)
      assert.equal(lab.counts.refresh, 1, "one refresh: ida's")
    } finally {
      proxy.child.kill('SIGTERM')
      await proxy.done
    }
    const st = JSON.parse((await runCli(['status', 'ida@example.test', '--json'], home.env)).stdout) as {
      grant_horizon: { warn: boolean; days_left: number }
    }
    assert.equal(st.grant_horizon.warn, false, 'the idle clock restarted')
    assert.ok(st.grant_horizon.days_left >= 9)
    const rec = JSON.parse(await readFile(recordFile(home.env, 'ida@example.test'), 'utf8')) as {
      grant: { accessToken: string; refreshToken: string }
    }
    secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
    await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
  })

  it('no secret in any output', () => {
    assert.deepEqual(
      findLeaks(
        transcript.filter((t) => t.args[0] !== 'token').map((t) => t.stdout + t.stderr),
        secrets,
      ),
      [],
    )
  })
})
