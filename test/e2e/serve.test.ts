// The token service (issue 14): three `mailkey serve` replicas (separate processes and homes) over
// a real PostgreSQL and the real OAuth server. One refresh for a storm across replicas; a replica
// killed mid-refresh loses nothing (the fleet checker); a revoked grant is a problem document on
// every replica and exactly one reauth hook; keys missing, wrong, removed and not allowed; `mailkey
// token` working through the service with only a URL and a key; a graceful stop finishing what it
// started; and no secret in any log or metric output.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES } from '../harness/oauth-server.js'
import { checkFleet, signalHost, signInShared } from '../harness/fleet.js'
import { BIN, findLeaks, noteSecrets, transcript } from '../harness/cli.js'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { makeTmpHome } from '../harness/tmp-home.js'
import { addApiKey, api, problemOf, startReplica, tokenPath, writeConfig, type Replica } from '../harness/service.js'
import { sharedLabSkip, startSharedLab, type SharedLab } from '../harness/shared-lab.js'

const skip = sharedLabSkip('the service tests')

const ALICE = 'alice@example.test'
const BOB = 'bob@example.test'
const TTL_SEC = 600
const LEASE_SEC = 3
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** `mailkey ARGS` with a preload that logs every module it loads (test/harness/module-log.mjs). */
async function modulesLoaded(
  args: string[],
  env: Record<string, string>,
  log: string,
): Promise<{ code: number | null; out: string; loaded: string }> {
  await writeFile(log, '')
  const preload = fileURLToPath(new URL('../harness/module-log.mjs', import.meta.url))
  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const c = spawn(process.execPath, ['--import', preload, BIN, ...args], { env: { ...env, MODULE_LOG: log } })
    let out = ''
    c.stdout.on('data', (d: Buffer) => (out += d.toString()))
    c.once('close', (code) => resolve({ code, out }))
  })
  return { ...r, loaded: await readFile(log, 'utf8') }
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await f()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

