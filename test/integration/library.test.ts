// The library as a Node developer uses it: `import { createMailkey } from 'mailkey'` (the built
// package, dist/), against the real OAuth server on loopback.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startOAuthServer, LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { assertBuilt, noteSecrets } from '../harness/cli.js'
import type * as Mailkey from '../../src/index.js'

const SCOPE = [...MAIL_SCOPES, 'offline_access']

describe('library: createMailkey()', () => {
  let lab: LabServer
  let home: TmpHome
  let mk: typeof Mailkey

  before(async () => {
    assertBuilt()
    mk = (await import(new URL('../../dist/index.js', import.meta.url).href)) as typeof Mailkey
    lab = await startOAuthServer({ deviceInterval: 1 })
    home = await makeTmpHome()
  })
  after(async () => {
    await lab.close()
    await home.cleanup()
  })

  it('signs in with the device flow through callbacks and hands out tokens', async () => {
    const m = mk.createMailkey({ env: home.env })
    const prompts: Mailkey.DevicePrompt[] = []
    const status = await m.signIn({
      email: 'lib@example.test',
      issuer: lab.issuer,
      clientId: LAB_PUBLIC_CLIENT_ID,
      scopes: SCOPE,
      flow: 'device',
      onDevicePrompt: (p) => {
        prompts.push(p)
        void lab.approveDevice(p.userCode, { login: 'lib@example.test' })
      },
    })
    assert.equal(prompts.length, 1)
    assert.equal(status.email, 'lib@example.test')
    assert.equal(status.state, 'active')
    assert.equal(status.refreshToken.present, true)
    const t = await m.getAccessToken('lib@example.test')
    await noteSecrets(t.token.reveal())
    assert.equal(String(t.token).startsWith('[redacted:'), true, 'a Secret never prints itself')
    assert.equal(JSON.stringify({ t: t.token }).includes(t.token.reveal()), false)
    assert.equal((await lab.introspect(t.token.reveal())).email, 'lib@example.test')
    const sasl = await m.getSaslResponse('lib@example.test')
    assert.equal(sasl.mechanism, 'XOAUTH2')
    assert.equal(
      Buffer.from(sasl.response.reveal(), 'base64').toString(),
      `user=lib@example.test\x01auth=Bearer ${t.token.reveal()}\x01\x01`,
    )
  })

  it('concurrent callers in one process share one refresh (run in the detached worker)', async () => {
    const m = mk.createMailkey({ env: home.env })
    const path = recordFile(home.env, 'lib@example.test')
    const { writeFile } = await import('node:fs/promises')
    const raw = JSON.parse(await readFile(path, 'utf8')) as { grant: { expiresAt: number } }
    raw.grant.expiresAt = Date.now() - 1
    await writeFile(path, JSON.stringify(raw))
    lab.resetCounts()
    const all = await Promise.all(Array.from({ length: 25 }, () => m.getAccessToken('lib@example.test')))
    assert.equal(lab.counts.refresh, 1)
    assert.equal(new Set(all.map((t) => t.token.reveal())).size, 1)
    assert.ok(all.every((t) => t.refreshed))
    await noteSecrets(all[0]?.token.reveal())
  })

  it('says with a typed error when the user must sign in again', async () => {
    const m = mk.createMailkey({ env: home.env })
    const t = await m.getAccessToken('lib@example.test')
    await lab.revokeGrant(t.token.reveal())
    await assert.rejects(m.getAccessToken('lib@example.test', { forceRefresh: true }), (e: unknown) => {
      assert.ok(e instanceof mk.ReauthRequiredError)
      assert.ok(e instanceof mk.MailkeyError)
      assert.equal(e.reauthRequired, true)
      assert.equal(e.transient, false)
      assert.equal(e.code, mk.ERR.REAUTH_REQUIRED)
      assert.equal(e.account, 'lib@example.test')
      assert.equal(e.oauthError, 'invalid_grant')
      return true
    })
    const s = await m.status('lib@example.test')
    assert.equal(s.state, 'reauth')
  })

  it('unknown accounts are a ConfigError naming the account', async () => {
    const m = mk.createMailkey({ env: home.env })
    await assert.rejects(
      m.getAccessToken('ghost@example.test'),
      (e: unknown) =>
        e instanceof mk.ConfigError && e.code === mk.ERR.ACCOUNT_UNKNOWN && e.account === 'ghost@example.test',
    )
  })

  it('an env-defined account works through the library too', async () => {
    const seed = mk.createMailkey({ env: home.env })
    await seed.signIn({
      email: 'env@example.test',
      issuer: lab.issuer,
      clientId: LAB_PUBLIC_CLIENT_ID,
      scopes: SCOPE,
      flow: 'device',
      onDevicePrompt: (p) => void lab.approveDevice(p.userCode, { login: 'env@example.test' }),
    })
    const rec = JSON.parse(await readFile(recordFile(home.env, 'env@example.test'), 'utf8')) as {
      grant: { refreshToken: string }
    }
    await noteSecrets(rec.grant.refreshToken)
    const box = await makeTmpHome()
    try {
      const m = mk.createMailkey({
        env: {
          ...box.env,
          MAILKEY_EMAIL: 'env@example.test',
          MAILKEY_TOKEN_URL: `${lab.issuer}/token`,
          MAILKEY_CLIENT_ID: LAB_PUBLIC_CLIENT_ID,
          MAILKEY_SCOPE: SCOPE.join(' '),
          MAILKEY_REFRESH_TOKEN: rec.grant.refreshToken,
        },
      })
      const t = await m.getAccessToken('env@example.test')
      await noteSecrets(t.token.reveal())
      assert.equal((await lab.introspect(t.token.reveal())).active, true)
      assert.equal((await m.status('env@example.test')).flow, 'env')
    } finally {
      await box.cleanup()
    }
  })
})
