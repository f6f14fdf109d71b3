// Issue 15, item 5: a first `add` whose OAuth server cannot be reached says what happened and
// the command that helps, against real loopback servers: https to a plain-http server (a TLS
// mismatch, configuration), a port where nothing listens (refused, transient), a host name
// that does not exist (.invalid never resolves, RFC 6761 §6.4), and a certificate this machine
// does not trust. None of them points at `mailkey status`: a failed add leaves no account.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer as createHttp, type Server } from 'node:http'
import { createServer as createHttps } from 'node:https'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { makeTmpHome, type TmpHome } from '../harness/tmp-home.js'
import { runCli, type CliResult } from '../harness/cli.js'
import { makeTestCA } from '../harness/certs.js'

async function listen(s: Server): Promise<number> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  return (s.address() as AddressInfo).port
}

describe('add: network failures said as what they are', () => {
  let home: TmpHome
  const servers: Server[] = []
  before(async () => {
    home = await makeTmpHome()
  })
  after(async () => {
    for (const s of servers) s.close()
    await home.cleanup()
  })

  const add = (issuer: string): Promise<CliResult> =>
    runCli(['add', 'x@example.test', '--device', '--issuer', issuer, '--client-id', 'c', '--scope', 'mail'], home.env)

  function noStatusAdvice(r: CliResult): void {
    assert.doesNotMatch(r.stderr, /mailkey status/, r.stderr)
    assert.match(r.stderr, /No account was set up; run "mailkey add x@example\.test" again/, r.stderr)
  }

  it('https to a plain-http server: exit 78, the TLS mismatch named, the http:// rule given', async () => {
    const plain = createHttp((_q, r) => r.end('hello'))
    servers.push(plain)
    const port = await listen(plain)
    const r = await add(`https://127.0.0.1:${port}`)
    assert.equal(r.code, 78, r.stderr)
    assert.match(
      r.stderr,
      new RegExp(`the server at 127\\.0\\.0\\.1:${port} does not speak TLS on that port \\(ERR_SSL_`),
    )
    assert.match(r.stderr, /Use http:\/\/ only for a plain-http test server on this machine/)
    assert.doesNotMatch(r.stderr, /try again in a minute/)
    noStatusAdvice(r)
  })

  it('a port where nothing listens: exit 75, "nothing listens" naming host:port, check the URL', async () => {
    const gone = createHttp()
    const port = await listen(gone)
    await new Promise((resolve) => gone.close(resolve))
    const r = await add(`http://127.0.0.1:${port}`)
    assert.equal(r.code, 75, r.stderr)
    assert.match(
      r.stderr,
      new RegExp(
        `cannot reach 127\\.0\\.0\\.1:${port} for "x@example\\.test": connection refused, nothing listens on that port`,
      ),
    )
    assert.match(r.stderr, /Check the host and port in the URL/)
    noStatusAdvice(r)
  })

  it("port 1, which fetch refuses (the issue's `cannot reach 127.0.0.1:1`): exit 78 saying why", async () => {
    const r = await add('http://127.0.0.1:1')
    assert.equal(r.code, 78, r.stderr)
    assert.match(
      r.stderr,
      /fetch refuses to connect to 127\.0\.0\.1:1 for "x@example\.test": the Fetch standard blocks that port/,
    )
    noStatusAdvice(r)
  })

  it('a host name that does not exist: exit 78 naming the host', async () => {
    const r = await add('https://idp.nowhere.invalid')
    assert.equal(r.code, 78, r.stderr)
    assert.match(r.stderr, /the host name idp\.nowhere\.invalid does not exist \(DNS: ENOTFOUND\)/)
    assert.match(r.stderr, /Check the spelling of "idp\.nowhere\.invalid"/)
    noStatusAdvice(r)
  })

  it('a certificate from an authority this machine does not trust: exit 78 with the CA hint', async () => {
    await mkdir(join(home.dir, 'ca'))
    const ca = await makeTestCA(join(home.dir, 'ca'))
    const tls = createHttps({ cert: await readFile(ca.certFile), key: await readFile(ca.keyFile) }, (_q, r) =>
      r.end('{}'),
    )
    servers.push(tls)
    const port = await listen(tls)
    const r = await add(`https://127.0.0.1:${port}`)
    assert.equal(r.code, 78, r.stderr)
    assert.match(
      r.stderr,
      /the TLS certificate of 127\.0\.0\.1:\d+ is signed by an authority this machine does not trust/,
    )
    assert.match(r.stderr, /NODE_EXTRA_CA_CERTS/)
    noStatusAdvice(r)
  })
})
