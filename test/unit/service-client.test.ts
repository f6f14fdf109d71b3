// The token service's client (src/remote/service-client.ts): the service's problem documents,
// made by the service's own problemOf from real errors, turned back into the same errors and exit
// codes `mailkey token` gives on the store's host; a load balancer's 502/503/504 as "try again";
// server text cleaned of control characters; MAILKEY_STORE_URL and the API key checked before
// anything is sent. Also RemoteSource's status answers (cleaned) and `mailkey serve --listen`.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ServiceClient, serviceTarget, type ServiceResponse } from '../../src/remote/service-client.js'
import { RemoteSource } from '../../src/remote/remote-source.js'
import { problem, problemOf } from '../../src/serve/problem.js'
import { unknownAccount } from '../../src/broker/failures.js'
import { parseListen } from '../../src/cli/commands/serve.js'
import {
  ConfigError,
  ERR,
  EXIT,
  ProtocolError,
  ReauthRequiredError,
  StoreError,
  TransientError,
  UsageError,
  type MailkeyError,
} from '../../src/errors.js'
import type { AccountStatus } from '../../src/broker/accounts.js'
import { STATUS_FIELDS } from '../harness/status-answer.js'

const ALICE = 'alice@example.test'
const URL_ = 'https://tokens.example:8443'

/** An answer as the service sends it: the problem document of `p`, with the instance. */
const answer = (p: ReturnType<typeof problem>, retryAfter?: string): ServiceResponse => ({
  status: p.status,
  body: JSON.parse(JSON.stringify({ ...p, instance: `/v1/accounts/${ALICE}/token` })) as unknown,
  ...(retryAfter !== undefined ? { retryAfter } : {}),
})

describe('service client: problem documents back into errors', () => {
  let client: ServiceClient
  before(() => {
    client = new ServiceClient(serviceTarget({ MAILKEY_STORE_URL: URL_, MAILKEY_API_KEY: 'mk_test' }))
  })
  after(() => client.close())
  const errorOf = (r: ServiceResponse, account?: string): MailkeyError => client.errorOf(r, account)

  it('needs-sign-in: exit 77, the sign-in command in the hint', () => {
    const p = problemOf(
      new ReauthRequiredError(ERR.REAUTH_REQUIRED, 'the grant was revoked', { account: ALICE }),
      ALICE,
    )
    const e = errorOf(answer(p))
    assert.ok(e instanceof ReauthRequiredError)
    assert.equal(e.exitCode, EXIT.NOPERM)
    assert.equal(e.code, ERR.REAUTH_REQUIRED)
    assert.equal(e.account, ALICE)
    assert.equal(e.message, 'the grant was revoked')
    assert.match(e.hint ?? '', /run "mailkey add alice@example\.test" there/)
  })

  it('unavailable: exit 75 with retryAfterSec from the body, the header, or 5', () => {
    const p = problemOf(new TransientError(ERR.OAUTH_TRANSIENT, 'later', { retryAfterSec: 9 }), ALICE)
    const e = errorOf(answer(p))
    assert.ok(e instanceof TransientError)
    assert.equal(e.exitCode, EXIT.TEMPFAIL)
    assert.equal(e.retryAfterSec, 9)
    assert.equal(e.code, ERR.OAUTH_TRANSIENT)
    const { retry_after: _, ...noBody } = problemOf(new StoreError(ERR.STORE_UNAVAILABLE, 'the store is down'))
    assert.equal(errorOf(answer(noBody, '12')).retryAfterSec, 12)
    assert.equal(errorOf(answer(noBody)).retryAfterSec, 5)
    assert.equal(errorOf(answer(noBody, 'Wed, 21 Oct 2015 07:28:00 GMT')).retryAfterSec, 5)
  })

  it('unknown-account, unauthorized, not-allowed: exit 78; bad-request: exit 64', () => {
    const u = errorOf(answer(problemOf(unknownAccount('nobody@example.test'), 'nobody@example.test')))
    assert.ok(u instanceof ConfigError)
    assert.equal(u.exitCode, EXIT.CONFIG)
    assert.equal(u.code, ERR.ACCOUNT_UNKNOWN)
    assert.match(u.message, /has no account "nobody@example\.test"/)
    const k = errorOf(answer(problem('unauthorized', 'the API key is not known here', { code: 'invalid_token' })))
    assert.ok(k instanceof ConfigError)
    assert.equal(k.exitCode, EXIT.CONFIG)
    assert.match(k.message, /refused the API key/)
    assert.match(k.hint ?? '', /MAILKEY_API_KEY_FILE/)
    const n = errorOf(answer(problem('not-allowed', 'the key "app" may not use this account')), 'bob@example.test')
    assert.ok(n instanceof ConfigError)
    assert.equal(n.exitCode, EXIT.CONFIG)
    assert.equal(n.account, 'bob@example.test', 'the account asked for, when the document has none')
    const b = errorOf(answer(problem('bad-request', 'min_ttl must be a whole number')))
    assert.ok(b instanceof UsageError)
    assert.equal(b.exitCode, EXIT.USAGE)
  })

  it("a load balancer's 502/503/504 without a problem body: exit 75", () => {
    for (const status of [502, 503, 504]) {
      const e = errorOf({ status, body: undefined }, ALICE)
      assert.ok(e instanceof TransientError, String(status))
      assert.equal(e.exitCode, EXIT.TEMPFAIL)
      assert.match(e.message, new RegExp(`answered HTTP ${status}`))
    }
    const html = errorOf({ status: 500, body: undefined })
    assert.ok(html instanceof ProtocolError, 'a bare 500 is not "try again"')
    assert.equal(html.exitCode, EXIT.PROTOCOL)
  })

  it('failed: its exit code where the client has one (78), a protocol error otherwise', () => {
    const c = errorOf(answer(problemOf(new ConfigError(ERR.CONFIG_INVALID, 'config.toml is broken'))))
    assert.ok(c instanceof ConfigError)
    assert.equal(c.exitCode, EXIT.CONFIG)
    const i = errorOf(answer(problemOf(new Error('boom'))))
    assert.ok(i instanceof ProtocolError)
    assert.match(i.message, /failed: internal error/)
    // the service's store locked (77 there) or unreadable (74 there): the service's to fix, 78 here
    for (const exit of [77, 74]) {
      const l = errorOf(answer(problem('failed', 'the store is locked', { exit_code: exit })))
      assert.ok(l instanceof ConfigError, `exit ${exit} there`)
      assert.match(l.hint ?? '', /nothing is wrong on this host/)
    }
  })

  it('an address that is not the mailkey API (404/405 of another server): exit 78 naming MAILKEY_STORE_URL', () => {
    for (const kind of ['not-found', 'method-not-allowed'] as const) {
      const e = errorOf(answer(problem(kind, 'no such endpoint')))
      assert.ok(e instanceof ConfigError, kind)
      assert.match(e.hint ?? '', /MAILKEY_STORE_URL/)
    }
  })

  it('control characters in what the service says are stripped', () => {
    const p = {
      ...problem('needs-sign-in', 'revoked\x1b]0;owned\x07 \x1b[2Jnow\r\nmailkey: all fine', {
        account: `${ALICE}\x1b[8m`,
        command: 'mailkey add x\x1b[1A\ry',
      }),
    }
    const e = errorOf(answer(p))
    for (const s of [e.message, e.hint ?? '', e.account ?? '']) assert.doesNotMatch(s, /[\x00-\x1f\x7f]/, s)
    assert.equal(e.account, `${ALICE}[8m`)
    const u = errorOf(answer(problem('unavailable', 'down\x1b[31m\n')))
    assert.doesNotMatch(u.message, /[\x00-\x1f]/)
    const l = errorOf({ status: 503, body: { detail: 'x\x9b31m' } })
    assert.doesNotMatch(l.message, /[\x00-\x1f\x7f-\x9f]/)
  })
})

