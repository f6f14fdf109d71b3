/**
 * The built-in provider table: every preset is complete and safe, and domain / MX guessing.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { BUILTIN_PROVIDERS, google, microsoft, providerForDomain, providerForMx } from '../../src/providers/registry.js'
import {
  assertFlowAllowed,
  candidateSettings,
  candidatesFor,
  normaliseServerUrl,
  pickFlow,
} from '../../src/providers/resolve.js'
import { UsageError } from '../../src/errors.js'
import type { Provider } from '../../src/providers/types.js'

const DEAD_MICROSOFT_CLIENTS = ['08162f7c-0fd2-4200-a84a-f25a4db0b584', '31359c7f-bd7e-475c-86db-fdb8c937548e']

describe('built-in providers', () => {
  it('are the expected set, keyed by name', () => {
    assert.deepEqual([...BUILTIN_PROVIDERS.keys()].sort(), ['aol', 'fastmail', 'google', 'microsoft', 'yahoo'])
    for (const [name, p] of BUILTIN_PROVIDERS) assert.equal(p.name, name)
  })

  for (const p of BUILTIN_PROVIDERS.values()) {
    describe(p.name, () => {
      it('has https endpoints (after tenant substitution) and a token endpoint', () => {
        assert.ok(p.endpoints.token, 'token endpoint')
        const urls = Object.values(p.endpoints).filter((u): u is string => typeof u === 'string')
        assert.ok(urls.length >= 2)
        for (const raw of urls) {
          const u = new URL(raw.replaceAll('{tenant}', p.defaultTenant ?? 'common'))
          assert.equal(u.protocol, 'https:', raw)
          assert.equal(u.username + u.password, '', raw)
        }
        const templated = urls.some((u) => u.includes('{tenant}'))
        assert.equal(
          templated,
          p.defaultTenant !== undefined,
          'a {tenant} template needs a default tenant and vice versa',
        )
      })

      it('has at least one client with a label, and no duplicates', () => {
        assert.ok(p.clients.length >= 1)
        for (const c of p.clients) {
          assert.ok(c.clientId.length > 0)
          assert.ok(c.label.length > 0)
        }
        assert.equal(new Set(p.clients.map((c) => c.clientId)).size, p.clients.length)
      })

      it('has scopes and flows it can run', () => {
        assert.ok(p.scopes.length >= 1)
        assert.ok(p.scopes.every((s) => s.length > 0 && !/\s/.test(s)))
        assert.ok(p.flows.length >= 1)
        if (p.flows.includes('device'))
          assert.ok(p.endpoints.deviceAuthorization, 'device flow needs a device endpoint')
        if (p.flows.includes('browser') || p.flows.includes('paste'))
          assert.ok(p.endpoints.authorization, 'browser flow needs an authorization endpoint')
      })

      it('has mail servers that pass normaliseServerUrl, with TLS', () => {
        const kinds = ['imap', 'pop', 'smtp'] as const
        assert.ok(p.servers.imap && p.servers.smtp)
        for (const kind of kinds) {
          const url = p.servers[kind]
          if (url === undefined) continue
          const norm = normaliseServerUrl(kind, url)
          assert.match(norm, /^(imaps|imap|pop3s|pop3|smtps|smtp):\/\/[a-z0-9.-]+:\d+$/, norm)
          // plain-text variants only on submission port 587 (STARTTLS)
          if (!/^(imaps|pop3s|smtps):/.test(norm)) assert.match(norm, /^smtp:\/\/.*:587$/, norm)
        }
      })

      it('has SASL mechanisms, a loopback redirect and lower-case domains', () => {
        assert.ok(p.sasl.length >= 1)
        assert.ok(p.sasl.every((m) => m === 'XOAUTH2' || m === 'OAUTHBEARER'))
        assert.ok(['127.0.0.1', 'localhost', '[::1]'].includes(p.redirect.host))
        assert.ok(p.redirect.path.startsWith('/'))
        assert.ok(p.domains.length >= 1)
        for (const d of p.domains) assert.equal(d, d.toLowerCase())
      })
    })
  }

  it('no domain belongs to two providers', () => {
    const seen = new Map<string, string>()
    for (const p of BUILTIN_PROVIDERS.values()) {
      for (const d of p.domains) {
        assert.equal(seen.get(d), undefined, `${d} is listed by ${seen.get(d)} and ${p.name}`)
        seen.set(d, p.name)
      }
    }
  })

  it('Microsoft never lists the dead client ids', () => {
    const ids = microsoft.clients.map((c) => c.clientId.toLowerCase())
    for (const dead of DEAD_MICROSOFT_CLIENTS) assert.ok(!ids.includes(dead), `${dead} is disabled (AADSTS7000112)`)
    // nor anywhere else
    for (const p of BUILTIN_PROVIDERS.values()) {
      for (const c of p.clients) assert.ok(!DEAD_MICROSOFT_CLIENTS.includes(c.clientId.toLowerCase()), p.name)
    }
  })

  it('Microsoft: public client, XOAUTH2 only, outlook.office.com scopes with offline_access', () => {
    assert.ok(microsoft.clients.every((c) => c.clientSecret === undefined))
    assert.deepEqual(microsoft.sasl, ['XOAUTH2'])
    assert.ok(microsoft.scopes.includes('offline_access'))
    // OpenID Connect scopes (no resource) may ride along; every resource scope is outlook.office.com
    assert.ok(
      microsoft.scopes
        .filter((s) => !['offline_access', 'openid', 'email'].includes(s))
        .every((s) => s.startsWith('https://outlook.office.com/')),
    )
    assert.equal(microsoft.defaultTenant, 'common')
    assert.ok(microsoft.flows.includes('device'))
  })

  it('Google: installed-app secret, offline access with consent, no device flow', () => {
    assert.ok(google.clients.every((c) => typeof c.clientSecret === 'string' && c.clientSecret.length > 0))
    assert.deepEqual(google.authorizationParams, { access_type: 'offline', prompt: 'consent' })
    assert.ok(!google.flows.includes('device'))
    assert.equal(google.endpoints.deviceAuthorization, undefined)
  })
})

/**
 * The redirect Thunderbird sends for each id mailkey borrows (mozilla releases-comm-central
 * mailnews/base/src/OAuth2Providers.sys.mjs; OAuth2.sys.mjs defaults redirectionEndpoint to
 * "http://localhost"), as docs/providers.md lists them. A loopback form is http://HOST:<port>/;
 * an https one no listener can receive, so the preset is paste only.
 */
