// A failed host name lookup is a wrong name only if it still fails a moment later: under a full
// descriptor table glibc answers "no such host" for any name (upstream/transport.ts lookupAgain).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type LookupFunction, type Server } from 'node:net'
import { openTransport, ProbeNetworkError } from '../../src/upstream/transport.js'
import { diagnose } from '../../src/upstream/diagnose.js'

const HOST = 'mail.example.test'

/** a resolver that fails the first `failures` lookups with ENOTFOUND, then answers 127.0.0.1 */
function flakyLookup(failures: number): { lookup: LookupFunction; calls: () => number } {
  let n = 0
  const lookup = ((host: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) => {
    n++
    if (n <= failures) {
      const e = Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host })
      return process.nextTick(() => cb(e))
    }
    process.nextTick(() => (opts?.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)))
  }) as unknown as LookupFunction
  return { lookup, calls: () => n }
}

describe('openTransport: a lookup that fails', () => {
  let server: Server
  let port: number
  before(async () => {
    server = createServer((c) => c.end('* OK ready\r\n'))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    port = (server.address() as { port: number }).port
  })
  after(() => new Promise<void>((r) => server.close(() => r())))

  const attempt = async (lookup: LookupFunction): Promise<ProbeNetworkError> => {
    const err = await openTransport({ host: HOST, port, implicitTls: false }, { lookup, timeoutMs: 5000 }).then(
      (t) => {
        t.close()
        return undefined
      },
      (e: unknown) => e,
    )
    assert.ok(err instanceof ProbeNetworkError, `failed: ${String(err)}`)
    return err
  }
  const kindOf = (e: unknown): string =>
    diagnose(e, {
      protocol: 'imap',
      account: 'a@example.test',
      mailbox: 'a@example.test',
      server: `imap://${HOST}:${port}`,
      freshTokenRefused: false,
      provider: 'custom',
    }).kind

  it('once, then resolving: transient, not "does not resolve"', async () => {
    const f = flakyLookup(1)
    const e = await attempt(f.lookup)
    assert.notEqual(e.code, 'ENOTFOUND')
    assert.equal(kindOf(e), 'transient')
    assert.equal(f.calls(), 2, 'looked up once more')
  })

  it('every time: the name does not resolve (config)', async () => {
    const e = await attempt(flakyLookup(Infinity).lookup)
    assert.equal(e.code, 'ENOTFOUND')
    assert.equal(kindOf(e), 'config')
  })

  it('never: connects', async () => {
    const t = await openTransport({ host: HOST, port, implicitTls: false }, { lookup: flakyLookup(0).lookup })
    assert.equal(await t.readLine(), '* OK ready')
    t.close()
  })
})
