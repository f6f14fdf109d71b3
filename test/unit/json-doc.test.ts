// docs/json.md, docs/json-schema.json and the CLI agree: every example line on the page fits the
// schema, every event of the schema has an example, every event the CLI can print is in the
// schema, and no command prints JSON on stdout except through cli/json.ts. The e2e test
// (test/e2e/json.test.ts) checks the real output of each command against the same schema.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { JSON_DOC, badKeys, lineProblems } from '../harness/json-output.js'
import { accountStatusJson, errorLine, jsonLine, nextCommand, snakeKeys } from '../../src/cli/json.js'
import type { AccountStatus } from '../../src/broker/accounts.js'
import { ConfigError, ERR, ReauthRequiredError, TransientError, UsageError } from '../../src/errors.js'
import { shArg } from '../../src/core/address.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const doc = readFileSync(join(root, 'docs/json.md'), 'utf8')
const examples = doc
  .split('\n')
  .filter((l) => l.startsWith('{"schema":'))
  .map((l) => JSON.parse(l) as Record<string, unknown>)
const cliFiles = ['src/cli', 'src/cli/commands'].flatMap((d) =>
  readdirSync(join(root, d))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(d, f)),
)
const source = (f: string): string => readFileSync(join(root, f), 'utf8')

describe('docs/json.md and docs/json-schema.json', () => {
  it('every example on the page fits the schema', () => {
    assert.ok(examples.length > 30)
    for (const e of examples) assert.deepEqual(lineProblems(e), [], JSON.stringify(e).slice(0, 200))
  })

  it('every event of the schema has an example on the page', () => {
    const shown = new Set(examples.map((e) => e.event))
    assert.deepEqual(
      Object.keys(JSON_DOC.events).filter((e) => !shown.has(e)),
      [],
    )
  })

  it('every event the CLI prints is in the schema', () => {
    const named = new Set<string>()
    for (const f of cliFiles) {
      const text = source(f)
      for (const m of text.matchAll(/jsonLine\(\s*'([a-z_]+)'/g)) named.add(m[1] as string)
      // add.ts's sign-in events: emit({ event: 'name', ... })
      for (const m of text.matchAll(/emit\(\{\s*event: '([a-z_]+)'/g)) named.add(m[1] as string)
    }
    assert.ok(named.has('token') && named.has('device_code'), [...named].join(' '))
    assert.deepEqual(
      [...named].filter((e) => !(e in JSON_DOC.events)),
      [],
    )
  })

  it('no command writes JSON on stdout but through cli/json.ts (serve logs excepted)', () => {
    for (const f of cliFiles) {
      if (f.endsWith('json.ts')) continue
      for (const line of source(f).split('\n'))
        if (/io\.stdout\(\s*JSON\.stringify/.test(line) && !line.includes('{ t: new Date()'))
          assert.fail(`${f}: ${line.trim()}`)
    }
  })

  it('one name, one type: the address, the remaining life, the account list, reauth', () => {
    const types = new Map<string, Set<string>>()
    const walk = (o: unknown): void => {
      if (o === null || typeof o !== 'object') return
      const props = (o as { properties?: Record<string, Record<string, unknown>> }).properties
      for (const [k, v] of Object.entries(props ?? {}))
        types.set(k, (types.get(k) ?? new Set()).add(JSON.stringify(v.type ?? v.const ?? v.enum ?? v.oneOf ?? v.$ref)))
      for (const v of Object.values(o)) walk(v)
    }
    walk(JSON_DOC)
    for (const name of [
      'account',
      'expires_in',
      'reauth',
      'encrypted',
      'refreshed',
      'failed',
      'deferred',
      'from',
      'to',
    ])
      assert.equal(types.get(name)?.size, 1, `${name}: ${[...(types.get(name) ?? [])].join(' | ')}`)
    assert.ok(![...(types.get('accounts') ?? [])].includes('"integer"'), 'accounts is never a count')
    for (const gone of ['expires_in_sec', 'access_token_expires_at']) assert.equal(types.has(gone), false, gone)
  })
})

describe('cli/json.ts', () => {
  it('an account status says account and expires_in, as the token event does', () => {
    const base = {
      email: 'a@b.c',
      state: 'active',
      accessToken: { present: true, valid: true, expiresAt: '2026-01-01T00:00:00.000Z', expiresInSec: 42 },
      refreshToken: { present: true, ageDays: 1 },
    } as unknown as AccountStatus
    const v = accountStatusJson(base)
    assert.deepEqual(Object.keys(v), ['account', 'state', 'access_token', 'refresh_token'], 'order kept')
    assert.equal(v.account, 'a@b.c')
    assert.deepEqual(v.access_token, {
      present: true,
      valid: true,
      expires_at: '2026-01-01T00:00:00.000Z',
      expires_in: 42,
    })
    const expired = accountStatusJson({ ...base, accessToken: { ...base.accessToken, expiresInSec: -5 } })
    assert.equal((expired.access_token as { expires_in: number }).expires_in, 0, 'a duration, never negative')
  })

  it('snake_case keys all the way down, undefined dropped', () => {
    const v = snakeKeys({ refreshToken: { ageDays: 3, x: undefined }, list: [{ signedInAs: 'a' }], ok_already: 1 })
    assert.deepEqual(v, { refresh_token: { age_days: 3 }, list: [{ signed_in_as: 'a' }], ok_already: 1 })
    assert.deepEqual(badKeys(v), [])
    assert.deepEqual(badKeys({ a: { fooBar: 1 } }), ['$.a.fooBar'])
  })

  it('a line has schema and event first, and ends with a newline', () => {
    assert.equal(jsonLine('locked', { agentStopped: true }), '{"schema":1,"event":"locked","agent_stopped":true}\n')
  })

  it('next: the command quoted in a hint, an address quoted for sh included', () => {
    const odd = "o'neil smith@example.com"
    assert.equal(nextCommand(`Run "mailkey add ${shArg(odd)}" to sign in again.`), `mailkey add ${shArg(odd)}`)
    assert.equal(nextCommand('Nothing was lost.', 'Run "mailkey list".'), 'mailkey list')
    assert.equal(nextCommand('Try again later.'), undefined)
  })

  it('the error line: kind as the token service says it, code, exit code, hint and next', () => {
    const parse = (line: string): Record<string, any> => {
      const o = JSON.parse(line) as Record<string, any>
      assert.deepEqual(lineProblems(o), [])
      return o.error as Record<string, any>
    }
    const reauth = parse(
      errorLine(
        new ReauthRequiredError(ERR.REAUTH_REQUIRED, 'the grant was revoked', { account: 'a@example.com' }),
        'Run "mailkey add a@example.com" to sign in again.',
      ),
    )
    assert.deepEqual(
      [reauth.kind, reauth.exit_code, reauth.account, reauth.next],
      ['needs-sign-in', 77, 'a@example.com', 'mailkey add a@example.com'],
    )
    const later = parse(errorLine(new TransientError(ERR.OAUTH_TRANSIENT, 'busy', { retryAfterSec: 30 }), undefined))
    assert.deepEqual([later.kind, later.exit_code, later.retry_after], ['unavailable', 75, 30])
    const usage = parse(errorLine(new UsageError('bad flag', { hint: 'Run "mailkey token --help".' }), undefined))
    assert.deepEqual(
      [usage.kind, usage.hint, usage.next],
      ['bad-request', 'Run "mailkey token --help".', 'mailkey token --help'],
    )
    const unknown = parse(
      errorLine(new ConfigError(ERR.ACCOUNT_UNKNOWN, 'no account', { account: 'x@y.z' }), undefined),
    )
    assert.deepEqual([unknown.kind, unknown.exit_code], ['unknown-account', 78])
    const config = parse(errorLine(new ConfigError(ERR.CONFIG_INVALID, 'bad config.toml'), undefined))
    assert.deepEqual([config.kind, config.exit_code], ['failed', 78])
    const bug = parse(errorLine(new Error('oops'), undefined))
    assert.deepEqual([bug.kind, bug.code, bug.exit_code], ['failed', 'ERR_MAILKEY_INTERNAL', 70])
  })
})
