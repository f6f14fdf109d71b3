// The settings snapshot (config/settings.ts): one precedence for every key.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  DEFAULT_SETTINGS,
  fastPathAllowed,
  needsFile,
  resolveSettings,
  settingsOptions,
} from '../../src/config/settings.js'

describe('resolveSettings', () => {
  it('gives the defaults when nothing is set', () => {
    assert.deepEqual(resolveSettings({}, {}, undefined), {
      refreshMarginSec: 300,
      httpTimeoutMs: 30_000,
      lockTimeoutMs: 110_000,
      maxAttempts: 3,
      maxRetryAfterSec: 10,
    })
    assert.deepEqual(resolveSettings({}, {}, { providers: new Map() }), DEFAULT_SETTINGS)
  })

  it('options > env > config.toml > defaults, key by key', () => {
    const file = { refreshMarginSec: 100, httpTimeoutSec: 5 }
    assert.equal(resolveSettings({}, {}, file).refreshMarginSec, 100)
    assert.equal(resolveSettings({}, {}, file).httpTimeoutMs, 5000)
    assert.equal(resolveSettings({}, { MAILKEY_REFRESH_MARGIN_SEC: '200' }, file).refreshMarginSec, 200)
    const all = resolveSettings({ refreshMarginSec: 50, maxAttempts: 1 }, { MAILKEY_REFRESH_MARGIN_SEC: '200' }, file)
    assert.equal(all.refreshMarginSec, 50)
    assert.equal(all.maxAttempts, 1)
    assert.equal(all.httpTimeoutMs, 5000, 'a key the options leave out comes from the file')
    assert.equal(all.lockTimeoutMs, 110_000)
  })

  it('a key set to undefined in the options hides nothing', () => {
    const s = resolveSettings({ refreshMarginSec: undefined, httpTimeoutMs: undefined }, {}, { refreshMarginSec: 7 })
    assert.equal(s.refreshMarginSec, 7)
    assert.equal(s.httpTimeoutMs, 30_000)
  })

  it('ignores a MAILKEY_REFRESH_MARGIN_SEC that is not a whole number of seconds', () => {
    assert.equal(
      resolveSettings({}, { MAILKEY_REFRESH_MARGIN_SEC: '1.5' }, { refreshMarginSec: 9 }).refreshMarginSec,
      9,
    )
    assert.equal(resolveSettings({}, { MAILKEY_REFRESH_MARGIN_SEC: 'x' }, undefined).refreshMarginSec, 300)
  })

  it('settingsOptions picks the snapshot keys out of broker options', () => {
    const o = settingsOptions({ lockTimeoutMs: 5, env: {}, fetch: undefined } as never)
    assert.deepEqual(o, { lockTimeoutMs: 5 })
  })
})

describe('needsFile / fastPathAllowed', () => {
  it('the file is needed unless options or env give the margin', () => {
    assert.equal(needsFile({}, {}), true)
    assert.equal(needsFile({ refreshMarginSec: 0 }, {}), false)
    assert.equal(needsFile({}, { MAILKEY_REFRESH_MARGIN_SEC: '60' }), false)
  })

  it('the fast path stays fast unless the file sets the margin or defines providers', () => {
    assert.equal(fastPathAllowed(undefined), true)
    assert.equal(fastPathAllowed({ providers: new Map(), httpTimeoutSec: 5 }), true)
    assert.equal(fastPathAllowed({ providers: new Map(), refreshMarginSec: 120 }), false)
    assert.equal(fastPathAllowed({ providers: new Map([['campus', {}]]) }), false)
  })
})