const THUNDERBIRD_REDIRECTS: Record<string, string> = {
  microsoft: 'http://localhost',
  google: 'http://localhost',
  fastmail: 'http://localhost',
  yahoo: 'https://127.0.0.1',
  aol: 'https://127.0.0.1',
}

describe("presets against Thunderbird's registrations", () => {
  for (const [name, registered] of Object.entries(THUNDERBIRD_REDIRECTS)) {
    const p = BUILTIN_PROVIDERS.get(name) as Provider
    it(`${name}: redirects to ${registered}`, () => {
      if (registered.startsWith('https:')) {
        assert.equal(p.redirect.fixed, registered)
        assert.deepEqual(p.flows, ['paste'], 'a redirect no listener receives leaves only the paste flow')
        assert.match(p.flowRefusals?.browser ?? '', /https:\/\/127\.0\.0\.1 \(no port\)/)
      } else {
        assert.equal(p.redirect.fixed, undefined)
        assert.equal(`http://${p.redirect.host}`, registered)
        assert.ok(p.flows.includes('browser'))
      }
    })
  }

  for (const name of ['yahoo', 'aol']) {
    const p = BUILTIN_PROVIDERS.get(name) as Provider
    const [s] = candidateSettings({ email: `x@${name}.com` }, p, 'browser')
    it(`${name}: chooses paste even with a browser, and refuses --browser with the reason`, () => {
      assert.ok(s)
      assert.equal(pickFlow(p, s, true), 'paste')
      assert.equal(pickFlow(p, s, false), 'paste')
      assert.throws(
        () => assertFlowAllowed(p, s, 'browser'),
        (err: unknown) => {
          assert.ok(err instanceof UsageError)
          assert.match(err.message, /cannot listen on/)
          assert.match(err.hint ?? '', new RegExp(`mailkey add x@${name}\\.com --paste`))
          return true
        },
      )
    })
  }

  it('Microsoft: the fallback ids follow Thunderbird, and a device-only id stays out of the browser flow', () => {
    assert.deepEqual(
      microsoft.clients.map((c) => [c.label, c.clientId, c.flows]),
      [
        ['Thunderbird', '9e5f94bc-e8a4-4e73-b8be-63364c29d753', undefined],
        ['KDE KMail', '18da2bc3-146a-4581-8c92-27dc7b9954a0', undefined],
        ['Alpine', 'f21dcaf2-8020-469b-8135-343bfc35d046', ['device']],
      ],
    )
    const all = candidateSettings({ email: 'x@outlook.com' }, microsoft, 'browser')
    assert.deepEqual(
      candidatesFor(microsoft, all, 'browser').map((s) => s.clientLabel),
      ['Thunderbird', 'KDE KMail'],
    )
    assert.deepEqual(
      candidatesFor(microsoft, all, 'device').map((s) => s.clientLabel),
      ['Thunderbird', 'KDE KMail', 'Alpine'],
    )
    // a user's own id is never filtered
    const own = candidateSettings(
      { email: 'x@outlook.com', clientId: 'f21dcaf2-8020-469b-8135-343bfc35d046' },
      microsoft,
      'browser',
    )
    assert.equal(candidatesFor(microsoft, own, 'browser').length, 1)
  })
})

