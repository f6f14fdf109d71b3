/**
 * An account defined by MAILKEY_* environment variables (containers, CI).
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'

import { envAccountEmail, readEnvAccount } from '../../src/config/env-account.js'
import type { Env } from '../../src/config/paths.js'
import { ConfigError, ERR } from '../../src/errors.js'

// never printed: assertions only say whether it appeared
const RT = '0.AXoA-not-a-real-refresh-token-7f3a9c'

async function configError(env: Env, message: RegExp): Promise<ConfigError> {
  let caught: unknown
  try {
    await readEnvAccount(env)
  } catch (e) {
    caught = e
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`)
  assert.equal(caught.code, ERR.CONFIG_INVALID)
  assert.equal(caught.exitCode, 78)
  assert.match(caught.message, message)
  assert.ok(!caught.message.includes(RT), 'the refresh token reached the message')
  return caught
}

describe('readEnvAccount', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-env-'))
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  it('no MAILKEY_EMAIL -> undefined, whatever else is set', async () => {
    assert.equal(await readEnvAccount({}), undefined)
    assert.equal(await readEnvAccount({ MAILKEY_REFRESH_TOKEN: RT, MAILKEY_PROVIDER: 'google' }), undefined)
    assert.equal(await readEnvAccount({ MAILKEY_EMAIL: '   ', MAILKEY_REFRESH_TOKEN: RT }), undefined)
    assert.equal(envAccountEmail({ MAILKEY_EMAIL: ' a@example.com ' }), 'a@example.com')
    assert.equal(envAccountEmail({ MAILKEY_EMAIL: '' }), undefined)
  })

  it('MAILKEY_EMAIL without a refresh token -> ConfigError naming the variables', async () => {
    const e = await configError(
      { MAILKEY_EMAIL: 'a@example.com' },
      /MAILKEY_EMAIL is set to "a@example\.com" but neither MAILKEY_REFRESH_TOKEN nor MAILKEY_REFRESH_TOKEN_FILE gives a refresh token/,
    )
    assert.equal(e.account, 'a@example.com')
    assert.match(e.hint ?? '', /unset MAILKEY_EMAIL/)
    await configError({ MAILKEY_EMAIL: 'a@example.com', MAILKEY_REFRESH_TOKEN: '  \n' }, /neither/)
  })

  it('MAILKEY_REFRESH_TOKEN, trimmed', async () => {
    const a = await readEnvAccount({ MAILKEY_EMAIL: ' a@example.com ', MAILKEY_REFRESH_TOKEN: ` ${RT}\n` })
    assert.ok(a)
    assert.ok(a.refreshToken === RT, 'token read and trimmed')
    assert.equal(a.source, 'MAILKEY_REFRESH_TOKEN')
    assert.deepEqual(a.options, { email: 'a@example.com' })
  })

  it('MAILKEY_REFRESH_TOKEN_FILE is read and trimmed', async () => {
    const f = join(dir, 'rt')
    await writeFile(f, `\n  ${RT}  \n\n`)
    const a = await readEnvAccount({ MAILKEY_EMAIL: 'a@example.com', MAILKEY_REFRESH_TOKEN_FILE: f })
    assert.ok(a)
    assert.ok(a.refreshToken === RT, 'token read from the file and trimmed')
    assert.equal(a.source, `MAILKEY_REFRESH_TOKEN_FILE (${f})`)
    assert.ok(!a.source.includes(RT))
  })

  it('the variable wins over the file', async () => {
    const f = join(dir, 'other')
    await writeFile(f, 'from-file')
    const a = await readEnvAccount({
      MAILKEY_EMAIL: 'a@example.com',
      MAILKEY_REFRESH_TOKEN: RT,
      MAILKEY_REFRESH_TOKEN_FILE: f,
    })
    assert.ok(a?.refreshToken === RT)
    assert.equal(a?.source, 'MAILKEY_REFRESH_TOKEN')
  })

  it('an empty token file -> ConfigError; an unreadable one names the file and errno', async () => {
    const empty = join(dir, 'empty')
    await writeFile(empty, ' \n')
    await configError({ MAILKEY_EMAIL: 'a@example.com', MAILKEY_REFRESH_TOKEN_FILE: empty }, /neither/)
    const missing = join(dir, 'missing')
    const e = await configError(
      { MAILKEY_EMAIL: 'a@example.com', MAILKEY_REFRESH_TOKEN_FILE: missing },
      /cannot read MAILKEY_REFRESH_TOKEN_FILE ".*missing" \(ENOENT\)/,
    )
    assert.equal(e.account, 'a@example.com')
    await configError({ MAILKEY_EMAIL: 'a@example.com', MAILKEY_REFRESH_TOKEN_FILE: dir }, /\(EISDIR\)/)
  })

  it('maps every MAILKEY_* account variable, skipping empty ones', async () => {
    const a = await readEnvAccount({
      MAILKEY_EMAIL: 'a@example.com',
      MAILKEY_REFRESH_TOKEN: RT,
      MAILKEY_PROVIDER: 'microsoft',
      MAILKEY_TENANT: 'organizations',
      MAILKEY_CLIENT_ID: 'cid',
      MAILKEY_CLIENT_SECRET: 'csec',
      MAILKEY_ISSUER: 'https://id.example.com',
      MAILKEY_TOKEN_URL: 'https://id.example.com/t',
      MAILKEY_AUTHORIZE_URL: 'https://id.example.com/a',
      MAILKEY_DEVICE_URL: 'https://id.example.com/d',
      MAILKEY_IMAP_URL: 'imaps://imap.example.com',
      MAILKEY_POP_URL: '',
      MAILKEY_SMTP_URL: 'smtp://smtp.example.com',
      MAILKEY_SCOPE: ' a  b\tc ',
      MAILKEY_SASL: 'oauthbearer',
    })
    assert.ok(a)
    assert.deepEqual(a.options, {
      email: 'a@example.com',
      provider: 'microsoft',
      tenant: 'organizations',
      clientId: 'cid',
      clientSecret: 'csec',
      issuer: 'https://id.example.com',
      tokenUrl: 'https://id.example.com/t',
      authorizeUrl: 'https://id.example.com/a',
      deviceUrl: 'https://id.example.com/d',
      imapUrl: 'imaps://imap.example.com',
      smtpUrl: 'smtp://smtp.example.com',
      scopes: ['a', 'b', 'c'],
      sasl: 'OAUTHBEARER',
    })
  })

  it('MAILKEY_SASL accepts XOAUTH2 in any case', async () => {
    const a = await readEnvAccount({
      MAILKEY_EMAIL: 'a@example.com',
      MAILKEY_REFRESH_TOKEN: RT,
      MAILKEY_SASL: 'xoauth2',
    })
    assert.equal(a?.options.sasl, 'XOAUTH2')
  })

  it('a bad MAILKEY_SASL -> ConfigError', async () => {
    const e = await configError(
      { MAILKEY_EMAIL: 'a@example.com', MAILKEY_REFRESH_TOKEN: RT, MAILKEY_SASL: 'plain' },
      /MAILKEY_SASL must be XOAUTH2 or OAUTHBEARER, not "plain"/,
    )
    assert.equal(e.account, 'a@example.com')
  })
})

describe('readEnvAccount: shared mailbox', () => {
  it('MAILKEY_MAILBOX names the mailbox to open', async () => {
    const acc = await readEnvAccount({
      MAILKEY_EMAIL: 'me@example.test',
      MAILKEY_REFRESH_TOKEN: 'rt-value-for-test',
      MAILKEY_MAILBOX: 'team@example.test',
    })
    assert.equal(acc?.options.mailbox, 'team@example.test')
  })
})
