// Which failed refresh may have lost its answer (issue 15, item 6): only one whose request may
// have reached the server. Real loopback connections for refused and reset; undici's shapes for
// the failures a loopback cannot produce.
import assert from 'node:assert/strict'
import { createServer, type AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { noAnswer, lastErrorOf } from '../../src/broker/failures.js'
import { classify } from '../../src/oauth/classify.js'

const ctx = { account: 'user@example.test', host: '127.0.0.1', phase: 'refresh' as const }

async function fetchError(url: string): Promise<unknown> {
  try {
    await fetch(url, { method: 'POST', body: 'grant_type=refresh_token' })
  } catch (e) {
    return e
  }
  throw new Error('the request did not fail')
}

/** undici's TypeError('fetch failed') around a socket error with `code` */
const undici = (code: string): TypeError =>
  new TypeError('fetch failed', { cause: Object.assign(new Error(`connect ${code}`), { code }) })

describe('a failed request that never left is no lost answer', () => {
  it('connection refused: transient, but nothing to remember as a lost answer', async () => {
    const s = createServer()
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
    const port = (s.address() as AddressInfo).port
    await new Promise((r) => s.close(r))
    const err = classify(await fetchError(`http://127.0.0.1:${port}/token`), ctx)
    assert.equal(err.transient, true)
    assert.equal(noAnswer(err), false)
    assert.equal(lastErrorOf(err, 1).answerMaybeLost, undefined)
  })

  it('a name that does not resolve, a connect timeout, a refused certificate: never sent', () => {
    for (const code of ['ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'DEPTH_ZERO_SELF_SIGNED_CERT']) {
      const err = classify(undici(code), ctx)
      assert.equal(err.transient, true, code)
      assert.equal(noAnswer(err), false, code)
    }
  })

  it('a connection cut after the request was written may have lost the answer', async () => {
    const s = createServer((sock) => sock.once('data', () => sock.resetAndDestroy()))
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
    try {
      const err = classify(await fetchError(`http://127.0.0.1:${(s.address() as AddressInfo).port}/token`), ctx)
      assert.equal(err.transient, true)
      assert.equal(noAnswer(err), true)
      assert.equal(lastErrorOf(err, 1).answerMaybeLost, true)
    } finally {
      await new Promise((r) => s.close(r))
    }
  })

  it('a reset or a socket timeout (the request may have arrived) still counts as a lost answer', () => {
    for (const code of ['ECONNRESET', 'UND_ERR_SOCKET', 'ETIMEDOUT', 'EPIPE'])
      assert.equal(noAnswer(classify(undici(code), ctx)), true, code)
  })
})