describe('providerForDomain', () => {
  it('finds the provider of an address, case-insensitively', () => {
    assert.equal(providerForDomain('a@hotmail.com'), microsoft)
    assert.equal(providerForDomain('a@Outlook.COM'), microsoft)
    assert.equal(providerForDomain('a@live.co.uk'), microsoft)
    assert.equal(providerForDomain('a@gmail.com'), google)
    assert.equal(providerForDomain('a@googlemail.com'), google)
    assert.equal(providerForDomain('a@yahoo.com')?.name, 'yahoo')
    assert.equal(providerForDomain('a@aol.com')?.name, 'aol')
    assert.equal(providerForDomain('a@fastmail.com')?.name, 'fastmail')
  })

  it('uses the part after the last @', () => {
    assert.equal(providerForDomain('"odd@name"@gmail.com'), google)
  })

  it('does not match subdomains or look-alikes', () => {
    for (const e of ['a@mail.gmail.com', 'a@gmail.com.evil.example', 'a@notgmail.com', 'a@example.com', 'a@']) {
      assert.equal(providerForDomain(e), undefined, e)
    }
  })

  it('searches the given providers only', () => {
    const p: Provider = { ...google, name: 'corp', domains: ['corp.example'] }
    assert.equal(providerForDomain('a@corp.example', [p]), p)
    assert.equal(providerForDomain('a@gmail.com', [p]), undefined)
    assert.equal(providerForDomain('a@corp.example'), undefined)
  })
})

describe('providerForMx', () => {
  it('recognises Exchange Online and Google MX hosts', () => {
    assert.equal(providerForMx(['contoso-com.mail.protection.outlook.com']), microsoft)
    assert.equal(providerForMx(['aspmx.l.google.com.']), google, 'a trailing dot is ignored')
    assert.equal(providerForMx(['ALT1.ASPMX.L.GOOGLE.COM']), google)
  })

  it('any of several MX hosts may match', () => {
    assert.equal(providerForMx(['mx.other.example', 'alt2.aspmx.l.google.com']), google)
  })

  it('no match for unrelated or look-alike hosts', () => {
    assert.equal(providerForMx([]), undefined)
    assert.equal(providerForMx(['mx.example.com']), undefined)
    assert.equal(providerForMx(['mx.evilgoogle.com']), undefined)
    assert.equal(providerForMx(['protection.outlook.com.evil.example']), undefined)
  })
})
