import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { accountId } from '../../src/domain/account.js'
import { SASL_MECHANISMS, mechanismsFor, noRefreshTokenHint } from '../../src/domain/provider-rules.js'
import { BUILTIN_PROVIDERS, presetNamed } from '../../src/providers/registry.js'
import type { Provider } from '../../src/providers/types.js'

describe('account ids', () => {
  it('are the address trimmed and lower-cased', () => {
    assert.equal(accountId('  You@Example.TEST\t'), 'you@example.test')
    assert.equal(accountId('you@example.test'), 'you@example.test')
  })
})

describe('mechanismsFor', () => {
  it("offers the account's own mechanism first, then the other, to a custom server", () => {
    assert.deepEqual(mechanismsFor({ sasl: 'OAUTHBEARER' }, undefined), ['OAUTHBEARER', 'XOAUTH2'])
    assert.deepEqual(mechanismsFor({ sasl: 'XOAUTH2' }, undefined), ['XOAUTH2', 'OAUTHBEARER'])
  })

  it('keeps only what the provider accepts (Microsoft: XOAUTH2 only)', () => {
    const ms = presetNamed('microsoft')
    assert.ok(ms)
    assert.deepEqual(mechanismsFor({ sasl: 'XOAUTH2' }, ms), ['XOAUTH2'])
    assert.deepEqual(mechanismsFor({ sasl: 'OAUTHBEARER' }, ms), ['XOAUTH2'])
  })

  it('changes nothing for a preset that takes both', () => {
    for (const p of BUILTIN_PROVIDERS.values()) {
      if (p.sasl.length < SASL_MECHANISMS.length) continue
      for (const sasl of SASL_MECHANISMS)
        assert.deepEqual(mechanismsFor({ sasl }, p), mechanismsFor({ sasl }, undefined))
    }
  })
})

describe('presetNamed', () => {
  it('finds a built-in preset by its exact name only', () => {
    assert.equal(presetNamed('microsoft')?.name, 'microsoft')
    assert.equal(presetNamed('custom'), undefined)
    assert.equal(presetNamed('corp'), undefined)
  })
})

describe('noRefreshTokenHint', () => {
  it('names offline_access where the preset asks for it, and nothing elsewhere', () => {
    assert.match(noRefreshTokenHint(presetNamed('microsoft')) ?? '', /"offline_access" scope is needed/)
    assert.equal(noRefreshTokenHint(presetNamed('google')), undefined)
    assert.equal(noRefreshTokenHint(undefined), undefined)
    const corp: Pick<Provider, 'scopes'> = { scopes: ['mail', 'offline_access'] }
    assert.ok(noRefreshTokenHint(corp))
  })
})
