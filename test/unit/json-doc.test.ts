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
import { errorLine, jsonLine, nextCommand, snakeKeys } from '../../src/cli/json.js'
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
})

describe('cli/json.ts', () => {
  it('snake_case keys all the way down, undefined dropped', () => {
    const v = snakeKeys({ accessToken: { expiresInSec: 3, x: undefined }, list: [{ signedInAs: 'a' }], ok_already: 1 })
    assert.deepEqual(v, { access_token: { expires_in_sec: 3 }, list: [{ signed_in_as: 'a' }], ok_already: 1 })
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
