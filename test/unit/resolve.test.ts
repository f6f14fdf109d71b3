/**
 * Turning options + presets into sign-in settings: server URL normalisation, Microsoft tenants,
 * Google's quirks, custom servers, provider guessing and flow choice.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { ConfigError, ERR, UsageError } from '../../src/errors.js'
import { google, microsoft } from '../../src/providers/registry.js'
import {
  assertFlowAllowed,
  candidateSettings,
  chooseProvider,
  findProvider,
  normaliseServerUrl,
  pickFlow,
  type AccountOptions,
} from '../../src/providers/resolve.js'
import type { Provider } from '../../src/providers/types.js'
import type { AccountSettings } from '../../src/domain/account.js'

const NONE: ReadonlyMap<string, Provider> = new Map()

function usage(fn: () => unknown, message: RegExp): UsageError {
  let caught: unknown
  try {
    fn()
  } catch (e) {
    caught = e
  }
  assert.ok(caught instanceof UsageError, `expected a UsageError, got ${String(caught)}`)
  assert.equal(caught.code, ERR.USAGE)
  assert.equal(caught.exitCode, 64)
  assert.match(caught.message, message)
  return caught
}

describe('normaliseServerUrl', () => {
  it('takes only real host names: shell, INI and URL syntax in a host is refused; IDN becomes ASCII', () => {
    for (const bad of [
      "imaps://`id`;$(id)':993",
      'imaps://a;b.example:993',
      'imaps://a%20b.example',
      'smtp://h$x.example:587',
      'pop3s://a"b.example',
    ]) {
      assert.throws(
        () => normaliseServerUrl(bad.startsWith('smtp') ? 'smtp' : bad.startsWith('pop') ? 'pop' : 'imap', bad),
        (e: unknown) => e instanceof UsageError && /valid host name/.test(e.message),
        bad,
      )
    }
    assert.equal(normaliseServerUrl('imap', 'imaps://b\u00fccher.example'), 'imaps://xn--bcher-kva.example:993')
    assert.equal(normaliseServerUrl('imap', 'imaps://[::1]:1993'), 'imaps://[::1]:1993')
    assert.equal(normaliseServerUrl('smtp', 'smtp://mail_relay.corp.example:587'), 'smtp://mail_relay.corp.example:587')
  })
  it('fills the default port of each scheme', () => {
    assert.equal(normaliseServerUrl('imap', 'imaps://imap.example.com'), 'imaps://imap.example.com:993')
    assert.equal(normaliseServerUrl('imap', 'imap://imap.example.com'), 'imap://imap.example.com:143')
    assert.equal(normaliseServerUrl('pop', 'pop3s://pop.example.com'), 'pop3s://pop.example.com:995')
    assert.equal(normaliseServerUrl('pop', 'pop3://pop.example.com'), 'pop3://pop.example.com:110')
    assert.equal(normaliseServerUrl('smtp', 'smtp://smtp.example.com'), 'smtp://smtp.example.com:587')
    assert.equal(normaliseServerUrl('smtp', 'smtps://smtp.example.com'), 'smtps://smtp.example.com:465')
  })

  it('keeps an explicit port, a trailing slash, and IPv6 literals', () => {
    assert.equal(normaliseServerUrl('imap', 'imaps://imap.example.com:10993'), 'imaps://imap.example.com:10993')
    assert.equal(normaliseServerUrl('smtp', 'smtp://smtp.example.com:25/'), 'smtp://smtp.example.com:25')
    assert.equal(normaliseServerUrl('imap', 'imaps://[::1]:9993'), 'imaps://[::1]:9993')
    assert.equal(normaliseServerUrl('imap', 'IMAPS://imap.example.com'), 'imaps://imap.example.com:993')
  })

  it('rejects http:// and other schemes, naming the right ones', () => {
    usage(
      () => normaliseServerUrl('imap', 'http://imap.example.com'),
      /must start with imaps:\/\/ \(TLS\) or imap:\/\/ \(STARTTLS\)/,
    )
    usage(() => normaliseServerUrl('imap', 'https://imap.example.com'), /imaps:\/\//)
    usage(() => normaliseServerUrl('smtp', 'imaps://smtp.example.com'), /smtps:\/\/ \(TLS\) or smtp:\/\/ \(STARTTLS\)/)
    usage(() => normaliseServerUrl('pop', 'pop://pop.example.com'), /pop3s:\/\//)
  })

  it('rejects paths, queries and credentials', () => {
    usage(() => normaliseServerUrl('imap', 'imaps://imap.example.com/INBOX'), /must be just scheme:\/\/host:port/)
    usage(() => normaliseServerUrl('imap', 'imaps://imap.example.com?tls=1'), /must be just scheme:\/\/host:port/)
    usage(() => normaliseServerUrl('imap', 'imaps://me@imap.example.com'), /must be just scheme:\/\/host:port/)
  })

  it('does not echo a password from the URL', () => {
    const e = usage(
      () => normaliseServerUrl('imap', 'imaps://me:hunter2pass@imap.example.com'),
      /must be just scheme:\/\/host:port/,
    )
    assert.ok(!e.message.includes('hunter2pass'), 'the password reached the message')
    assert.ok(e.message.includes('imap.example.com'))
  })

  it('rejects what is not a URL, with an example', () => {
    usage(() => normaliseServerUrl('imap', 'imap.example.com'), /is not a URL; write it like imaps:\/\/host:993/)
    usage(() => normaliseServerUrl('smtp', 'smtp.example.com:587'), /./)
  })

  it('rejects a URL without a host', () => {
    usage(() => normaliseServerUrl('imap', 'imaps://'), /no host name|not a URL/)
  })
})

describe('candidateSettings: Microsoft', () => {
  const base: AccountOptions = { email: 'someone@outlook.com' }

  it('defaults to the common tenant in every endpoint', () => {
    const [s, ...rest] = candidateSettings(base, microsoft, 'device')
    assert.ok(s)
    // the fallback ids, in the order docs/adr/0014 gives
    assert.deepEqual(
      rest.map((r) => r.clientLabel),
      ['KDE KMail', 'Alpine'],
    )
    assert.equal(s.provider, 'microsoft')
    assert.equal(s.tenant, 'common')
    assert.equal(s.endpoints.authorization, 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize')
    assert.equal(s.endpoints.token, 'https://login.microsoftonline.com/common/oauth2/v2.0/token')
    assert.equal(s.endpoints.deviceAuthorization, 'https://login.microsoftonline.com/common/oauth2/v2.0/devicecode')
    assert.equal(s.flow, 'device')
    assert.equal(s.sasl, 'XOAUTH2')
    assert.equal(s.clientSecret, undefined)
    assert.equal(s.clientLabel, 'Thunderbird')
    assert.deepEqual(s.servers, {
      imap: 'imaps://outlook.office365.com:993',
      pop: 'pop3s://outlook.office365.com:995',
      smtp: 'smtp://smtp.office365.com:587',
    })
  })

  for (const tenant of [
    'consumers',
    'organizations',
    '72f988bf-86f1-41af-91ab-2d7cd011db47',
    'contoso.onmicrosoft.com',
    'contoso.com',
  ]) {
    it(`--tenant ${tenant} goes into all three endpoints`, () => {
      const [s] = candidateSettings({ ...base, tenant }, microsoft, 'browser')
      assert.ok(s)
      assert.equal(s.tenant, tenant)
      for (const url of [s.endpoints.authorization, s.endpoints.token, s.endpoints.deviceAuthorization]) {
        assert.ok(url?.startsWith(`https://login.microsoftonline.com/${tenant}/oauth2/v2.0/`), url)
        assert.ok(!url?.includes('{tenant}'))
      }
    })
  }

  for (const tenant of ['contoso', 'not a tenant', '../evil', 'a/b.com', '', 'common/../x']) {
    it(`--tenant ${JSON.stringify(tenant)} is refused`, () => {
      usage(
        () => candidateSettings({ ...base, tenant }, microsoft, 'browser'),
        /is not a tenant: use common, organizations, consumers/,
      )
    })
  }

  it('asks for offline_access and only outlook.office.com mail scopes, never Graph', () => {
    const [s] = candidateSettings(base, microsoft, 'browser')
    assert.ok(s)
    assert.ok(s.scopes.includes('offline_access'))
    const resourceScopes = s.scopes.filter((x) => !['offline_access', 'openid', 'email'].includes(x))
    assert.ok(resourceScopes.length >= 2)
    for (const scope of resourceScopes) assert.ok(scope.startsWith('https://outlook.office.com/'), scope)
    assert.ok(!s.scopes.some((x) => /graph\.microsoft\.com|outlook\.office365\.com|^(User\.Read|Mail\.)/i.test(x)))
    assert.ok(s.scopes.includes('https://outlook.office.com/IMAP.AccessAsUser.All'))
    assert.ok(s.scopes.includes('https://outlook.office.com/SMTP.Send'))
  })

  it('OAUTHBEARER is refused for Microsoft', () => {
    usage(
      () => candidateSettings({ ...base, sasl: 'OAUTHBEARER' }, microsoft, 'browser'),
      /does not accept OAUTHBEARER; use XOAUTH2/,
    )
  })

  it('an explicit client id replaces the built-in candidates', () => {
    const list = candidateSettings({ ...base, clientId: 'my-app-id', clientSecret: 'my-secret' }, microsoft, 'browser')
    assert.equal(list.length, 1)
    assert.equal(list[0]?.clientId, 'my-app-id')
    assert.equal(list[0]?.clientSecret, 'my-secret')
    assert.equal(list[0]?.clientLabel, 'your client id')
  })

  it('a --client-secret alone is given to each built-in candidate', () => {
    const list = candidateSettings({ ...base, clientSecret: 'sec' }, microsoft, 'browser')
    assert.equal(list.length, microsoft.clients.length)
    for (const s of list) assert.equal(s.clientSecret, 'sec')
    assert.equal(microsoft.clients[0]?.clientSecret, undefined, 'the preset itself is untouched')
  })

  it('explicit options win over the preset', () => {
    const [s] = candidateSettings(
      {
        ...base,
        tokenUrl: 'https://proxy.example.com/token',
        scopes: ['a', 'b'],
        imapUrl: 'imap://mail.example.com',
        clientAuth: 'basic',
        ca: '/etc/ca.pem',
      },
      microsoft,
      'paste',
    )
    assert.ok(s)
    assert.equal(s.endpoints.token, 'https://proxy.example.com/token')
    assert.equal(s.endpoints.authorization, 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize')
    assert.deepEqual(s.scopes, ['a', 'b'])
    assert.equal(s.servers.imap, 'imap://mail.example.com:143')
    assert.equal(s.servers.smtp, 'smtp://smtp.office365.com:587')
    assert.equal(s.clientAuth, 'basic')
    assert.equal(s.ca, '/etc/ca.pem')
  })

  it('a bad server URL from the options is refused', () => {
    usage(() => candidateSettings({ ...base, smtpUrl: 'http://smtp.example.com' }, microsoft, 'browser'), /smtp server/)
  })
})

describe('candidateSettings: Google', () => {
  const base: AccountOptions = { email: 'someone@gmail.com' }

  it('carries the installed-app secret and the offline/consent parameters', () => {
    const [s] = candidateSettings(base, google, 'browser')
    assert.ok(s)
    assert.equal(s.provider, 'google')
    assert.equal(typeof s.clientSecret, 'string')
    assert.ok((s.clientSecret ?? '').length > 0)
    assert.deepEqual(s.authorizationParams, { access_type: 'offline', prompt: 'consent' })
    assert.deepEqual(s.scopes, ['https://mail.google.com/'])
    assert.equal(s.endpoints.deviceAuthorization, undefined)
    assert.equal(s.endpoints.issuer, 'https://accounts.google.com')
    assert.equal(s.endpoints.revocation, 'https://oauth2.googleapis.com/revoke')
    assert.equal(s.tenant, undefined)
    assert.equal(s.sasl, 'XOAUTH2')
  })

  it('the preset flows exclude the device flow', () => {
    assert.ok(!google.flows.includes('device'))
    assert.ok(google.flows.includes('browser') && google.flows.includes('paste'))
  })

  it('OAUTHBEARER is allowed', () => {
    assert.equal(candidateSettings({ ...base, sasl: 'OAUTHBEARER' }, google, 'browser')[0]?.sasl, 'OAUTHBEARER')
  })

  it('an own client id does not inherit the built-in secret', () => {
    const [s] = candidateSettings({ ...base, clientId: 'mine.apps.googleusercontent.com' }, google, 'browser')
    assert.ok(s)
    assert.equal(s.clientSecret, undefined)
  })

  it('--tenant is refused for a provider without tenants', () => {
    usage(
      () => candidateSettings({ ...base, tenant: 'common' }, google, 'browser'),
      /--tenant applies to Microsoft accounts; the provider "google" has no tenants/,
    )
  })
})

describe('candidateSettings: custom servers', () => {
  const discovered = {
    issuer: 'https://id.example.com',
    authorization: 'https://id.example.com/authorize',
    token: 'https://id.example.com/token',
    deviceAuthorization: 'https://id.example.com/device',
    revocation: 'https://id.example.com/revoke',
  }

  it('an issuer with discovered endpoints', () => {
    const opts: AccountOptions = {
      email: 'me@example.com',
      issuer: 'https://id.example.com',
      clientId: 'cid',
      scopes: ['mail'],
      imapUrl: 'imaps://mail.example.com',
    }
    const list = candidateSettings(opts, undefined, 'device', discovered)
    assert.equal(list.length, 1)
    const s = list[0] as AccountSettings
    assert.equal(s.provider, 'custom')
    assert.deepEqual(s.endpoints, discovered)
    assert.equal(s.clientId, 'cid')
    assert.equal(s.clientLabel, 'your client id')
    assert.deepEqual(s.servers, { imap: 'imaps://mail.example.com:993' })
    assert.equal(s.sasl, 'XOAUTH2')
    assert.equal(s.tenant, undefined)
  })

  it('explicit endpoints beat discovered ones; absent ones are left out', () => {
    const [s] = candidateSettings(
      { email: 'me@example.com', tokenUrl: 'https://other.example.com/token', clientId: 'c', scopes: ['s'] },
      undefined,
      'browser',
      { token: 'https://id.example.com/token' },
    )
    assert.ok(s)
    assert.deepEqual(s.endpoints, { token: 'https://other.example.com/token' })
  })

  it('missing scopes -> UsageError', () => {
    const e = usage(
      () =>
        candidateSettings(
          { email: 'me@example.com', issuer: 'https://id.example.com', clientId: 'c' },
          undefined,
          'device',
          discovered,
        ),
      /no scopes for "me@example\.com"/,
    )
    assert.match(e.hint ?? '', /--scope/)
  })

  it('missing token endpoint -> UsageError', () => {
    usage(
      () => candidateSettings({ email: 'me@example.com', clientId: 'c', scopes: ['s'] }, undefined, 'device'),
      /no token endpoint for "me@example\.com"/,
    )
  })

  it('missing client id -> UsageError', () => {
    const e = usage(
      () =>
        candidateSettings(
          { email: 'me@example.com', tokenUrl: 'https://t.example/token', scopes: ['s'] },
          undefined,
          'device',
        ),
      /no client id for "me@example\.com"/,
    )
    assert.match(e.hint ?? '', /--client-id/)
  })

  it('a config provider with several client ids gives one candidate each, in order', () => {
    const p: Provider = {
      name: 'corp',
      displayName: 'Corp',
      endpoints: { token: 'https://corp.example/token' },
      clients: [
        { clientId: 'a', label: 'x' },
        { clientId: 'b', label: 'y' },
      ],
      scopes: ['s'],
      flows: ['device'],
      redirect: { host: '127.0.0.1', path: '/' },
      sasl: ['OAUTHBEARER', 'XOAUTH2'],
      servers: {},
      domains: [],
    }
    const list = candidateSettings({ email: 'me@corp.example' }, p, 'device')
    assert.deepEqual(
      list.map((s) => s.clientId),
      ['a', 'b'],
    )
    assert.equal(list[0]?.sasl, 'OAUTHBEARER', 'first mechanism of the provider')
  })
})

describe('chooseProvider / findProvider', () => {
  it('guesses by domain', () => {
    assert.equal(chooseProvider({ email: 'x@hotmail.com' }, NONE)?.name, 'microsoft')
    assert.equal(chooseProvider({ email: 'x@outlook.com' }, NONE)?.name, 'microsoft')
    assert.equal(chooseProvider({ email: 'x@gmail.com' }, NONE)?.name, 'google')
    assert.equal(chooseProvider({ email: 'X@GoogleMail.COM' }, NONE)?.name, 'google')
    assert.equal(chooseProvider({ email: 'x@unknown-domain.example' }, NONE), undefined)
  })

  it('an unknown domain falls back to the MX guess', () => {
    assert.equal(chooseProvider({ email: 'x@corp.example' }, NONE, microsoft), microsoft)
    assert.equal(chooseProvider({ email: 'x@gmail.com' }, NONE, microsoft), google, 'the domain wins over MX')
  })

  it('a named provider wins; an explicit issuer or token URL means a custom server', () => {
    assert.equal(chooseProvider({ email: 'x@gmail.com', provider: 'Microsoft' }, NONE), microsoft)
    assert.equal(chooseProvider({ email: 'x@gmail.com', issuer: 'https://id.example.com' }, NONE), undefined)
    assert.equal(
      chooseProvider({ email: 'x@gmail.com', tokenUrl: 'https://id.example.com/t' }, NONE, microsoft),
      undefined,
    )
  })

  it('config providers are searched first, by name and by domain', () => {
    const mine: Provider = { ...google, name: 'mine', displayName: 'Mine', domains: ['gmail.com', 'corp.example'] }
    const cfg = new Map([['mine', mine]])
    assert.equal(chooseProvider({ email: 'x@gmail.com' }, cfg), mine)
    assert.equal(chooseProvider({ email: 'x@corp.example' }, cfg), mine)
    assert.equal(chooseProvider({ email: 'x@gmail.com', provider: 'mine' }, cfg), mine)
  })

  it('an unknown provider name is a UsageError listing the known ones', () => {
    const e = usage(
      () => findProvider('nope', new Map([['corp', google]])),
      /unknown provider "nope" \(known: microsoft, google, yahoo, aol, fastmail, corp\)/,
    )
    assert.match(e.hint ?? '', /\[providers\.NAME\]/)
  })
})

describe('pickFlow / assertFlowAllowed', () => {
  const ms = candidateSettings({ email: 'x@outlook.com' }, microsoft, 'browser')[0] as AccountSettings
  const gg = candidateSettings({ email: 'x@gmail.com' }, google, 'browser')[0] as AccountSettings

  it('browser when one can be opened', () => {
    assert.equal(pickFlow(microsoft, ms, true), 'browser')
    assert.equal(pickFlow(google, gg, true), 'browser')
  })

  it('device when headless and the provider has it', () => {
    assert.equal(pickFlow(microsoft, ms, false), 'device')
  })

  it('paste for Google when headless', () => {
    assert.equal(pickFlow(google, gg, false), 'paste')
  })

  it('custom servers: whatever endpoints there are', () => {
    const deviceOnly: AccountSettings = {
      ...ms,
      provider: 'custom',
      endpoints: { token: 'https://t.example/token', deviceAuthorization: 'https://t.example/device' },
    }
    assert.equal(pickFlow(undefined, deviceOnly, true), 'device')
    const tokenOnly: AccountSettings = { ...ms, provider: 'custom', endpoints: { token: 'https://t.example/token' } }
    assert.throws(
      () => pickFlow(undefined, tokenOnly, true),
      (e: unknown) =>
        e instanceof ConfigError && e.code === ERR.PROVIDER_FLOW_UNSUPPORTED && e.message.includes('x@outlook.com'),
    )
  })

  it('a provider that does not list a flow does not get it, even with the endpoint', () => {
    const noDevice: Provider = { ...microsoft, flows: ['browser', 'paste'] }
    assert.equal(pickFlow(noDevice, ms, false), 'paste')
  })

  it('google --device -> UsageError: Google does not allow mail scopes in the device flow', () => {
    const e = usage(
      () => assertFlowAllowed(google, gg, 'device'),
      /^--device cannot be used for "x@gmail\.com": Google does not allow mail scopes in the device flow$/,
    )
    assert.match(e.hint ?? '', /--paste/)
  })

  it('allowed flows pass', () => {
    assert.doesNotThrow(() => assertFlowAllowed(google, gg, 'browser'))
    assert.doesNotThrow(() => assertFlowAllowed(google, gg, 'paste'))
    assert.doesNotThrow(() => assertFlowAllowed(microsoft, ms, 'device'))
    assert.doesNotThrow(() => assertFlowAllowed(microsoft, ms, 'browser'))
  })

  it('a missing endpoint is named', () => {
    const custom: AccountSettings = { ...ms, provider: 'custom', endpoints: { token: 'https://t.example/token' } }
    usage(() => assertFlowAllowed(undefined, custom, 'device'), /this server offers no device authorization endpoint/)
    const e = usage(
      () => assertFlowAllowed(undefined, custom, 'browser'),
      /--browser cannot be used .*no authorization endpoint/,
    )
    assert.match(e.hint ?? '', /--device/)
  })
})

describe('candidateSettings: --tenant outside Microsoft', () => {
  it('is refused for a custom server instead of being ignored', () => {
    assert.throws(
      () =>
        candidateSettings(
          {
            email: 'a@example.test',
            tokenUrl: 'https://as.example/token',
            clientId: 'c',
            scopes: ['mail'],
            tenant: 'consumers',
          },
          undefined,
          'device',
        ),
      (e: unknown) => e instanceof UsageError && /this server has no tenants/.test(e.message),
    )
    assert.throws(
      () => candidateSettings({ email: 'a@gmail.com', tenant: 'consumers' }, google, 'browser'),
      /the provider "google" has no tenants/,
    )
  })
})
