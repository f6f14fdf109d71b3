/**
 * Issue 14 review: the token service refuses account paths with control characters (a NUL reached
 * PostgreSQL as a 500 carrying its text), /readyz says nothing about the store to callers without
 * a key, and the service's client turns a body cut short into "try again" (75) and refuses a token
 * or user with controls in it (they would reach a terminal or a SASL line).
 */
import assert from 'node:assert/strict'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'

import { Api } from '../../src/serve/api.js'
import { KeyRing, hashKey } from '../../src/serve/keys.js'
import { Metrics } from '../../src/serve/metrics.js'
import { problem } from '../../src/serve/problem.js'
import { TokenCache } from '../../src/serve/token-cache.js'
import type { Item, ItemStore } from '../../src/store/items.js'
import { ServiceClient, serviceTarget } from '../../src/remote/service-client.js'
import { RemoteSource } from '../../src/remote/remote-source.js'
import { ERR, EXIT, MailkeyError } from '../../src/errors.js'
import { STATUS_FIELDS } from '../harness/status-answer.js'

const KEY = 'mk_' + 'k'.repeat(43)

function api(readyDetail?: string): { api: Api; asked: string[] } {
  const asked: string[] = []
  const item: Item = { name: 'ops', value: { hash: hashKey(KEY), accounts: '*', createdAt: 1 }, updatedAt: 1 }
  const items = { list: async () => [item] } as unknown as ItemStore
  const fail = async (a: string): Promise<never> => {
    asked.push(a)
    throw new Error('the store must not be asked')
  }
  const a = new Api({
    source: { getAccessToken: fail, status: fail, list: async () => ({ accounts: [] }) },
    keys: new KeyRing(async () => items),
    cache: new TokenCache(0),
    metrics: new Metrics(),
    ready: async () =>
      readyDetail === undefined ? undefined : problem('unavailable', readyDetail, { code: 'X', retry_after: 7 }),
  })
  return { api: a, asked }
}

describe('serve API: hostile paths and readiness', () => {
  for (const acct of ['a%00@x', 'a%1B%5B2J@x', 'a@x%7F', 'a%C2%85@x', 'a%E2%80%AE@x']) {
    it(`refuses the account "${acct}" before the store sees it`, async () => {
      const { api: a, asked } = api()
      const { res } = await a.handle({
        method: 'GET',
        url: `/v1/accounts/${acct}/token`,
        authorization: `Bearer ${KEY}`,
      })
      assert.equal(res.status, 400, res.body)
      assert.deepEqual(asked, [])
    })
  }

  it('/readyz tells a caller without a key "not ready", not why', async () => {
    const { api: a } = api('the shared store postgres://mailkey@db.internal:5432/mailkey is unavailable')
    const { res } = await a.handle({ method: 'GET', url: '/readyz' })
    assert.equal(res.status, 503)
    assert.equal(res.headers['retry-after'], '7')
    assert.doesNotMatch(res.body, /postgres|db\.internal|"code"/)
  })
})

async function service(
  answer: (res: ServerResponse) => void,
): Promise<{ source: RemoteSource; close: () => void; url: string }> {
  const srv = createServer((req, res) => answer(res))
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`
  const source = new RemoteSource(new ServiceClient(serviceTarget({ MAILKEY_STORE_URL: url, MAILKEY_API_KEY: KEY })))
  return {
    source,
    url,
    close: () => {
      source.client.close()
      srv.closeAllConnections()
      srv.close()
    },
  }
}

describe('service client: a hostile or dying service', () => {
  it('a body cut short is "try again" (75), not an internal error', async () => {
    const s = await service((res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"access_token":"abc')
      setTimeout(() => res.socket?.destroy(), 20)
    })
    try {
      const e = await s.source.getAccessToken('a@x.test').then(
        () => undefined,
        (x: unknown) => x,
      )
      assert.ok(e instanceof MailkeyError, String(e))
      assert.equal(e.exitCode, EXIT.TEMPFAIL)
    } finally {
      s.close()
    }
  })

  for (const [what, body] of [
    ['a token with terminal controls', { access_token: 'tok\x1b[2J\r\nX', user: 'a@x.test' }],
    ['a token with a space', { access_token: 'tok en', user: 'a@x.test' }],
    ['a user with a line break', { access_token: 'tok', user: 'a@x.test\r\nA1 LOGOUT' }],
  ] as const)
    it(`refuses ${what}`, async () => {
      const s = await service((res) => res.end(JSON.stringify(body)))
      try {
        await assert.rejects(s.source.getAccessToken('a@x.test'), (e: MailkeyError) => e.code === ERR.OAUTH_PROTOCOL)
      } finally {
        s.close()
      }
    })

  it('a status without the fields mailkey reads is refused, not half-printed', async () => {
    const s = await service((res) => res.end(JSON.stringify({ email: 'a@x.test', state: 'active' })))
    try {
      await assert.rejects(s.source.status('a@x.test'), /answer mailkey cannot use/)
    } finally {
      s.close()
    }
  })

  it('cleans controls out of a status', async () => {
    const s = await service((res) =>
      res.end(JSON.stringify({ ...STATUS_FIELDS, email: 'a@x.test', state: 'active', provider: 'ev\x1b]0;T\x07il' })),
    )
    try {
      const st = await s.source.status('a@x.test')
      assert.equal(st.provider, 'ev]0;Til')
    } finally {
      s.close()
    }
  })

  it('refuses an API key that is not one word', () => {
    assert.throws(
      () => serviceTarget({ MAILKEY_STORE_URL: 'http://127.0.0.1:1', MAILKEY_API_KEY: 'mk_a\nb' }),
      (e: MailkeyError) => e.code === ERR.CONFIG_INVALID && !e.message.includes('mk_a'),
    )
  })
})

describe('proxy passwords: an entry the store lies about', () => {
  it('an empty hash matches no password', async () => {
    const { verifyPassword } = await import('../../src/proxy/passwords.js')
    const { Secret } = await import('../../src/core/secret.js')
    const entry = { alg: 'scrypt', logN: 1, r: 1, p: 1, salt: '', hash: '', setAt: 0 } as const
    assert.equal(await verifyPassword(new Secret('anything'), entry), false)
  })
})
