// broker/host-tokens.ts: the host cache answers only while the store is down, never for a forced
// refresh, and forgets an account whose grant is dead or which is gone, so a revoked grant's
// token is never handed out from it. Files are 0600 and hold no refresh token or client secret.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HostTokens } from '../../src/broker/host-tokens.js'
import { HostCache } from '../../src/store/host-cache.js'
import { resolvePaths } from '../../src/config/paths.js'
import { Secret } from '../../src/core/secret.js'
import { ConfigError, ERR, ReauthRequiredError, StoreError } from '../../src/errors.js'
import type { AccountSettings } from '../../src/domain/account.js'

const ID = 'cache@example.test'
const NOW = 1_000_000
const settings = {
  email: ID,
  provider: 'custom',
  clientId: 'c',
  clientSecret: 'client-secret-never-cached',
  scopes: ['s'],
  endpoints: { token: 'https://127.0.0.1:1/token' },
  servers: { imap: 'imaps://127.0.0.1:993' },
  sasl: 'XOAUTH2',
  flow: 'device',
} as AccountSettings

async function withCache(fn: (host: HostTokens, file: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailkey-hostcache-'))
  try {
    const paths = resolvePaths({ MAILKEY_STATE_DIR: join(dir, 'state'), HOME: dir })
    const host = new HostTokens(new HostCache(paths))
    const token = {
      account: ID,
      token: new Secret('cached-access-token'),
      expiresAt: NOW + 600_000,
      sasl: 'XOAUTH2' as const,
      user: ID,
      refreshed: true,
    }
    await host.remember(ID, token, async () => settings)
    await fn(host, join(paths.stateDir, 'tokens', `${ID}.json`))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const down = new StoreError(ERR.STORE_UNAVAILABLE, 'the shared store is unavailable')

it('answers while the store is down, with the settings but no client secret, from a 0600 file', async () => {
  await withCache(async (host, file) => {
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    assert.ok(!(await readFile(file, 'utf8')).includes('client-secret-never-cached'))
    const t = await host.instead(ID, down, false, NOW, undefined)
    assert.equal(t.token.reveal(), 'cached-access-token')
    assert.equal((await host.record(ID, down)).settings.servers.imap, 'imaps://127.0.0.1:993')
    await assert.rejects(host.instead(ID, down, true, NOW, undefined), (e) => e === down, 'not for a forced refresh')
    const other = new StoreError(ERR.STORE_IO, 'disk on fire')
    await assert.rejects(host.instead(ID, other, false, NOW, undefined), (e) => e === other, 'only when down')
  })
})

it('a dead grant or a removed account is forgotten: never handed out from the cache again', async () => {
  for (const dead of [
    new ReauthRequiredError(ERR.REAUTH_REQUIRED, 'invalid_grant'),
    new ConfigError(ERR.ACCOUNT_UNKNOWN, 'no account'),
  ]) {
    await withCache(async (host) => {
      await assert.rejects(host.instead(ID, dead, false, NOW, undefined), (e) => e === dead)
      await assert.rejects(host.instead(ID, down, false, NOW, undefined), (e) => e === down, 'nothing cached any more')
    })
  }
})
