// broker/keep-alive.ts: one pass over many accounts, as `mailkey sweep` and the proxy run it:
// due grants refreshed one after another with a gap, at most maxRefreshes per pass (the rest
// deferred, said so), accounts that need a sign-in reported with the command, failures kept apart.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { keepAlivePass, type KeepAliveBroker } from '../../src/broker/keep-alive.js'
import type { AccountRecord } from '../../src/domain/account.js'
import { ReauthRequiredError, TransientError, ERR } from '../../src/errors.js'

const DAY = 86_400_000
const NOW = Date.UTC(2026, 11, 6)

function rec(email: string, o: Partial<AccountRecord> = {}, idleFor = 80): AccountRecord {
  return {
    v: 1,
    state: 'active',
    updatedAt: 0,
    settings: {
      email,
      provider: 'microsoft',
      clientId: 'c',
      scopes: ['s'],
      endpoints: { token: 'https://login.example.test/token' },
      servers: {},
      sasl: 'XOAUTH2',
      flow: 'device',
    },
    grant: { refreshToken: 'rt', grantedAt: NOW - 100 * DAY, refreshedAt: NOW - idleFor * DAY },
    ...o,
  }
}

function fakeBroker(records: AccountRecord[], failFor = new Set<string>()) {
  const refreshed: string[] = []
  const broker: KeepAliveBroker = {
    store: { list: async () => ({ records }), read: async (id) => records.find((r) => r.settings.email === id) },
    grantPolicy: async () => ({ idleDays: 90 }),
    now: () => NOW,
    getAccessToken: async (account) => {
      if (failFor.has(account)) throw new TransientError(ERR.OAUTH_TRANSIENT, 'the server is down')
      refreshed.push(account)
    },
  }
  return { broker, refreshed }
}

it('refreshes due grants spaced by the gap, caps a pass and defers the rest', async () => {
  const due = ['a@x.test', 'b@x.test', 'c@x.test'].map((e) => rec(e))
  const fresh = rec('d@x.test', {}, 1)
  const { broker, refreshed } = fakeBroker([...due, fresh])
  const slept: number[] = []
  const notes = await keepAlivePass(broker, { maxRefreshes: 2, gapMs: 750, sleep: async (ms) => void slept.push(ms) })
  assert.deepEqual(refreshed, ['a@x.test', 'b@x.test'])
  assert.deepEqual(slept, [750], 'one gap between two refreshes, none before the first')
  assert.deepEqual(
    notes.map((n) => [n.account, n.refresh?.ok ?? null, n.deferred ?? false]),
    [
      ['a@x.test', true, false],
      ['b@x.test', true, false],
      ['c@x.test', null, true],
    ],
  )
})

it('reports accounts that need a sign-in with the command, and transient failures as such', async () => {
  const dead = rec('dead@x.test', {
    state: 'reauth',
    lastError: { code: ERR.REAUTH_REQUIRED, message: 'the grant was revoked', transient: false, at: NOW - DAY },
  })
  const { broker } = fakeBroker([dead, rec('flaky@x.test')], new Set(['flaky@x.test']))
  const notes = await keepAlivePass(broker)
  const byAccount = new Map(notes.map((n) => [n.account, n]))
  assert.match(byAccount.get('dead@x.test')?.reauth ?? '', /the grant was revoked; run "mailkey add dead@x\.test"/)
  assert.deepEqual(byAccount.get('flaky@x.test')?.refresh, {
    ok: false,
    message: 'the server is down',
    transient: true,
  })
})

it('a grant another host refreshed since the listing is not refreshed again', async () => {
  const listed = rec('a@x.test')
  const { broker, refreshed } = fakeBroker([listed])
  broker.store.read = async () => rec('a@x.test', {}, 0) // refreshed meanwhile
  const notes = await keepAlivePass(broker)
  assert.deepEqual(refreshed, [])
  assert.deepEqual(notes, [])
})

it('a keep-alive refresh the server refuses for good is reported as needing a sign-in', async () => {
  const { broker } = fakeBroker([rec('gone@x.test')])
  broker.getAccessToken = async () => {
    throw new ReauthRequiredError(ERR.REAUTH_REQUIRED, 'invalid_grant: the grant was revoked')
  }
  const [note] = await keepAlivePass(broker)
  assert.equal(note?.refresh?.ok, false)
  assert.match(note?.reauth ?? '', /invalid_grant: the grant was revoked; run "mailkey add gone@x\.test"/)
})
