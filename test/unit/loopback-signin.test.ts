// The loopback listener of a browser sign-in, on real loopback sockets: where it listens for each
// registered redirect form, and what a timeout says (a short injected timeout, no wall-clock
// asserts). Also the no-display check of --browser. No OAuth server is contacted: nothing here
// gets past the wait for the redirect.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { describe, it, after } from 'node:test'

import { authorizationCodeSignIn, listenAddresses } from '../../src/oauth/auth-code.js'
import { candidateSettings } from '../../src/providers/resolve.js'
import { noDisplayReason } from '../../src/cli/browser.js'
import { cliHint } from '../../src/cli/hints.js'
import { createMailkey } from '../../src/mailkey.js'
import { ERR, SignInTimeoutError } from '../../src/errors.js'
import { makeTmpHome, type TmpHome } from '../harness/tmp-home.js'

function haveIpv6Loopback(): boolean {
  try {
    return /inet6 ::1\//.test(execFileSync('ip', ['-6', 'addr', 'show', 'lo'], { encoding: 'utf8' }))
  } catch {
    return false
  }
}
const NO_IPV6 = !haveIpv6Loopback() && !process.env.CI ? 'this machine has no IPv6 loopback (::1)' : false

// endpoints on a port nothing listens on: never contacted before the wait ends
const settings = candidateSettings(
  {
    email: 'late@example.test',
    authorizeUrl: 'http://127.0.0.1:9/auth',
    tokenUrl: 'http://127.0.0.1:9/token',
    clientId: 'test-client',
    scopes: ['mail'],
  },
  undefined,
  'browser',
)[0]!

/** status of a GET to http://<address>:<port>/?state=wrong, or the connect error's code */
async function probe(address: string, port: string): Promise<number | string> {
  try {
    return (await fetch(`http://${address}:${port}/?state=wrong`)).status
  } catch (e) {
    return ((e as { cause?: { code?: string } }).cause?.code ?? 'error') as string
  }
}

describe('listenAddresses', () => {
  it('localhost is both loopback addresses; a literal is itself; never a wildcard', () => {
    assert.deepEqual(listenAddresses('localhost'), ['127.0.0.1', '::1'])
    assert.deepEqual(listenAddresses('127.0.0.1'), ['127.0.0.1'])
    assert.deepEqual(listenAddresses('[::1]'), ['::1'])
  })
})

describe('the loopback listener', () => {
  it('a localhost redirect listens on 127.0.0.1 and ::1, one port, and closes both', { skip: NO_IPV6 }, async () => {
    let port = ''
    const seen: Record<string, number | string> = {}
    const err = await authorizationCodeSignIn(settings, {
      account: settings.email,
      redirect: { host: 'localhost', path: '/' },
      timeoutMs: 200,
      onAuthorizationUrl: async (_url, redirectUri) => {
        const u = new URL(redirectUri)
        assert.equal(u.hostname, 'localhost')
        port = u.port
        // a request without this sign-in's state is answered (400) and does not end it
        seen.v4 = await probe('127.0.0.1', port)
        seen.v6 = await probe('[::1]', port)
      },
    }).catch((e: unknown) => e)
    assert.deepEqual(seen, { v4: 400, v6: 400 })
    assert.ok(err instanceof SignInTimeoutError)
    assert.equal(err.redirectUri, `http://localhost:${port}/`)
    assert.equal(await probe('127.0.0.1', port), 'ECONNREFUSED')
    assert.equal(await probe('[::1]', port), 'ECONNREFUSED')
  })

  it('a 127.0.0.1 redirect listens on 127.0.0.1 only', { skip: NO_IPV6 }, async () => {
    const seen: Record<string, number | string> = {}
    await authorizationCodeSignIn(settings, {
      account: settings.email,
      redirect: { host: '127.0.0.1', path: '/' },
      timeoutMs: 200,
      onAuthorizationUrl: async (_url, redirectUri) => {
        const port = new URL(redirectUri).port
        seen.v4 = await probe('127.0.0.1', port)
        seen.v6 = await probe('[::1]', port)
      },
    }).catch(() => undefined)
    assert.deepEqual(seen, { v4: 400, v6: 'ECONNREFUSED' })
  })

  it('a fixed redirect (https://127.0.0.1) starts no listener and is refused without a paste reader', async () => {
    await assert.rejects(
      authorizationCodeSignIn(settings, {
        account: settings.email,
        redirect: { host: '127.0.0.1', path: '/', fixed: 'https://127.0.0.1' },
        onAuthorizationUrl: () => assert.fail('no URL without a way back'),
      }),
      (e: Error & { code?: string }) =>
        e.code === ERR.PROVIDER_FLOW_UNSUPPORTED && /only the paste flow/.test(e.message),
    )
    let redirectUri = ''
    const err = await authorizationCodeSignIn(settings, {
      account: settings.email,
      redirect: { host: '127.0.0.1', path: '/', fixed: 'https://127.0.0.1' },
      timeoutMs: 50,
      onAuthorizationUrl: (url, r) => {
        redirectUri = r
        assert.equal(new URL(url).searchParams.get('redirect_uri'), 'https://127.0.0.1')
      },
      readPastedRedirect: () => new Promise<string>(() => {}),
    }).catch((e: unknown) => e)
    assert.equal(redirectUri, 'https://127.0.0.1')
    assert.ok(err instanceof SignInTimeoutError)
    assert.equal(err.redirectUri, undefined, 'no listener waited: only a paste could have ended it')
  })
})

