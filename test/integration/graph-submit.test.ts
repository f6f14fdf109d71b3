// proxy/graph-submit.ts against real sockets where Graph cannot be reached: a connection refused
// never carried the message, so it is tried again (the waits injected, no wall clock), and the
// client finally hears 451 4.4.1, not "may have gone out". The token source is a fake at the edge.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { submitViaGraph } from '../../src/proxy/graph-submit.js'
import { Secret } from '../../src/core/secret.js'
import type { AccountRecord } from '../../src/domain/account.js'

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

function tokens(graphUrl: string): Parameters<typeof submitViaGraph>[0] & { asked: string[] } {
  const asked: string[] = []
  const rec = {
    v: 1,
    state: 'active',
    updatedAt: 0,
    settings: {
      email: 'a@example.test',
      provider: 'microsoft',
      clientId: 'c',
      scopes: [],
      endpoints: { token: 'https://t.example' },
      servers: { graph: graphUrl },
      sasl: 'XOAUTH2',
      flow: 'device',
      resources: { graph: { scopes: ['https://graph.microsoft.com/Mail.Send'] } },
    },
  } as AccountRecord
  return {
    asked,
    record: async () => rec,
    getAccessToken: async (_a, o) => {
      asked.push(`${o.resource}:${o.forceRefresh === true}`)
      return { token: new Secret('graph-token-for-the-test') }
    },
  }
}

const MSG = Buffer.from('From: a@example.test\r\nTo: b@example.test\r\nSubject: s\r\n\r\nx\r\n')

describe('Graph out of reach', () => {
  it('a refused connection is tried again, then 451 4.4.1 (the message was never sent)', async () => {
    const port = await closedPort()
    const t = tokens(`http://127.0.0.1:${port}/v1.0`)
    const waits: number[] = []
    const r = await submitViaGraph(t, 'a@example.test', { to: ['b@example.test'] }, MSG, {
      sleep: async (ms) => void waits.push(ms),
      maxAttempts: 3,
    })
    assert.equal(r.accepted, false)
    assert.match(r.reply, /^451 4\.4\.1 Microsoft Graph cannot be reached/)
    assert.deepEqual(waits, [1000, 1000], 'waited between the three attempts')
    assert.deepEqual(
      t.asked,
      ['graph:false', 'graph:false', 'graph:false'],
      'a Graph token each time, no forced refresh',
    )
    assert.ok(!r.reply.includes('graph-token-for-the-test'))
  })

  it('a server that takes the connection and never answers: 451 4.4.2, it may have gone out (no resend)', async () => {
    const silent = createServer(() => {}) // accepts, reads nothing, answers nothing
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    const port = (silent.address() as AddressInfo).port
    try {
      const t = tokens(`https://127.0.0.1:${port}/v1.0`)
      const waits: number[] = []
      const r = await submitViaGraph(t, 'a@example.test', { to: ['b@example.test'] }, MSG, {
        timeoutMs: 300,
        sleep: async (ms) => void waits.push(ms),
      })
      assert.match(r.reply, /^451 4\.4\.2 .*may have gone out/)
      assert.deepEqual(waits, [], 'not sent again: Graph may have it')
      assert.equal(t.asked.length, 1)
    } finally {
      silent.close()
    }
  })

  it('a message over the 4 MB request is refused before any request (552 5.3.4)', async () => {
    const t = tokens('http://127.0.0.1:9/v1.0')
    const big = Buffer.concat([MSG, Buffer.alloc(3_200_000, 0x61)])
    const r = await submitViaGraph(t, 'a@example.test', { to: ['b@example.test'] }, big)
    assert.match(r.reply, /^552 5\.3\.4 Message too big for Microsoft Graph/)
    assert.deepEqual(t.asked, [], 'no token was even fetched')
  })
})
