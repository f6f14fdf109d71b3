/**
 * The error hierarchy: class -> exit code (sysexits), transient / reauthRequired flags, codes,
 * options carried as data, and the helper functions.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import {
  ConfigError,
  ERR,
  EXIT,
  InternalError,
  InterruptedError,
  MailkeyError,
  ProtocolError,
  ReauthRequiredError,
  StoreError,
  TransientError,
  UsageError,
  exitCodeOf,
  isMailkeyError,
  isTransient,
} from '../../src/errors.js'

interface Row {
  name: string
  make: () => MailkeyError
  exit: number
  code: string
  transient: boolean
  reauth: boolean
}

const rows: Row[] = [
  {
    name: 'MailkeyError',
    make: () => new MailkeyError(ERR.INTERNAL, 'm'),
    exit: 1,
    code: ERR.INTERNAL,
    transient: false,
    reauth: false,
  },
  { name: 'UsageError', make: () => new UsageError('m'), exit: 64, code: ERR.USAGE, transient: false, reauth: false },
  {
    name: 'ConfigError',
    make: () => new ConfigError(ERR.CONFIG_INVALID, 'm'),
    exit: 78,
    code: ERR.CONFIG_INVALID,
    transient: false,
    reauth: false,
  },
  {
    name: 'ReauthRequiredError',
    make: () => new ReauthRequiredError(ERR.REAUTH_REQUIRED, 'm'),
    exit: 77,
    code: ERR.REAUTH_REQUIRED,
    transient: false,
    reauth: true,
  },
  {
    name: 'TransientError',
    make: () => new TransientError(ERR.OAUTH_TRANSIENT, 'm'),
    exit: 75,
    code: ERR.OAUTH_TRANSIENT,
    transient: true,
    reauth: false,
  },
  {
    name: 'ProtocolError',
    make: () => new ProtocolError(ERR.OAUTH_PROTOCOL, 'm'),
    exit: 76,
    code: ERR.OAUTH_PROTOCOL,
    transient: false,
    reauth: false,
  },
  {
    name: 'StoreError',
    make: () => new StoreError(ERR.STORE_IO, 'm'),
    exit: 74,
    code: ERR.STORE_IO,
    transient: false,
    reauth: false,
  },
  {
    name: 'StoreError (lock timeout)',
    make: () => new StoreError(ERR.STORE_LOCK_TIMEOUT, 'm'),
    exit: 74,
    code: ERR.STORE_LOCK_TIMEOUT,
    transient: true,
    reauth: false,
  },
  {
    name: 'InternalError',
    make: () => new InternalError('m'),
    exit: 70,
    code: ERR.INTERNAL,
    transient: false,
    reauth: false,
  },
  {
    name: 'InterruptedError',
    make: () => new InterruptedError(),
    exit: 130,
    code: ERR.INTERRUPTED,
    transient: false,
    reauth: false,
  },
]

describe('error classes', () => {
  for (const r of rows) {
    it(`${r.name}: exit ${r.exit}, code ${r.code}, transient=${r.transient}, reauthRequired=${r.reauth}`, () => {
      const e = r.make()
      assert.ok(e instanceof Error)
      assert.ok(e instanceof MailkeyError)
      assert.equal(e.exitCode, r.exit)
      assert.equal(e.code, r.code)
      assert.equal(e.transient, r.transient)
      assert.equal(e.reauthRequired, r.reauth)
      assert.equal(exitCodeOf(e), r.exit)
      assert.equal(isTransient(e), r.transient)
      assert.equal(isMailkeyError(e), true)
      assert.equal(e.name, r.name.replace(/ \(.*\)$/, ''))
    })
  }

  it('exit codes are the sysexits values', () => {
    assert.deepEqual(
      {
        USAGE: EXIT.USAGE,
        IOERR: EXIT.IOERR,
        TEMPFAIL: EXIT.TEMPFAIL,
        PROTOCOL: EXIT.PROTOCOL,
        NOPERM: EXIT.NOPERM,
        CONFIG: EXIT.CONFIG,
        SOFTWARE: EXIT.SOFTWARE,
      },
      { USAGE: 64, IOERR: 74, TEMPFAIL: 75, PROTOCOL: 76, NOPERM: 77, CONFIG: 78, SOFTWARE: 70 },
    )
    assert.equal(EXIT.INTERRUPTED, 130)
  })

  it('every ERR code is unique and namespaced', () => {
    const values = Object.values(ERR)
    assert.equal(new Set(values).size, values.length)
    for (const v of values) assert.match(v, /^ERR_MAILKEY_[A-Z_]+$/)
  })

  it('a subclass keeps its own class when the code belongs to another family', () => {
    // the class says how to react, the code what happened
    const e = new ReauthRequiredError(ERR.CLIENT_REJECTED, 'm')
    assert.equal(e.exitCode, 77)
    assert.equal(e.reauthRequired, true)
    const t = new TransientError(ERR.STORE_LOCK_TIMEOUT, 'm')
    assert.equal(t.exitCode, 75)
  })

  it('StoreError is transient only for a lock timeout', () => {
    for (const code of [ERR.STORE_PERMISSIONS, ERR.STORE_CORRUPT, ERR.STORE_IO]) {
      assert.equal(new StoreError(code, 'm').transient, false, code)
    }
    assert.equal(new StoreError(ERR.STORE_LOCK_TIMEOUT, 'm').transient, true)
  })

  it('carries the options as data', () => {
    const cause = new Error('root')
    const e = new TransientError(ERR.OAUTH_TRANSIENT, 'msg', {
      account: 'a@example.com',
      hint: 'Try later.',
      cause,
      oauthError: 'server_error',
      providerCodes: ['AADSTS50033'],
      status: 503,
      retryAfterSec: 30,
    })
    assert.equal(e.message, 'msg')
    assert.equal(e.account, 'a@example.com')
    assert.equal(e.hint, 'Try later.')
    assert.equal(e.cause, cause)
    assert.equal(e.oauthError, 'server_error')
    assert.deepEqual(e.providerCodes, ['AADSTS50033'])
    assert.equal(e.status, 503)
    assert.equal(e.retryAfterSec, 30)
  })

  it('defaults: no cause property, empty provider codes, undefined extras', () => {
    const e = new ProtocolError(ERR.OAUTH_PROTOCOL, 'm')
    assert.equal(Object.hasOwn(e, 'cause'), false)
    assert.deepEqual(e.providerCodes, [])
    assert.equal(e.account, undefined)
    assert.equal(e.status, undefined)
    assert.equal(e.retryAfterSec, undefined)
    assert.equal(e.hint, undefined)
  })

  it('ConfigError carries file, line and column', () => {
    const e = new ConfigError(ERR.CONFIG_INVALID, 'bad', { file: '/x/config.toml', line: 3, column: 7 })
    assert.equal(e.file, '/x/config.toml')
    assert.equal(e.line, 3)
    assert.equal(e.column, 7)
    const none = new ConfigError(ERR.CONFIG_INVALID, 'bad')
    assert.equal(none.line, undefined)
  })

  it('InterruptedError has a default message', () => {
    assert.equal(new InterruptedError().message, 'interrupted')
    assert.equal(new InterruptedError('stop').message, 'stop')
  })

  it('helpers treat foreign errors as generic and not transient', () => {
    for (const v of [
      new Error('x'),
      new TypeError('fetch failed'),
      'string',
      undefined,
      null,
      { exitCode: 75, transient: true },
    ]) {
      assert.equal(exitCodeOf(v), EXIT.GENERIC)
      assert.equal(isTransient(v), false)
      assert.equal(isMailkeyError(v), false)
    }
  })
})