describe('a loopback sign-in that times out (injected 50 ms timeout)', () => {
  let home: TmpHome
  after(async () => {
    await home?.cleanup()
  })

  it('says the redirect may not be accepted, and names --device, --paste and --port', async () => {
    home = await makeTmpHome()
    const mk = createMailkey({ env: home.env })
    const err = await mk
      .signIn({
        email: 'late@example.test',
        authorizeUrl: 'http://127.0.0.1:9/auth',
        tokenUrl: 'http://127.0.0.1:9/token',
        deviceUrl: 'http://127.0.0.1:9/device',
        clientId: 'test-client',
        scopes: ['mail'],
        flow: 'browser',
        timeoutMs: 50,
        openBrowser: async () => true,
      })
      .catch((e: unknown) => e)
    assert.ok(err instanceof SignInTimeoutError)
    assert.equal(err.exitCode, 77)
    assert.match(err.message, /no sign-in for "late@example\.test" arrived within 0\.05 s/)
    assert.equal(err.flow, 'browser')
    assert.deepEqual(err.otherFlows, ['device', 'paste'])
    assert.match(err.hint ?? '', /may not have accepted the redirect http:\/\/127\.0\.0\.1:\d+\/ /)
    const next = cliHint(err, 'add') ?? ''
    assert.match(next, /"mailkey add late@example\.test --device"/)
    assert.match(next, /"mailkey add late@example\.test --paste"/)
    assert.match(next, /"mailkey add late@example\.test --port PORT"/)
  })

  it('a paste sign-in that times out asks for a longer --timeout, not a port', async () => {
    const mk = createMailkey({ env: home.env })
    const err = await mk
      .signIn({
        email: 'slow@example.test',
        authorizeUrl: 'http://127.0.0.1:9/auth',
        tokenUrl: 'http://127.0.0.1:9/token',
        clientId: 'test-client',
        scopes: ['mail'],
        flow: 'paste',
        timeoutMs: 50,
        readPastedRedirect: () => new Promise<string>(() => {}),
      })
      .catch((e: unknown) => e)
    assert.ok(err instanceof SignInTimeoutError)
    assert.deepEqual(err.otherFlows, ['browser'])
    assert.equal(err.hint, undefined)
    const next = cliHint(err, 'add') ?? ''
    assert.match(next, /--timeout SEC/)
    assert.doesNotMatch(next, /--port|--device/)
  })
})

describe('noDisplayReason', () => {
  it('Linux without DISPLAY or WAYLAND_DISPLAY has no display; a browser command or a desktop OS has one', () => {
    assert.match(noDisplayReason({}, 'linux') ?? '', /neither DISPLAY nor WAYLAND_DISPLAY/)
    assert.match(noDisplayReason({ SSH_CONNECTION: '1 2 3 4' }, 'freebsd') ?? '', /no display/)
    assert.equal(noDisplayReason({ DISPLAY: ':0' }, 'linux'), undefined)
    assert.equal(noDisplayReason({ WAYLAND_DISPLAY: 'wayland-0' }, 'linux'), undefined)
    assert.equal(noDisplayReason({ BROWSER: 'w3m' }, 'linux'), undefined)
    assert.equal(noDisplayReason({ MAILKEY_BROWSER: 'lynx' }, 'linux'), undefined)
    assert.equal(noDisplayReason({}, 'darwin'), undefined)
    assert.equal(noDisplayReason({}, 'win32'), undefined)
  })
})