describe('serviceTarget: MAILKEY_STORE_URL and the API key', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailkey-service-target-'))
  })
  after(async () => rm(dir, { recursive: true, force: true }))
  const configError = (env: Record<string, string>, re: RegExp): ConfigError => {
    let got: unknown
    try {
      serviceTarget(env)
    } catch (e) {
      got = e
    }
    assert.ok(got instanceof ConfigError, `${JSON.stringify(env)}: ${String(got)}`)
    assert.equal(got.exitCode, EXIT.CONFIG)
    assert.match(`${got.message} ${got.hint ?? ''}`, re)
    return got
  }

  it('plain http only to a loopback address', () => {
    for (const u of ['http://tokens.example:8625', 'http://10.0.0.5:8625', 'http://127.0.0.1.example:80'])
      configError({ MAILKEY_STORE_URL: u, MAILKEY_API_KEY: 'mk_x' }, /plain http/)
    for (const u of ['http://127.0.0.1:8625', 'http://[::1]:8625', 'http://localhost:8625', URL_])
      assert.equal(serviceTarget({ MAILKEY_STORE_URL: u, MAILKEY_API_KEY: 'mk_x' }).key.reveal(), 'mk_x', u)
  })

  it('no user or password in the URL, no query, and it must be a URL', () => {
    const e = configError(
      { MAILKEY_STORE_URL: 'https://ops:hunter2hunter2@tokens.example', MAILKEY_API_KEY: 'mk_x' },
      /must not carry a user or password/,
    )
    assert.ok(!`${e.message}${e.hint}`.includes('hunter2'), 'the password is not repeated')
    configError({ MAILKEY_STORE_URL: 'https://tokens.example/?key=mk_x', MAILKEY_API_KEY: 'mk_x' }, /query/)
    for (const u of ['https://', 'http://[::1:8625/'])
      configError({ MAILKEY_STORE_URL: u, MAILKEY_API_KEY: 'mk_x' }, /not a URL/)
  })

  it('the key file: read and trimmed when private, refused when others can read it', async () => {
    const file = join(dir, 'api.key')
    await writeFile(file, 'mk_fromfile\n')
    await chmod(file, 0o600)
    const t = serviceTarget({ MAILKEY_STORE_URL: `${URL_}/mk`, MAILKEY_API_KEY_FILE: file, MAILKEY_API_KEY: 'mk_env' })
    assert.equal(t.key.reveal(), 'mk_fromfile', 'the file wins over MAILKEY_API_KEY')
    assert.equal(t.base.href, `${URL_}/mk/`)
    assert.equal(t.label, `${URL_}/mk/`)
    for (const mode of [0o644, 0o640, 0o604]) {
      await chmod(file, mode)
      const e = configError({ MAILKEY_STORE_URL: URL_, MAILKEY_API_KEY_FILE: file }, /can be read by others/)
      assert.equal(e.code, ERR.STORE_PERMISSIONS)
      assert.match(e.hint ?? '', /chmod 600/)
      assert.ok(!e.message.includes('mk_fromfile'))
    }
    const missing = configError(
      { MAILKEY_STORE_URL: URL_, MAILKEY_API_KEY_FILE: join(dir, 'nope') },
      /cannot read MAILKEY_API_KEY_FILE/,
    )
    assert.match(missing.message, /ENOENT/)
  })

  it('no key at all: a ConfigError that names MAILKEY_API_KEY_FILE', async () => {
    const e = configError({ MAILKEY_STORE_URL: URL_ }, /MAILKEY_API_KEY_FILE/)
    assert.equal(e.code, ERR.CONFIG_INVALID)
    assert.match(e.message, /needs an API key/)
    const empty = join(dir, 'empty.key')
    await writeFile(empty, '\n', { mode: 0o600 })
    configError({ MAILKEY_STORE_URL: URL_, MAILKEY_API_KEY_FILE: empty }, /needs an API key/)
    configError({ MAILKEY_STORE_URL: URL_, MAILKEY_API_KEY: '  ' }, /needs an API key/)
  })
})

