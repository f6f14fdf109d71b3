/**
 * Network failures of the OAuth paths, sorted into what they are (oauth/net-failure.ts through
 * classify()): TLS/protocol mismatches and certificate problems are configuration while an
 * account is set up, a refused connection is transient but says nothing listens there, a host
 * name that does not exist is configuration, a temporary DNS failure is transient. On a refresh
 * the same settings worked before, so every one of them stays transient there.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { ConfigError, ERR, type MailkeyError, TransientError } from '../../src/errors.js'
import { classify, type ClassifyContext } from '../../src/oauth/classify.js'
import { isNetworkFailure } from '../../src/oauth/net-failure.js'

const ACCOUNT = 'someone@example.com'
const HOST = 'login.example.com'
const ctx = (phase: ClassifyContext['phase'], host = HOST): ClassifyContext => ({ account: ACCOUNT, host, phase })

/** fetch's shape: a bare TypeError whose cause is the socket's or TLS layer's error. */
function fetchFailed(code: string | undefined, extra: Record<string, unknown> = {}, message = 'x'): TypeError {
  return new TypeError('fetch failed', { cause: Object.assign(new Error(message), code ? { code } : {}, extra) })
}

function expectConfig(e: MailkeyError): void {
  assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e.constructor.name}: ${e.message}`)
  assert.equal(e.code, ERR.OAUTH_CONFIG)
  assert.equal(e.exitCode, 78)
}

function expectTransient(e: MailkeyError): void {
  assert.ok(e instanceof TransientError, `expected TransientError, got ${e.constructor.name}: ${e.message}`)
  assert.equal(e.code, ERR.OAUTH_TRANSIENT)
  assert.equal(e.exitCode, 75)
}

describe('net-failure: TLS and protocol mismatches', () => {
  for (const code of ['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'EPROTO']) {
    it(`${code} while setting up -> configuration, naming the host and the http:// rule`, () => {
      for (const phase of ['signin', 'device', 'discovery'] as const) {
        const e = classify(fetchFailed(code), ctx(phase))
        expectConfig(e)
        assert.equal(
          e.message,
          `the server at ${HOST} does not speak TLS on that port (${code}), so mailkey cannot reach it for "${ACCOUNT}"`,
        )
        assert.match(e.hint ?? '', /Use http:\/\/ only for a plain-http test server on this machine/)
        assert.doesNotMatch(e.message, /try again/)
      }
    })
  }

  it('on a refresh the same words, but transient (the settings worked before)', () => {
    const e = classify(fetchFailed('ERR_SSL_WRONG_VERSION_NUMBER'), ctx('refresh'))
    expectTransient(e)
    assert.match(e.message, /does not speak TLS on that port/)
  })
})

describe('net-failure: certificates', () => {
  const cases: [string, RegExp, RegExp][] = [
    ['DEPTH_ZERO_SELF_SIGNED_CERT', /is signed by an authority this machine does not trust/, /NODE_EXTRA_CA_CERTS/],
    ['SELF_SIGNED_CERT_IN_CHAIN', /does not trust/, /NODE_EXTRA_CA_CERTS/],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', /does not trust/, /NODE_EXTRA_CA_CERTS/],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', /does not trust/, /NODE_EXTRA_CA_CERTS/],
    ['ERR_TLS_CERT_ALTNAME_INVALID', /names another host/, /host name in the URL/],
    ['CERT_HAS_EXPIRED', /has expired/, /date and time/],
    ['CERT_NOT_YET_VALID', /is not valid yet/, /date and time/],
    ['CERT_REVOKED', /is not valid \(CERT_REVOKED\)/, /certificate the server presents/],
  ]
  for (const [code, text, hint] of cases) {
    it(`${code} -> configuration with its own reason and hint`, () => {
      const e = classify(fetchFailed(code), ctx('signin'))
      expectConfig(e)
      assert.match(e.message, new RegExp(`^the TLS certificate of ${HOST.replace(/\./g, '\\.')} `))
      assert.match(e.message, text)
      assert.ok(e.message.includes(`(${code})`), e.message)
      assert.ok(e.message.includes(`"${ACCOUNT}"`), e.message)
      assert.match(e.hint ?? '', hint)
      assert.equal(isNetworkFailure(fetchFailed(code)), true)
    })
  }
})

describe('net-failure: refused connections', () => {
  it('ECONNREFUSED says nothing listens there, names host:port, stays transient, suggests checking the URL', () => {
    for (const phase of ['signin', 'refresh'] as const) {
      const e = classify(
        fetchFailed('ECONNREFUSED', { address: '127.0.0.1', port: 8443 }),
        ctx(phase, '127.0.0.1:8443'),
      )
      expectTransient(e)
      assert.equal(
        e.message,
        `cannot reach 127.0.0.1:8443 for "${ACCOUNT}": connection refused, nothing listens on that port (ECONNREFUSED)`,
      )
      assert.match(e.hint ?? '', /Check the host and port in the URL/)
    }
  })

  it('a URL without a port gets the port the socket used', () => {
    const e = classify(fetchFailed('ECONNREFUSED', { port: 443 }), ctx('signin'))
    assert.match(e.message, /^cannot reach login\.example\.com:443 for /)
  })

  it("fetch's blocked ports (undici: 'bad port') are configuration, naming host:port", () => {
    const e = classify(fetchFailed(undefined, {}, 'bad port'), ctx('signin', '127.0.0.1:1'))
    expectConfig(e)
    assert.equal(
      e.message,
      `fetch refuses to connect to 127.0.0.1:1 for "${ACCOUNT}": the Fetch standard blocks that port`,
    )
    assert.match(e.hint ?? '', /port the OAuth server listens on/)
  })
})

describe('net-failure: DNS', () => {
  it('ENOTFOUND while setting up -> configuration naming the host name', () => {
    const e = classify(
      fetchFailed('ENOTFOUND', { hostname: 'idp.nowhere.invalid' }),
      ctx('discovery', 'idp.nowhere.invalid'),
    )
    expectConfig(e)
    assert.equal(
      e.message,
      `the host name idp.nowhere.invalid does not exist (DNS: ENOTFOUND), so mailkey cannot reach it for "${ACCOUNT}"`,
    )
    assert.match(e.hint ?? '', /Check the spelling of "idp\.nowhere\.invalid"/)
  })

  it('ENOTFOUND on a refresh is transient (a resolver that knew the name before)', () => {
    expectTransient(classify(fetchFailed('ENOTFOUND', { hostname: HOST }), ctx('refresh')))
  })

  it('EAI_AGAIN is a temporary DNS failure -> transient, in words', () => {
    const e = classify(fetchFailed('EAI_AGAIN', { hostname: HOST }), ctx('signin'))
    expectTransient(e)
    assert.equal(e.message, `cannot reach ${HOST} for "${ACCOUNT}": the DNS lookup failed temporarily (EAI_AGAIN)`)
  })
})

describe('net-failure: the rest is as before', () => {
  it('ECONNRESET and undici timeouts stay transient naming the code', () => {
    for (const code of ['ECONNRESET', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']) {
      const e = classify(fetchFailed(code), ctx('signin'))
      expectTransient(e)
      assert.equal(e.message, `cannot reach ${HOST} for "${ACCOUNT}" (${code})`)
    }
  })

  it('an argument TypeError with an ERR_ code is no network failure', () => {
    const arg = Object.assign(new TypeError('bad arg'), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.equal(isNetworkFailure(arg), false)
    assert.equal(classify(arg, ctx('signin')).transient, false)
  })
})
