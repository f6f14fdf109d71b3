/**
 * config.toml: a valid file, TOML syntax errors with file:line:col, and validation errors that
 * point at the line of the offending key.
 */
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'

import { loadConfig, locate, parseConfig } from '../../src/config/config.js'
import { ConfigError, ERR } from '../../src/errors.js'

const FILE = '/home/u/.config/mailkey/config.toml'

/** Parse, expect a ConfigError, check file/line(/column) and the message prefix; return it. */
function failsAt(text: string, line: number, message: RegExp, column?: number): ConfigError {
  let caught: unknown
  try {
    parseConfig(text, FILE)
  } catch (e) {
    caught = e
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`)
  assert.equal(caught.code, ERR.CONFIG_INVALID)
  assert.equal(caught.exitCode, 78)
  assert.equal(caught.file, FILE)
  assert.equal(caught.line, line, `line of: ${caught.message}`)
  if (column !== undefined) assert.equal(caught.column, column, `column of: ${caught.message}`)
  assert.ok(caught.message.startsWith(`${FILE}:${line}:${caught.column}: `), caught.message)
  assert.match(caught.message, message)
  assert.ok(caught.hint?.includes(FILE))
  return caught
}

const VALID = `# mailkey config
refresh_margin_sec = 600

[providers.example]
display_name = "Example Mail"
issuer = "https://login.example.com"
token_url = "https://login.example.com/token"
authorize_url = "https://login.example.com/authorize"
device_url = "https://login.example.com/device"
revocation_url = "https://login.example.com/revoke"
client_ids = ["id-one", "id-two"]
client_secret = "not-really-secret"
scopes = ["imap", "smtp"]
flows = ["device", "browser"]
sasl = ["oauthbearer", "XOAUTH2"]
imap_url = "imaps://imap.example.com"
pop_url = "pop3s://pop.example.com"
smtp_url = "smtp://smtp.example.com:587"
domains = ["Example.COM", "example.org"]
redirect_host = "localhost"
redirect_path = "/callback"
auth_params = { prompt = "consent" }
tenant = "contoso.example"
refresh_token_idle_days = 30

[providers.minimal]
token_url = "https://auth.minimal.example/token"
client_id = "only-one"
`

describe('parseConfig: a valid file', () => {
  it('reads the top-level settings and every provider key', () => {
    const cfg = parseConfig(VALID, FILE)
    assert.equal(cfg.file, FILE)
    assert.equal(cfg.refreshMarginSec, 600)
    assert.deepEqual([...cfg.providers.keys()], ['example', 'minimal'])
    const p = cfg.providers.get('example')
    assert.ok(p)
    assert.equal(p.name, 'example')
    assert.equal(p.displayName, 'Example Mail')
    assert.deepEqual(p.endpoints, {
      issuer: 'https://login.example.com',
      authorization: 'https://login.example.com/authorize',
      token: 'https://login.example.com/token',
      deviceAuthorization: 'https://login.example.com/device',
      revocation: 'https://login.example.com/revoke',
    })
    assert.deepEqual(p.clients, [
      { clientId: 'id-one', clientSecret: 'not-really-secret', label: 'config provider "example"' },
      { clientId: 'id-two', clientSecret: 'not-really-secret', label: 'config provider "example"' },
    ])
    assert.deepEqual(p.scopes, ['imap', 'smtp'])
    assert.deepEqual(p.flows, ['device', 'browser'])
    assert.deepEqual(p.sasl, ['OAUTHBEARER', 'XOAUTH2'])
    assert.deepEqual(p.servers, {
      imap: 'imaps://imap.example.com',
      pop: 'pop3s://pop.example.com',
      smtp: 'smtp://smtp.example.com:587',
    })
    assert.deepEqual(p.domains, ['example.com', 'example.org'])
    assert.deepEqual(p.redirect, { host: 'localhost', path: '/callback' })
    assert.deepEqual({ ...p.authorizationParams }, { prompt: 'consent' })
    assert.equal(p.defaultTenant, 'contoso.example')
    assert.equal(p.refreshTokenIdleDays, 30)
  })

  it('fills defaults for a minimal provider', () => {
    const p = parseConfig(VALID, FILE).providers.get('minimal')
    assert.ok(p)
    assert.equal(p.displayName, 'minimal')
    assert.deepEqual(p.endpoints, { token: 'https://auth.minimal.example/token' })
    assert.deepEqual(p.clients, [{ clientId: 'only-one', label: 'config provider "minimal"' }])
    assert.deepEqual(p.scopes, [])
    assert.deepEqual(p.flows, ['browser', 'device', 'paste'])
    assert.deepEqual(p.sasl, ['XOAUTH2'])
    assert.deepEqual(p.redirect, { host: '127.0.0.1', path: '/' })
    assert.deepEqual(p.servers, {})
    assert.deepEqual(p.domains, [])
    assert.equal(p.authorizationParams, undefined)
    assert.equal(p.defaultTenant, undefined)
    assert.equal(p.refreshTokenIdleDays, undefined)
  })

  it('an empty file (or only comments) is an empty config', () => {
    for (const text of ['', '# nothing\n\n']) {
      const cfg = parseConfig(text, FILE)
      assert.equal(cfg.providers.size, 0)
      assert.equal(cfg.refreshMarginSec, undefined)
    }
  })

  it('issuer alone is enough (discovery), and refresh_margin_sec may be 0', () => {
    const cfg = parseConfig('refresh_margin_sec = 0\n[providers.d]\nissuer = "https://id.example.com"\n', FILE)
    assert.equal(cfg.refreshMarginSec, 0)
    assert.deepEqual(cfg.providers.get('d')?.endpoints, { issuer: 'https://id.example.com' })
  })

  it('accepts quoted provider names with dots', () => {
    const cfg = parseConfig('[providers."mail.example"]\ntoken_url = "https://t.example/token"\n', FILE)
    assert.ok(cfg.providers.has('mail.example'))
  })
})

describe('parseConfig: TOML syntax errors', () => {
  it('reports file:line:col and sets .line/.column', () => {
    const e = failsAt(
      'refresh_margin_sec = 300\n[providers.x]\ntoken_url = "https://a.example"\nclient_id = \n',
      4,
      /invalid|value/i,
      13,
    )
    assert.doesNotMatch(e.message, /Invalid TOML document/)
    assert.equal(e.message.split('\n').length, 1, 'one line')
  })

  it('an unterminated string', () => {
    failsAt('a = 1\nb = "unterminated\n', 2, /string|control/i, 18)
  })

  it('a broken table header, indented', () => {
    failsAt('\n\n  [providers.x\n', 3, /./, 15)
  })

  it('a duplicate key', () => {
    failsAt('refresh_margin_sec = 1\nrefresh_margin_sec = 2\n', 2, /./)
  })
})

describe('parseConfig: validation errors point at the offending line', () => {
  it('unknown top-level key', () => {
    failsAt('refresh_margin_sec = 5\n\nbogus = 1\n', 3, /unknown setting "bogus"$/, 1)
  })

  it('unknown top-level table', () => {
    failsAt('refresh_margin_sec = 5\n\n[bogus]\na = 1\n', 3, /unknown setting "bogus"/)
  })

  it('unknown provider key', () => {
    failsAt(
      '[providers.a]\ntoken_url = "https://a.example"\n  client_idd = "x"\n',
      3,
      /unknown setting "client_idd" in \[providers\.a\]/,
      3,
    )
  })

  it('unknown provider key after a header with a trailing comment', () => {
    failsAt(
      'refresh_margin_sec = 5\n[providers.x] # my server\ntoken_url = "https://a.example"\nscopes = ["s"]\nbogus = 1\n',
      5,
      /unknown setting "bogus"/,
    )
  })

  it('the key of the right provider when two use the same key', () => {
    failsAt(
      '[providers.a]\ntoken_url = "https://a.example"\nflows = ["device"]\n\n[providers.b]\ntoken_url = "https://b.example"\nflows = ["telepathy"]\n',
      7,
      /unknown flow "telepathy" \(use device, browser, paste\)/,
    )
  })

  it('wrong types', () => {
    failsAt('refresh_margin_sec = "300"\n', 1, /whole number of seconds/)
    failsAt('\nrefresh_margin_sec = 1.5\n', 2, /whole number/)
    failsAt('refresh_margin_sec = 86401\n', 1, /0 to 86400/)
    failsAt('refresh_margin_sec = -1\n', 1, /0 to 86400/)
    failsAt(
      '[providers.a]\ntoken_url = "https://a.example"\nscopes = "imap smtp"\n',
      3,
      /"scopes" must be a list of strings/,
    )
    failsAt(
      '[providers.a]\ntoken_url = "https://a.example"\nscopes = ["imap", 3]\n',
      3,
      /"scopes" must be a list of strings/,
    )
    failsAt(
      '[providers.a]\ntoken_url = "https://a.example"\n\nclient_id = 42\n',
      4,
      /"client_id" must be a non-empty string/,
    )
    failsAt('[providers.a]\ntoken_url = ""\n', 2, /"token_url" must be a non-empty string/)
    failsAt('[providers.a]\ntoken_url = "https://a.example"\nrefresh_token_idle_days = 0\n', 3, /positive number/)
    failsAt('[providers.a]\ntoken_url = "https://a.example"\nrefresh_token_idle_days = "90"\n', 3, /positive number/)
  })

  it('auth_params must be a table of strings', () => {
    failsAt(
      '[providers.a]\ntoken_url = "https://a.example"\nauth_params = { prompt = 1 }\n',
      3,
      /"auth_params" must be a table of strings/,
    )
    failsAt(
      '[providers.a]\ntoken_url = "https://a.example"\nauth_params = ["prompt=consent"]\n',
      3,
      /"auth_params" must be a table of strings/,
    )
    failsAt(
      '[providers.a]\ntoken_url = "https://a.example"\nauth_params = "prompt=consent"\n',
      3,
      /"auth_params" must be a table of strings/,
    )
    failsAt(
      '[providers.a]\ntoken_url = "https://a.example"\n[providers.a.auth_params]\nprompt = 1\n',
      3,
      /"auth_params" must be a table of strings/,
    )
  })

  it('bad flow', () => {
    failsAt(
      '[providers.a]\ntoken_url = "https://a.example"\nflows = ["browser", "carrier-pigeon"]\n',
      3,
      /unknown flow "carrier-pigeon"/,
    )
  })

  it('bad sasl (lower case is fine)', () => {
    failsAt(
      '[providers."my.prov"]\ntoken_url = "https://a.example"\nsasl = ["PLAIN"]\n',
      3,
      /unknown SASL mechanism "PLAIN" \(use XOAUTH2 or OAUTHBEARER\)/,
    )
    assert.deepEqual(
      parseConfig('[providers.a]\ntoken_url = "https://a.example"\nsasl = ["oauthbearer"]\n', FILE).providers.get('a')
        ?.sasl,
      ['OAUTHBEARER'],
    )
  })

  it('missing issuer and token_url points at the table header', () => {
    failsAt(
      'refresh_margin_sec = 5\n\n[providers.a]\nclient_id = "x"\n',
      3,
      /\[providers\.a\] needs "issuer" \(for discovery\) or "token_url"/,
      1,
    )
  })

  it('bad redirect_host', () => {
    for (const host of ['0.0.0.0', 'example.com', '::1', '127.0.0.2']) {
      failsAt(
        `[providers.a]\ntoken_url = "https://a.example"\n\n\nredirect_host = "${host}"\n`,
        5,
        /"redirect_host" must be 127\.0\.0\.1, localhost or \[::1\]/,
      )
    }
    assert.equal(
      parseConfig('[providers.a]\ntoken_url = "https://a.example"\nredirect_host = "[::1]"\n', FILE).providers.get('a')
        ?.redirect.host,
      '[::1]',
    )
  })

  it('bad provider names and shapes', () => {
    failsAt(
      'refresh_margin_sec = 5\n[providers."a b"]\ntoken_url = "https://a.example"\n',
      2,
      /provider name "a b" may only use/,
    )
    failsAt('providers = 5\n', 1, /"providers" must be a table/)
    failsAt('\nproviders = ["a"]\n', 2, /"providers" must be a table/)
    failsAt('[providers]\na = 5\n', 1, /\[providers\.a\] must be a table/)
  })

  it('CRLF line endings count lines the same', () => {
    failsAt(
      'refresh_margin_sec = 5\r\n[providers.a]\r\ntoken_url = "https://a.example"\r\nbogus = 2\r\n',
      4,
      /unknown setting "bogus"/,
    )
  })

  it('does not print the client secret in an error', () => {
    const e = failsAt(
      '[providers.a]\ntoken_url = "https://a.example"\nclient_secret = "hunter2-very-secret"\nbogus = 1\n',
      4,
      /bogus/,
    )
    assert.ok(!e.message.includes('hunter2-very-secret'))
  })
})

describe('locate', () => {
  const text = [
    'refresh_margin_sec = 5', // 1
    '', // 2
    '[providers.a]', // 3
    '  token_url = "https://a.example"', // 4
    '"scopes" = ["x"]', // 5
    '', // 6
    '[ providers . b ]', // 7
    'token_url = "https://b.example"', // 8
    '[providers."c.d"]', // 9
    'flows = []', // 10
  ].join('\n')

  it('finds top-level keys', () => {
    assert.deepEqual(locate(text, [], 'refresh_margin_sec'), { line: 1, column: 1 })
  })

  it('finds table headers, with spaces inside the brackets, and quoted names', () => {
    assert.deepEqual(locate(text, ['providers', 'a']), { line: 3, column: 1 })
    assert.deepEqual(locate(text, ['providers', 'b']), { line: 7, column: 1 })
    assert.deepEqual(locate(text, ['providers', 'c.d']), { line: 9, column: 1 })
  })

  it('finds keys inside a table, indented or quoted, with their column', () => {
    assert.deepEqual(locate(text, ['providers', 'a'], 'token_url'), { line: 4, column: 3 })
    assert.deepEqual(locate(text, ['providers', 'a'], 'scopes'), { line: 5, column: 1 })
    assert.deepEqual(locate(text, ['providers', 'b'], 'token_url'), { line: 8, column: 1 })
    assert.deepEqual(locate(text, ['providers', 'c.d'], 'flows'), { line: 10, column: 1 })
  })

  it('does not look past the table for a key it lacks; falls back to the header', () => {
    assert.deepEqual(locate(text, ['providers', 'a'], 'flows'), { line: 3, column: 1 })
  })

  it('falls back to line 1 when nothing matches', () => {
    assert.deepEqual(locate(text, ['providers', 'zzz']), { line: 1, column: 1 })
    assert.deepEqual(locate(text, [], 'nothing_here'), { line: 1, column: 1 })
  })

  it('treats regex characters in keys literally', () => {
    assert.deepEqual(locate('a.b = 1\naxb = 2\n', [], 'a.b'), { line: 1, column: 1 })
    assert.deepEqual(locate('axb = 2\na.b = 1\n', [], 'a.b'), { line: 2, column: 1 })
  })
})

describe('loadConfig', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-config-'))
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  it('a missing file is an empty config', async () => {
    const file = join(dir, 'absent.toml')
    const cfg = await loadConfig(file)
    assert.equal(cfg.file, file)
    assert.equal(cfg.providers.size, 0)
  })

  it('reads and parses a file', async () => {
    const file = join(dir, 'config.toml')
    await writeFile(file, VALID)
    const cfg = await loadConfig(file)
    assert.equal(cfg.providers.size, 2)
    assert.equal(cfg.refreshMarginSec, 600)
  })

  it('errors in a file carry its path', async () => {
    const file = join(dir, 'broken.toml')
    await writeFile(file, '\nbogus = 1\n')
    await assert.rejects(loadConfig(file), (e: unknown) => {
      assert.ok(e instanceof ConfigError)
      assert.ok(e.message.startsWith(`${file}:2:1: `), e.message)
      return true
    })
  })

  it('an unreadable path is a ConfigError naming the errno', async () => {
    const sub = join(dir, 'a-directory.toml')
    await mkdir(sub)
    await assert.rejects(loadConfig(sub), (e: unknown) => {
      assert.ok(e instanceof ConfigError)
      assert.equal(e.code, ERR.CONFIG_INVALID)
      assert.match(e.message, /cannot read the config file .*\(EISDIR\)/)
      return true
    })
  })
})

describe('parseConfig: endpoints must be https (or loopback http)', () => {
  it('refuses a plain-http endpoint on a real host, naming its line', () => {
    const text = '[providers.corp]\nclient_id = "c"\nscopes = ["mail"]\ntoken_url = "http://login.corp.example/token"\n'
    assert.throws(
      () => parseConfig(text, '/cfg.toml'),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError)
        assert.match(e.message, /^\/cfg\.toml:4:1: "token_url" must use https/)
        assert.equal(e.line, 4)
        return true
      },
    )
  })
  it('accepts http on 127.0.0.1 and https anywhere', () => {
    const text =
      '[providers.lab]\nissuer = "http://127.0.0.1:8080"\n[providers.corp]\ntoken_url = "https://login.corp.example/token"\n'
    const cfg = parseConfig(text, '/cfg.toml')
    assert.equal(cfg.providers.get('lab')?.endpoints.issuer, 'http://127.0.0.1:8080')
    assert.equal(cfg.providers.get('corp')?.endpoints.token, 'https://login.corp.example/token')
  })
})

describe('parseConfig: [proxy] and [[proxy.listeners]]', () => {
  it('reads listeners with defaults (127.0.0.1, no TLS)', () => {
    const cfg = parseConfig(
      '[proxy]\n[[proxy.listeners]]\nprotocol = "imap"\nport = 1143\n[[proxy.listeners]]\nprotocol = "smtp"\nport = 1587\naccounts = ["A@example.test"]\nupstream = "smtp://smtp.example.test:587"\n',
      '/c.toml',
    )
    assert.deepEqual(cfg.proxy?.listeners, [
      { protocol: 'imap', port: 1143, host: '127.0.0.1', tls: 'none' },
      {
        protocol: 'smtp',
        port: 1587,
        host: '127.0.0.1',
        tls: 'none',
        accounts: ['a@example.test'],
        upstream: 'smtp://smtp.example.test:587',
      },
    ])
  })
  it('points at the offending line of the right listener', () => {
    const text =
      '[proxy]\n[[proxy.listeners]]\nprotocol = "imap"\nport = 1143\n\n[[proxy.listeners]]\nprotocol = "imap"\nport = 99999\n'
    assert.throws(
      () => parseConfig(text, '/c.toml'),
      (e: unknown) => e instanceof ConfigError && /^\/c\.toml:8:1: "port" must be a port number/.test(e.message),
    )
  })
  it('TLS listeners without tls_cert are fine; unknown keys are named', () => {
    // without tls_cert the proxy uses its own self-signed certificate
    assert.equal(
      parseConfig('[[proxy.listeners]]\nprotocol = "imap"\nport = 1\ntls = "implicit"\n', '/c.toml').proxy?.listeners[0]
        ?.tls,
      'implicit',
    )
    assert.throws(
      () => parseConfig('[[proxy.listeners]]\nprotocol = "imap"\nport = 1\nbogus = 1\n', '/c.toml'),
      /:4:1: unknown setting "bogus"/,
    )
    assert.throws(() => parseConfig('[proxy]\ntls_cert = "a.pem"\n', '/c.toml'), /"tls_cert" and "tls_key" go together/)
  })
  it("a listener's ca goes with its upstream", () => {
    const ok = parseConfig(
      '[[proxy.listeners]]\nprotocol = "imap"\nport = 1\nupstream = "imap://mail.example.test:143"\nca = "/etc/ca.pem"\n',
      '/c.toml',
    )
    assert.deepEqual(ok.proxy?.listeners[0], {
      protocol: 'imap',
      port: 1,
      host: '127.0.0.1',
      tls: 'none',
      upstream: 'imap://mail.example.test:143',
      ca: '/etc/ca.pem',
    })
    assert.throws(
      () => parseConfig('[[proxy.listeners]]\nprotocol = "imap"\nport = 1\nca = "/etc/ca.pem"\n', '/c.toml'),
      /:4:1: "ca" is for the server named by "upstream"/,
    )
    assert.throws(
      () =>
        parseConfig('[[proxy.listeners]]\nprotocol = "imap"\nport = 1\nupstream = "imap://h:143"\nca = 5\n', '/c.toml'),
      /:5:1: "ca" must be a file path/,
    )
  })
  it('failed_login_delay_max_sec: 0 to 300 seconds, the bad line named', () => {
    assert.equal(parseConfig('[proxy]\nfailed_login_delay_max_sec = 0\n', '/c.toml').proxy?.failedLoginDelayMaxSec, 0)
    assert.equal(
      parseConfig('[proxy]\nfailed_login_delay_max_sec = 2.5\n', '/c.toml').proxy?.failedLoginDelayMaxSec,
      2.5,
    )
    for (const bad of ['-1', '301', '"15"', 'true']) {
      assert.throws(
        () => parseConfig(`# x\n[proxy]\nfailed_login_delay_max_sec = ${bad}\n`, '/c.toml'),
        (e: unknown) =>
          e instanceof ConfigError &&
          /^\/c\.toml:3:1: "failed_login_delay_max_sec" must be a number of seconds from 0/.test(e.message),
        bad,
      )
    }
  })
  it('the guess throttle and KDF queue settings (issue 11): bounded numbers, the bad line named', () => {
    const p = parseConfig(
      '[proxy]\nguesses_per_min_per_address = 0.5\nguess_burst_per_address = 3\nguesses_per_min = 12\nguess_burst = 40\npassword_checks_parallel = 1\npassword_checks_queued = 0\n',
      '/c.toml',
    ).proxy
    assert.deepEqual(
      [
        p?.guessesPerMinPerAddress,
        p?.guessBurstPerAddress,
        p?.guessesPerMin,
        p?.guessBurst,
        p?.passwordChecksParallel,
        p?.passwordChecksQueued,
      ],
      [0.5, 3, 12, 40, 1, 0],
    )
    for (const [key, bad] of [
      ['guess_burst_per_address', '2.5'],
      ['guess_burst_per_address', '0'],
      ['guesses_per_min', '0'],
      ['password_checks_parallel', '0'],
      ['password_checks_parallel', '65'],
      ['password_checks_queued', '-1'],
      ['guess_burst', '"3"'],
    ]) {
      assert.throws(
        () => parseConfig(`# x\n[proxy]\n${key} = ${bad}\n`, '/c.toml'),
        (e: unknown) => e instanceof ConfigError && new RegExp(`:3:1: "${key}" must be a `).test(e.message),
        `${key} = ${bad}`,
      )
    }
  })
  it('oauth_passthrough per listener: off unless true', () => {
    const on = parseConfig('[[proxy.listeners]]\nprotocol = "imap"\nport = 1\noauth_passthrough = true\n', '/c.toml')
    assert.equal(on.proxy?.listeners[0]?.oauthPassthrough, true)
    const off = parseConfig('[[proxy.listeners]]\nprotocol = "imap"\nport = 1\n', '/c.toml')
    assert.equal(off.proxy?.listeners[0]?.oauthPassthrough, undefined)
    assert.throws(
      () => parseConfig('[[proxy.listeners]]\nprotocol = "imap"\nport = 1\noauth_passthrough = "yes"\n', '/c.toml'),
      /:4:1: "oauth_passthrough" must be true or false/,
    )
  })
  it('login_timeout_sec (proxy) and http_timeout_sec (OAuth): 1 to 300 seconds, the bad line named', () => {
    assert.equal(parseConfig('[proxy]\nlogin_timeout_sec = 3\n', '/c.toml').proxy?.loginTimeoutSec, 3)
    assert.equal(parseConfig('http_timeout_sec = 2\n', '/c.toml').httpTimeoutSec, 2)
    for (const bad of ['0', '301', '"3"']) {
      assert.throws(
        () => parseConfig(`# x\n[proxy]\nlogin_timeout_sec = ${bad}\n`, '/c.toml'),
        (e: unknown) =>
          e instanceof ConfigError &&
          /:3:1: "login_timeout_sec" must be a number of seconds from 1 to 300/.test(e.message),
        bad,
      )
      assert.throws(
        () => parseConfig(`http_timeout_sec = ${bad}\n`, '/c.toml'),
        (e: unknown) =>
          e instanceof ConfigError && /http_timeout_sec must be a number of seconds from 1 to 300/.test(e.message),
        bad,
      )
    }
  })

  it('connection caps and the first-command timeout (issue 11): whole numbers, the bad line named', () => {
    const p = parseConfig(
      '[proxy]\nmax_connections = 50\nmax_connections_per_source = 5\nfirst_command_timeout_sec = 7\n',
      '/c.toml',
    ).proxy
    assert.deepEqual([p?.maxConnections, p?.maxConnectionsPerSource, p?.firstCommandTimeoutSec], [50, 5, 7])
    for (const [key, bad] of [
      ['max_connections', '0'],
      ['max_connections_per_source', '1.5'],
      ['first_command_timeout_sec', '301'],
      ['max_connections', '"9"'],
    ]) {
      assert.throws(
        () => parseConfig(`# x\n[proxy]\n${key} = ${bad}\n`, '/c.toml'),
        (e: unknown) =>
          e instanceof ConfigError && new RegExp(`:3:1: "${key}" must be a whole number from 1 to `).test(e.message),
        `${key} = ${bad}`,
      )
    }
  })
})