describe('mailkey serve: three replicas over PostgreSQL', { skip }, () => {
  let shared: SharedLab
  let r: Replica[] = []
  let hookFile: string
  let providers: string
  const keys: Record<string, string> = {}
  const secrets: string[] = []
  const texts: string[] = []

  before(async () => {
    shared = await startSharedLab({
      oauth: { accessTokenTtlSec: TTL_SEC, deviceInterval: 1, rotateRefreshTokens: false },
      fleetEnv: { MAILKEY_STORE_LEASE_SEC: String(LEASE_SEC) },
    })
    secrets.push(shared.pg.password)
    // bob's provider comes from config.toml, with a grant horizon (for the metrics)
    providers = `[providers.lab]\nissuer = "${shared.lab.issuer}"\nclient_id = "${LAB_PUBLIC_CLIENT_ID}"\nscopes = ${JSON.stringify([...MAIL_SCOPES, 'offline_access'])}\nrefresh_token_idle_days = 90\n`
    await writeConfig(shared.admin, providers)
    for (const [e, flags] of [
      [ALICE, undefined],
      [BOB, ['--provider', 'lab']],
    ] as const) {
      const rec = await signInShared(shared.lab, shared.admin, shared.fleet, e, flags ? [...flags] : undefined)
      secrets.push(rec.grant?.refreshToken as string, rec.grant?.accessToken as string)
    }
    for (const [name, scope] of [
      ['ops', ['--all']],
      ['alice-app', ['--accounts', ALICE]],
    ] as const) {
      const k = await addApiKey(shared.admin, name, [...scope])
      assert.equal(k.name, name)
      assert.match(k.key, /^mk_[A-Za-z0-9_-]{43}$/)
      keys[name] = k.key
      secrets.push(k.key)
    }
    hookFile = join(shared.fleet.homes[0]?.dir as string, 'reauth-hooks.log')
    const config = providers + `[hooks]\nreauth = "echo \\"$MAILKEY_ACCOUNT\\" >> '${hookFile}'"\n`
    r = await Promise.all(
      ['r1', 'r2', 'r3'].map((n) => startReplica(shared.fleet, n, { args: ['--cache-ms', '0'], config })),
    )
  })

  after(async () => {
    for (const rep of r) rep.cli.child.kill('SIGKILL')
    await shared?.stop()
  })

  it('hands out the stored token, its SASL form and the status, never a refresh token', async () => {
    const rec = await shared.fleet.record(ALICE)
    const t = await api(r[0]!.url, tokenPath(ALICE), keys.ops)
    assert.equal(t.status, 200, t.text)
    assert.equal(t.body.access_token, rec?.grant?.accessToken)
    assert.equal(t.body.token_type, 'Bearer')
    assert.equal(t.body.account, ALICE)
    assert.ok(Number(t.body.expires_in) > 60 && Number(t.body.expires_in) <= TTL_SEC)
    assert.equal(Date.parse(String(t.body.expires_at)), rec?.grant?.expiresAt)
    assert.equal(t.headers.get('cache-control'), 'no-store')
    const s = await api(r[1]!.url, tokenPath(ALICE, 'sasl=xoauth2&min_ttl=60'), keys.ops)
    assert.equal(s.status, 200, s.text)
    const sasl = s.body.sasl as { mechanism: string; response: string }
    assert.equal(sasl.mechanism, 'XOAUTH2')
    assert.equal(
      Buffer.from(sasl.response, 'base64').toString(),
      `user=${ALICE}\x01auth=Bearer ${rec?.grant?.accessToken}\x01\x01`,
    )
    const st = await api(r[2]!.url, `/v1/accounts/${ALICE}`, keys.ops)
    assert.equal(st.status, 200, st.text)
    assert.equal(st.body.email, ALICE)
    assert.equal(st.body.state, 'active')
    for (const a of [t, s, st]) assert.ok(!a.text.includes(rec?.grant?.refreshToken as string), 'no refresh token')
    assert.ok(!st.text.includes(rec?.grant?.accessToken as string), 'the status has no access token either')
    const list = await api(r[0]!.url, '/v1/accounts', keys['alice-app'])
    assert.deepEqual(
      (list.body.accounts as { email: string }[]).map((a) => a.email),
      [ALICE],
      'a key sees only its accounts',
    )
    const all = await api(r[0]!.url, '/v1/accounts', keys.ops)
    assert.deepEqual((all.body.accounts as { email: string }[]).map((a) => a.email).sort(), [ALICE, BOB])
    texts.push(st.text, list.text, all.text) // not the token answers: they hold tokens by design
  })

  it('keys: missing, wrong, not allowed, then removed on every replica', async () => {
    const none = await api(r[0]!.url, tokenPath(ALICE))
    assert.equal(none.status, 401)
    problemOf(none, 'unauthorized')
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="mailkey"')
    const wrong = await api(r[1]!.url, tokenPath(ALICE), `mk_${randomBytes(32).toString('base64url')}`)
    assert.equal(wrong.status, 401)
    assert.match(String(wrong.headers.get('www-authenticate')), /error="invalid_token"/)
    const notAllowed = await api(r[2]!.url, tokenPath(BOB), keys['alice-app'])
    assert.equal(notAllowed.status, 403)
    problemOf(notAllowed, 'not-allowed')
    const nobody = await api(r[2]!.url, tokenPath('nobody@example.test'), keys['alice-app'])
    assert.equal(nobody.status, 403, 'a restricted key does not learn whether an account exists')
    const unknown = await api(r[0]!.url, tokenPath('nobody@example.test'), keys.ops)
    assert.equal(unknown.status, 404)
    assert.equal(problemOf(unknown, 'unknown-account').exit_code, 78)
    const bad = await api(r[0]!.url, tokenPath(ALICE, 'min_ttl=soon'), keys.ops)
    assert.equal(bad.status, 400)
    problemOf(bad, 'bad-request')
    const rm = await shared.admin.cli(['serve', 'key', 'remove', 'alice-app'])
    assert.equal(rm.code, 0, rm.stderr)
    for (const rep of r)
      await until(`${rep.host.name} to refuse the removed key`, async () =>
        (await api(rep.url, tokenPath(ALICE), keys['alice-app'])).status === 401 ? true : undefined,
      )
    const listed = await shared.admin.cli(['serve', 'key', 'list', '--json'])
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { keys: { name: string }[] }).keys.map((k) => k.name),
      ['ops'],
    )
    assert.ok(!listed.stdout.includes(keys.ops as string), 'a listing never shows a key')
    texts.push(none.text, wrong.text, notAllowed.text, unknown.text, listed.stdout)
  })

  it('a storm across the three replicas after expiry costs one refresh', async () => {
    const from = shared.lab.refreshLog.length
    await shared.fleet.expire(ALICE)
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => api(r[i % 3]!.url, tokenPath(ALICE, 'min_ttl=60'), keys.ops)),
    )
    for (const a of answers) assert.equal(a.status, 200, a.text)
    const tokens = new Set(answers.map((a) => a.body.access_token))
    assert.equal(tokens.size, 1, 'every request got the same token')
    const rec = await shared.fleet.record(ALICE)
    await noteSecrets(rec?.grant?.accessToken)
    secrets.push(rec?.grant?.accessToken as string)
    assert.equal([...tokens][0], rec?.grant?.accessToken)
    const report = await checkFleet(shared.lab, shared.fleet, ALICE, from)
    assert.equal(report.refreshes, 1, 'one refresh for 30 requests on 3 replicas')
    assert.deepEqual(report.reused, [])
    assert.ok(report.storedIsLatest)
  })

  it('mailkey token on a host with only the service URL and a key', async () => {
    const home = await makeTmpHome()
    shared.fleet.homes.push(home)
    const keyFile = join(home.dir, 'api.key')
    await writeFile(keyFile, `${keys.ops}\n`, { mode: 0o600 })
    const env = { ...home.env, MAILKEY_STORE_URL: r[1]!.url, MAILKEY_API_KEY_FILE: keyFile }
    const { runCli } = await import('../harness/cli.js')
    const rec = await shared.fleet.record(ALICE)
    const tok = await runCli(['token', ALICE], env)
    assert.equal(tok.code, 0, tok.stderr)
    assert.equal(tok.stdout, `${rec?.grant?.accessToken}\n`)
    // the fast path: one GET, without loading the full CLI (an error answer falls back to it)
    const fast = await modulesLoaded(['token', ALICE], env, join(home.dir, 'fast.log'))
    assert.equal(fast.out, `${rec?.grant?.accessToken}\n`)
    assert.ok(!fast.loaded.includes('dist/cli/main.js'), 'the full CLI was not loaded')
    const slow = await modulesLoaded(['token', 'nobody@example.test'], env, join(home.dir, 'slow.log'))
    assert.equal(slow.code, 78)
    assert.ok(slow.loaded.includes('dist/cli/main.js'), "an error answer is the full CLI's to report")
    const sasl = await runCli(
      ['token', ALICE, '--sasl', 'oauthbearer', '--host', 'imap.example.test', '--port', '993'],
      env,
    )
    assert.equal(sasl.code, 0, sasl.stderr)
    assert.match(Buffer.from(sasl.stdout.trim(), 'base64').toString(), /^n,a=alice@example\.test,\x01host=imap/)
    // the library, on the same two settings: createMailkey() asks the service
    const lib = (await import(
      new URL('../../dist/index.js', import.meta.url).href
    )) as typeof import('../../src/index.js')
    const mk = lib.createMailkey({
      env: { ...home.env, MAILKEY_STORE_URL: r[1]!.url, MAILKEY_API_KEY: keys.ops as string },
    })
    const got = await mk.getAccessToken(ALICE)
    assert.equal(got.token.reveal(), rec?.grant?.accessToken)
    assert.equal(got.expiresAt, rec?.grant?.expiresAt)
    const sr = await mk.getSaslResponse(ALICE, { mechanism: 'XOAUTH2' })
    assert.equal(
      Buffer.from(sr.response.reveal(), 'base64').toString(),
      `user=${ALICE}\x01auth=Bearer ${rec?.grant?.accessToken}\x01\x01`,
    )
    await assert.rejects(mk.remove(ALICE), /host that has the store/)
    const status = await runCli(['status', ALICE], env)
    assert.equal(status.code, 0, status.stderr)
    assert.match(status.stdout, /token service/)
    const add = await runCli(['add', 'carol@example.test'], env)
    assert.equal(add.code, 64, add.stderr)
    assert.match(add.stderr, /host that has the store/)
    const unknown = await runCli(['token', 'nobody@example.test'], env)
    assert.equal(unknown.code, 78, unknown.stderr)
    await writeFile(keyFile, `mk_${randomBytes(32).toString('base64url')}\n`)
    const wrong = await runCli(['token', ALICE], env)
    assert.equal(wrong.code, 78, wrong.stderr)
    assert.match(wrong.stderr, /refused the API key/)
    const down = await runCli(['token', ALICE], { ...env, MAILKEY_STORE_URL: 'http://127.0.0.1:9/' })
    assert.equal(down.code, 75, down.stderr)
    assert.match(down.stderr, /cannot be reached/)
    const clear = await runCli(['token', ALICE], { ...env, MAILKEY_STORE_URL: 'http://tokens.example.test:8625/' })
    assert.equal(clear.code, 78, clear.stderr)
    assert.match(clear.stderr, /plain http/)
    for (const c of [tok, sasl, status, add, unknown, wrong, down, clear]) texts.push(c.stderr)
  })

  it('a replica killed mid-refresh loses nothing: another recovers the grant after the lease', async () => {
    await shared.fleet.expire(ALICE)
    const from = shared.lab.refreshLog.length
    const hold = shared.lab.holdNextRefreshAnswer()
    const pending = api(r[0]!.url, tokenPath(ALICE), keys.ops).catch((e: unknown) => e)
    await hold.held
    const killed = signalHost(r[0]!.host, 'SIGKILL')
    assert.ok(killed.length >= 2, `the replica and its refresh worker (${killed.length})`)
    assert.ok((await pending) instanceof Error, 'the killed replica answered nothing')
    hold.drop()
    const presented = shared.lab.refreshLog.at(-1)?.presented
    const a = await api(r[1]!.url, tokenPath(ALICE), keys.ops)
    assert.equal(a.status, 200, a.text)
    const rec = await shared.fleet.record(ALICE)
    await noteSecrets(rec?.grant?.accessToken)
    secrets.push(rec?.grant?.accessToken as string)
    assert.equal(a.body.access_token, rec?.grant?.accessToken)
    assert.equal((await shared.lab.introspect(String(a.body.access_token))).active, true)
    const log = shared.lab.refreshLog.slice(from)
    assert.deepEqual(
      log.map((e) => e.presented),
      [presented, presented],
      'the cut-off refresh and the one retry its intent allows',
    )
    assert.ok((await checkFleet(shared.lab, shared.fleet, ALICE, from)).storedIsLatest)
    texts.push(r[0]!.output())
    r = r.slice(1)
  })

  it('a revoked grant: the problem document on every replica, and one reauth hook for the fleet', async () => {
    const rec = await shared.fleet.record(ALICE)
    await shared.lab.revokeGrant(rec?.grant?.refreshToken as string)
    await shared.fleet.expire(ALICE)
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => api(r[i % 2]!.url, tokenPath(ALICE), keys.ops)),
    )
    for (const a of answers) {
      assert.equal(a.status, 409, a.text)
      const p = problemOf(a, 'needs-sign-in')
      assert.equal(p.command, `mailkey add ${ALICE}`)
      assert.equal(p.exit_code, 77)
      assert.equal(p.account, ALICE)
    }
    const lines = await until('the reauth hook', async () => {
      const t = await readFile(hookFile, 'utf8').catch(() => '')
      return t.trim() ? t : undefined
    })
    await sleep(1000) // a second hook, if any replica were to fire one, would have run by now
    const all = (await readFile(hookFile, 'utf8')).trim().split('\n')
    assert.deepEqual(all, [ALICE], `exactly one reauth hook across the replicas (${lines})`)
    const m = await api(r[0]!.url, '/metrics', keys.ops)
    assert.equal(m.status, 200)
    assert.match(m.text, /^mailkey_accounts_needing_sign_in 1$/m)
    assert.match(m.text, /^mailkey_serve_failures_total\{kind="needs-sign-in"\} \d+$/m)
    texts.push(m.text, ...answers.map((a) => a.text))
  })

  it('health, readiness and metrics; metrics need a key and name no secret', async () => {
    const h = await api(r[0]!.url, '/healthz')
    assert.equal(h.status, 200)
    const ready = await api(r[1]!.url, '/readyz')
    assert.equal(ready.status, 200, ready.text)
    const m0 = await api(r[0]!.url, '/metrics')
    assert.equal(m0.status, 401)
    const m = await api(r[1]!.url, '/metrics', keys.ops)
    assert.equal(m.status, 200)
    assert.match(m.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    assert.match(m.text, /^mailkey_serve_requests_total\{route="token",status="200",key="ops"\} \d+$/m)
    assert.match(m.text, /^mailkey_grant_horizon_seconds\{account="bob@example\.test"\} -?\d+$/m)
    // the revoked grant's one failed refresh was led by one of the two replicas left
    let failed = 0
    for (const rep of r) {
      const mm = await api(rep.url, '/metrics', keys.ops)
      failed += Number(/^mailkey_refreshes_total\{outcome="needs_sign_in"\} (\d+)$/m.exec(mm.text)?.[1] ?? 0)
      texts.push(mm.text)
    }
    assert.equal(failed, 1, 'one refresh, led by one replica, ended in needs-sign-in')
    texts.push(m.text)
  })

  it('SIGTERM: not ready, then the answer in flight is finished, then it exits 0', async () => {
    const rep = r[1]!
    await shared.fleet.expire(BOB)
    const hold = shared.lab.holdNextRefreshAnswer()
    const pending = api(rep.url, tokenPath(BOB), keys.ops)
    await hold.held
    rep.cli.child.kill('SIGTERM')
    await until('the replica to stop accepting', async () => {
      const a = await api(rep.url, '/readyz').catch(() => undefined)
      return a === undefined || a.status === 503 ? true : undefined
    })
    hold.release()
    const a = await pending
    assert.equal(a.status, 200, a.text)
    const rec = await shared.fleet.record(BOB)
    await noteSecrets(rec?.grant?.accessToken)
    secrets.push(rec?.grant?.accessToken as string)
    assert.equal(a.body.access_token, rec?.grant?.accessToken)
    const done = await rep.cli.done
    assert.equal(done.code, 0, done.stderr)
    assert.match(done.stdout, /"event":"stopped"/)
  })

  it('no secret in any log, metric or CLI output', async () => {
    const all = [...texts, ...r.map((x) => x.output()), ...transcript.map((t) => t.stderr)]
    const logs = r.map((x) => x.output()).join('')
    assert.match(logs, /"event":"request"/)
    assert.match(logs, /"key":"ops"/)
    assert.deepEqual(findLeaks(all, secrets.filter(Boolean)), [])
    for (const k of Object.values(keys)) assert.ok(!logs.includes(k.slice(3)), 'no key in the logs')
  })
})
