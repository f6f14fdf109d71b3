// The `mailkey token` fast path's decision to print a cached token itself, or step aside for the
// full CLI (which applies config.toml and warns about grants near their end).
import { describe, it, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fastToken } from '../../src/cli/fast.js'
import { FileStore } from '../../src/store/file-store.js'
import { resolvePaths } from '../../src/config/paths.js'

const EMAIL = 'a@example.test'

describe('fastToken', () => {
  let dir: string
  let env: Record<string, string>
  const now = 1_800_000_000_000

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-fast-'))
    env = { HOME: dir, XDG_STATE_HOME: join(dir, 'state'), XDG_CONFIG_HOME: join(dir, 'config') }
    const store = new FileStore(resolvePaths(env))
    await store.ensureDir()
    await store.write({
      v: 1,
      settings: {
        email: EMAIL,
        provider: 'custom',
        clientId: 'cid',
        scopes: ['mail'],
        endpoints: { token: 'https://as.example/token' },
        servers: {},
        sasl: 'XOAUTH2',
        flow: 'device',
      },
      grant: { grantedAt: now - 1000, refreshToken: 'rt', accessToken: 'at', expiresAt: now + 3600_000 },
      state: 'active',
      updatedAt: now,
    })
  })
  afterEach(async () => rm(dir, { recursive: true, force: true }))

  const writeConfig = async (text: string): Promise<void> => {
    await mkdir(join(dir, 'config', 'mailkey'), { recursive: true })
    await writeFile(join(dir, 'config', 'mailkey', 'config.toml'), text)
  }

  it('prints a fresh token itself, with or without a config.toml that changes nothing for it', async () => {
    assert.equal(await fastToken(['token', EMAIL], env, now), 'at')
    await writeConfig('[proxy]\nlogin_timeout_sec = 10\n')
    assert.equal(await fastToken(['token', EMAIL], env, now), 'at')
  })

  it('steps aside when config.toml defines providers, even when the environment sets the margin', async () => {
    // providers can carry grant horizons the full CLI warns about (grant_max_age_days)
    await writeConfig('[providers.custom]\ntoken_url = "https://as.example/token"\ngrant_max_age_days = 7\n')
    assert.equal(await fastToken(['token', EMAIL], env, now), undefined)
    assert.equal(await fastToken(['token', EMAIL], { ...env, MAILKEY_REFRESH_MARGIN_SEC: '300' }, now), undefined)
  })

  it('steps aside for a broken config.toml, which the full CLI reports', async () => {
    await writeConfig('refresh_margin_sec = = 1\n')
    assert.equal(await fastToken(['token', EMAIL], { ...env, MAILKEY_REFRESH_MARGIN_SEC: '300' }, now), undefined)
  })
})