describe('parseConfig: [hooks]', () => {
  it('reads the three hooks and a timeout; names a bad key or value with its line', () => {
    const cfg = parseConfig(
      '[hooks]\nreauth = "notify-send mailkey \\"$MAILKEY_MESSAGE\\""\ndevice_code = "ntfy publish phone \\"$MAILKEY_USER_CODE\\""\ntimeout_sec = 5\n',
      '/c.toml',
    )
    assert.equal(cfg.hooks?.reauth, 'notify-send mailkey "$MAILKEY_MESSAGE"')
    assert.equal(cfg.hooks?.device_code, 'ntfy publish phone "$MAILKEY_USER_CODE"')
    assert.equal(cfg.hooks?.timeoutSec, 5)
    assert.throws(() => parseConfig('[hooks]\non_sunday = "x"\n', '/c.toml'), /:2:1: unknown hook "on_sunday"/)
    assert.throws(() => parseConfig('[hooks]\nreauth = ""\n', '/c.toml'), /:2:1: "reauth" must be a shell command/)
    assert.throws(
      () => parseConfig('[hooks]\ntimeout_sec = 0\n', '/c.toml'),
      /"timeout_sec" must be a number of seconds from 1 to 600/,
    )
  })
})

describe('send and graph_url (issue 16)', () => {
  it("a built-in provider's table may set only send and graph_url: the preset with them", () => {
    const p = parseConfig(
      '[providers.microsoft]\nsend = "graph"\ngraph_url = "https://graph.example/v1.0"\n',
      FILE,
    ).providers.get('microsoft')
    assert.equal(p?.send, 'graph')
    assert.equal(p?.graph?.url, 'https://graph.example/v1.0')
    assert.deepEqual(p?.graph?.scopes, ['https://graph.microsoft.com/Mail.Send'])
    assert.equal(p?.endpoints.token, 'https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token')
  })
  it('send must be smtp, graph or auto', () => {
    failsAt('[providers.microsoft]\nsend = "carrier pigeon"\n', 2, /"send" must be smtp, graph, auto/)
  })
  it('graph or auto for a provider without Graph is refused, naming the way out', () => {
    failsAt('[providers.google]\nsend = "graph"\n', 2, /needs Microsoft Graph: \[providers\.google\] has none/)
    const own = '[providers.mine]\nissuer = "https://login.example.com"\nsend = "auto"\n'
    failsAt(own, 3, /needs Microsoft Graph/)
    const p = parseConfig(`${own}graph_url = "https://graph.example.com/v1.0"\n`, FILE).providers.get('mine')
    assert.equal(p?.send, 'auto')
  })
  it('graph_url must be https (http only on loopback)', () => {
    failsAt('[providers.microsoft]\ngraph_url = "http://graph.example.com/v1.0"\n', 2, /graph_url/)
  })
})
