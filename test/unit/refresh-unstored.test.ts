// broker/refresh.ts: when the token endpoint answered but the answer could not be stored (the
// shared store went down between the two), the refresh is not tried again: a second request would
// present a refresh token the server may already have replaced (and a strict server then revokes
// the grant). The failure is reported as it is, transient.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { refreshUnderLock, type RefreshContext } from '../../src/broker/refresh.js'
import { resolveSettings } from '../../src/config/settings.js'
import { ERR, StoreError } from '../../src/errors.js'
import type { AccountRecord } from '../../src/domain/account.js'
import type { TokenStore } from '../../src/store/token-store.js'

const rec: AccountRecord = {
  v: 1,
  state: 'active',
  updatedAt: 0,
  settings: {
    email: 'a@example.test',
    provider: 'custom',
    clientId: 'c',
    scopes: ['s'],
    endpoints: { token: 'https://127.0.0.1:1/token' },
    servers: {},
    sasl: 'XOAUTH2',
    flow: 'device',
  },
  grant: { refreshToken: 'rt-one-rt-one-rt-one', accessToken: 'old', expiresAt: 1, grantedAt: 0 },
}

it('a refresh whose answer cannot be stored is not sent again', async () => {
  let requests = 0
  const store: TokenStore = {
    read: async () => rec,
    write: async () => {
      throw new StoreError(ERR.STORE_UNAVAILABLE, 'the shared store is unavailable')
    },
    list: async () => ({ records: [], broken: [] }),
    remove: async () => false,
    ensureDir: async () => undefined,
  }
  const fetch = (async () => {
    requests++
    return new Response(JSON.stringify({ access_token: 'new', token_type: 'Bearer', expires_in: 3600 }), {
      status: 200,
      headers: { 'content-type': 'application/json' },
    })
  }) as typeof globalThis.fetch
  const ctx: RefreshContext = {
    store,
    settings: resolveSettings({ maxAttempts: 3 }, {}, undefined),
    now: () => 1000,
    sleep: async () => undefined,
    random: () => 0,
    fetch,
  }
  await assert.rejects(
    refreshUnderLock(ctx, 'a@example.test', { force: false, since: 1000, minSec: 60 }),
    (e: unknown) => e instanceof StoreError && e.code === ERR.STORE_UNAVAILABLE && e.transient,
  )
  assert.equal(requests, 1)
})