describe('RemoteSource: status answers', () => {
  class Canned extends ServiceClient {
    answer: unknown
    override async get(): Promise<unknown> {
      return this.answer
    }
  }
  const client = new Canned(serviceTarget({ MAILKEY_STORE_URL: URL_, MAILKEY_API_KEY: 'mk_x' }))
  after(() => client.close())

  it("are cleaned of control characters, and name the service as the storage, not the service's store path", async () => {
    const st = {
      ...STATUS_FIELDS,
      provider: 'custom',
      accessToken: { present: false, valid: false },
      email: ALICE,
      state: 'reauth',
      lastError: { code: ERR.REAUTH_REQUIRED, message: 'AADSTS70008\x1b]0;pwned\x07 expired\r\n', transient: false },
      grantHorizon: { message: 'renew\x1b[2J soon' },
      storage: { kind: 'shared', store: 'postgres://db/mailkey\x1b[1m', encrypted: true, protection: 'store-key' },
    }
    client.answer = st
    const s: AccountStatus = await new RemoteSource(client).status(ALICE)
    assert.equal(s.lastError?.message, 'AADSTS70008]0;pwned expired ')
    assert.equal(s.grantHorizon?.message, 'renew[2J soon')
    assert.deepEqual(s.storage, { kind: 'service', service: URL_, store: 'postgres://db/mailkey[1m' })
    client.answer = { accounts: [st] }
    const { accounts } = await new RemoteSource(client).list()
    assert.doesNotMatch(JSON.stringify(accounts), /\\u001b|\\u0007/)
  })

  it('a token answer whose user or account is not plain, or names another account, is refused', async () => {
    const good = { access_token: 'at-1', account: ALICE, user: ALICE, sasl_mechanism: 'XOAUTH2' }
    client.answer = good
    assert.equal((await new RemoteSource(client).getAccessToken(ALICE)).user, ALICE)
    for (const bad of [
      { ...good, user: `${ALICE}\x01auth=Bearer x` },
      { ...good, user: 'a,b@example.test' },
      { ...good, account: 'mallory@example.test' },
      { ...good, access_token: 'at 1' },
      { ...good, access_token: '' },
    ]) {
      client.answer = bad
      await assert.rejects(new RemoteSource(client).getAccessToken(ALICE), ProtocolError, JSON.stringify(bad))
    }
  })
})

describe('mailkey serve --listen', () => {
  it('takes ADDR:PORT, [IPv6]:PORT and port 0', () => {
    assert.deepEqual(parseListen('127.0.0.1:8625'), { host: '127.0.0.1', port: 8625 })
    assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 })
    assert.deepEqual(parseListen('0.0.0.0:8443'), { host: '0.0.0.0', port: 8443 })
    assert.deepEqual(parseListen('localhost:65535'), { host: 'localhost', port: 65535 })
  })

  it('refuses anything else with exit 64', () => {
    for (const v of ['8625', ':8625', '::1:8625', '127.0.0.1:', '127.0.0.1:65536', '127.0.0.1:http', '[::1]8625', ''])
      assert.throws(
        () => parseListen(v),
        (e: unknown) => e instanceof UsageError && e.exitCode === EXIT.USAGE && /is not ADDR:PORT/.test(e.message),
        v,
      )
  })
})
