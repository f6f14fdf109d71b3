// The proxy in this test process (src/proxy/server.ts startProxy), with a fake token source and
// scripted upstream servers (test/harness/scripted-server.ts): connection behaviour without the
// binary, a browser or an OAuth server. The real parts are all there: listeners, the door, the
// pre-auth sessions, the local password file (scrypt at a tiny cost), TLS both ways, the splice.
// Timeouts are short options; nothing asserts how long anything took.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startProxy, type ProxyOptions, type RunningProxy, type TokenSource } from '../../src/proxy/server.js'
import type { ListenerConfig } from '../../src/proxy/listeners.js'
import { hashPassword } from '../../src/proxy/passwords.js'
import { Secret } from '../../src/core/secret.js'
import { ERR, ReauthRequiredError, TransientError } from '../../src/errors.js'
import { RECORD_VERSION, accountId, type AccountRecord } from '../../src/domain/account.js'
import type { Paths } from '../../src/config/paths.js'
import type { KeepAliveNote } from '../../src/broker/keep-alive.js'
import { makeTestCA, type TestCA } from '../harness/certs.js'
import { startScriptedServer, type ScriptedServer, type ScriptStep } from '../harness/scripted-server.js'

const ALICE = 'alice@example.test'
const LOCAL_PW = 'local-pass-1234'
const GREETING = '* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] scripted ready\r\n'

/** An upstream that takes the token, then answers NOOP from the spliced client. */
const accepting = (): ScriptStep[] => [
  { send: GREETING },
  { expect: /^(\S+) AUTHENTICATE XOAUTH2 \S+$/i },
  { send: (m) => `${m?.[1]} OK [CAPABILITY IMAP4rev1] Logged in\r\n` },
  { expect: /^(\S+) NOOP$/i },
  { send: (m) => `* 3 EXISTS\r\n${m?.[1]} OK NOOP from upstream\r\n` },
  { expect: /^(\S+) LOGOUT$/i },
  { send: (m) => `* BYE bye\r\n${m?.[1]} OK LOGOUT completed\r\n` },
  { close: 'end' },
]

/** An upstream that refuses every token. */
const refusing = (): ScriptStep[] => [
  { send: GREETING },
  { expect: /^(\S+) AUTHENTICATE XOAUTH2 \S+$/i },
  { send: (m) => `${m?.[1]} NO [AUTHENTICATIONFAILED] token refused\r\n` },
  { close: 'end' },
]

/** What the proxy asked of its token source; `fail` makes getAccessToken throw. */
class FakeTokens implements TokenSource {
  readonly calls: { account: string; forceRefresh: boolean }[] = []
  fail: Error | undefined
  readonly #records = new Map<string, AccountRecord>()
  readonly paths: Paths
  constructor(paths: Paths) {
    this.paths = paths
  }
  add(rec: AccountRecord): void {
    this.#records.set(accountId(rec.settings.email), rec)
  }
  async record(account: string): Promise<AccountRecord | undefined> {
    return this.#records.get(accountId(account))
  }
  async getAccessToken(account: string, o: { forceRefresh?: boolean }): Promise<{ token: Secret }> {
    this.calls.push({ account, forceRefresh: o.forceRefresh === true })
    if (this.fail) throw this.fail
    return { token: new Secret(`token-${this.calls.length}`) }
  }
  async ensureStateDir(): Promise<void> {}
  /** what the next keep-alive passes report */
  notes: KeepAliveNote[] = []
  keepAlivePasses = 0
  async keepAlive(): Promise<KeepAliveNote[]> {
    this.keepAlivePasses++
    return this.notes
  }
}

function recordFor(email: string, imap: string, ca: string): AccountRecord {
  return {
    v: RECORD_VERSION,
    settings: {
      email,
      provider: 'custom',
      clientId: 'in-process-test',
      scopes: ['mail'],
      endpoints: { token: 'https://127.0.0.1:9/token' },
      servers: { imap },
      ca,
      sasl: 'XOAUTH2',
      flow: 'device',
    },
    grant: { grantedAt: 0 },
    state: 'active',
    updatedAt: 0,
  }
}

/** A line-reading IMAP client over a socket it may upgrade to TLS. */
class Client {
  #sock: Socket
  #buf = ''
  #wake: (() => void) | undefined
  closed = false
  readonly ended: Promise<void>
  #ended!: () => void

  constructor(sock: Socket) {
    this.#sock = sock
    this.ended = new Promise((r) => (this.#ended = r))
    this.#attach(sock)
  }

  static async open(port: number): Promise<Client> {
    const sock = connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject))
    return new Client(sock)
  }

  #attach(sock: Socket): void {
    sock.setEncoding('latin1')
    sock.on('data', (d: string) => {
      this.#buf += d
      this.#wake?.()
    })
    sock.on('close', () => {
      this.closed = true
      this.#ended()
      this.#wake?.()
    })
    sock.on('error', () => {})
  }

  send(line: string): void {
    this.#sock.write(line + '\r\n')
  }

  /** the next line, or undefined when the proxy hung up first */
  async line(): Promise<string | undefined> {
    for (;;) {
      const nl = this.#buf.indexOf('\r\n')
      if (nl >= 0) {
        const line = this.#buf.slice(0, nl)
        this.#buf = this.#buf.slice(nl + 2)
        return line
      }
      if (this.closed) return undefined
      await new Promise<void>((r) => (this.#wake = r))
      this.#wake = undefined
    }
  }

  /** lines up to and including the tagged reply for `tag` */
  async reply(tag: string): Promise<string[]> {
    const lines: string[] = []
    for (;;) {
      const l = await this.line()
      if (l === undefined) throw new Error(`closed before the reply to ${tag}; got ${JSON.stringify(lines)}`)
      lines.push(l)
      if (l.startsWith(`${tag} `)) return lines
    }
  }

  /** upgrade to TLS (after the proxy agreed to STARTTLS), trusting `ca` */
  async startTls(ca: string): Promise<void> {
    const plain = this.#sock
    plain.removeAllListeners('data')
    plain.removeAllListeners('close')
    this.#buf = ''
    const tls = tlsConnect({ socket: plain, ca, servername: 'localhost' })
    await new Promise<void>((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject))
    this.#sock = tls
    this.#attach(tls)
  }

  destroy(): void {
    this.#sock.destroy()
  }
}

// a hang (a timer that never fires) fails the suite instead of blocking the run
describe(
  'proxy in process: connection behaviour with a fake token source and scripted upstreams',
  { timeout: 60_000 },
  () => {
    let dir: string
    let ca: TestCA
    let caPem: string
    let paths: Paths
    const cleanup: (() => Promise<void>)[] = []

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'mailkey-proxy-inproc-'))
      ca = await makeTestCA(dir)
      caPem = await readFile(ca.caFile, 'utf8')
      const stateDir = join(dir, 'state')
      await mkdir(stateDir, { mode: 0o700 })
      paths = {
        configDir: dir,
        configFile: join(dir, 'config.toml'),
        stateDir,
        accountsDir: join(stateDir, 'accounts'),
      }
      // the local password file as `mailkey proxy password` writes it, at a tiny scrypt cost
      const entry = await hashPassword(new Secret(LOCAL_PW), { logN: 4, r: 8, p: 1 })
      const file = { v: 1, users: { [accountId(ALICE)]: entry } }
      await writeFile(join(stateDir, 'proxy-passwords.json'), JSON.stringify(file), { mode: 0o600 })
    })
    after(async () => {
      for (const c of cleanup.reverse()) await c()
      await rm(dir, { recursive: true, force: true })
    })

    /** an upstream running `script` and a proxy in front of it; both closed after the suite */
    async function setUp(
      script: (n: number) => ScriptStep[],
      o: Partial<ProxyOptions> & { listener?: Partial<ListenerConfig>; notes?: KeepAliveNote[] } = {},
    ): Promise<{ upstream: ScriptedServer; tokens: FakeTokens; proxy: RunningProxy; port: number; logs: string[] }> {
      const upstream = await startScriptedServer({
        tls: { certFile: ca.certFile, keyFile: ca.keyFile, implicit: true },
        script,
      })
      const tokens = new FakeTokens(paths)
      tokens.add(recordFor(ALICE, `imaps://127.0.0.1:${upstream.port}`, ca.caFile))
      if (o.notes) tokens.notes = o.notes
      const logs: string[] = []
      const { listener, notes: _notes, ...rest } = o
      const proxy = await startProxy({
        tokens,
        listeners: [{ protocol: 'imap', host: '127.0.0.1', port: 0, ...listener }],
        log: (e) => logs.push(JSON.stringify(e)),
        keepAliveIntervalMs: 0,
        ...rest,
      })
      cleanup.push(
        () => proxy.close(0),
        () => upstream.close(),
      )
      return { upstream, tokens, proxy, port: proxy.addresses[0]?.port as number, logs }
    }

    /** connect and read the greeting */
    async function greeted(port: number): Promise<Client> {
      const c = await Client.open(port)
      assert.match((await c.line()) ?? '', /^\* OK \[CAPABILITY .*\] localhost mailkey IMAP proxy ready$/)
      return c
    }

    it('a right local password: the upstream takes the token, and bytes flow both ways after the splice', async () => {
      const { upstream, tokens, logs, port } = await setUp(accepting)
      const c = await greeted(port)
      c.send(`a1 LOGIN ${ALICE} ${LOCAL_PW}`)
      assert.deepEqual(await c.reply('a1'), ['a1 OK Logged in'])
      c.send('a2 NOOP')
      assert.deepEqual(await c.reply('a2'), ['* 3 EXISTS', 'a2 OK NOOP from upstream'])
      c.send('a3 LOGOUT')
      assert.deepEqual(await c.reply('a3'), ['* BYE bye', 'a3 OK LOGOUT completed'])
      await c.ended
      assert.deepEqual(upstream.sessions[0]?.lines, ['mk1 AUTHENTICATE XOAUTH2 <redacted>', 'a2 NOOP', 'a3 LOGOUT'])
      assert.deepEqual(tokens.calls, [{ account: ALICE, forceRefresh: false }])
      assert.ok(logs.some((l) => l.includes('"event":"spliced"')))
    })

    it('a wrong local password: NO [AUTHENTICATIONFAILED], and nothing goes upstream', async () => {
      const { upstream, tokens, port, logs } = await setUp(accepting)
      const c = await greeted(port)
      c.send(`a1 LOGIN ${ALICE} not-the-password`)
      assert.deepEqual(await c.reply('a1'), ['a1 NO [AUTHENTICATIONFAILED] Invalid credentials'])
      c.destroy()
      assert.equal(upstream.connections(), 0)
      assert.deepEqual(tokens.calls, [])
      assert.ok(logs.some((l) => l.includes('"outcome":"bad-credentials"')))
    })

    it('an account not on the listener allow-list: the same answer as a wrong password, even with the right one', async () => {
      const { upstream, tokens, port, logs } = await setUp(accepting, { listener: { accounts: ['bob@example.test'] } })
      const c = await greeted(port)
      c.send(`a1 LOGIN ${ALICE} ${LOCAL_PW}`)
      assert.deepEqual(await c.reply('a1'), ['a1 NO [AUTHENTICATIONFAILED] Invalid credentials'])
      c.destroy()
      assert.equal(upstream.connections(), 0)
      assert.deepEqual(tokens.calls, [])
      assert.ok(logs.some((l) => l.includes('account not allowed on this listener')))
    })

    it('STARTTLS towards the client: plain bytes sent behind STARTTLS are dropped, the login goes over TLS', async () => {
      const tls = {
        mode: 'starttls' as const,
        cert: await readFile(ca.certFile, 'utf8'),
        key: await readFile(ca.keyFile, 'utf8'),
      }
      const { upstream, port } = await setUp(accepting, { listener: { tls } })
      const c = await Client.open(port)
      assert.match((await c.line()) ?? '', /^\* OK \[CAPABILITY [^\]]*STARTTLS[^\]]*\]/)
      // an injected command in the same packet as STARTTLS (CVE-2011-0411 class)
      c.send('a0 STARTTLS\r\nx1 CAPABILITY')
      assert.match((await c.reply('a0')).at(-1) ?? '', /^a0 OK/)
      await c.startTls(caPem)
      c.send('a1 CAPABILITY')
      const caps = await c.reply('a1')
      assert.equal(caps.length, 2, `only the reply to a1 over TLS, got ${JSON.stringify(caps)}`)
      assert.doesNotMatch(caps[0] ?? '', /STARTTLS/)
      c.send(`a2 LOGIN ${ALICE} ${LOCAL_PW}`)
      assert.deepEqual(await c.reply('a2'), ['a2 OK Logged in'])
      c.send('a3 NOOP')
      assert.deepEqual(await c.reply('a3'), ['* 3 EXISTS', 'a3 OK NOOP from upstream'])
      c.destroy()
      assert.equal(upstream.sessions[0]?.lines[1], 'a3 NOOP')
    })

    it('the pre-auth deadline: a client that does not log in in time is disconnected', async () => {
      const { port, logs } = await setUp(accepting, { preAuthTimeoutMs: 150 })
      const c = await greeted(port)
      c.send('a1 NOOP')
      assert.deepEqual(await c.reply('a1'), ['a1 OK NOOP completed'])
      assert.equal(await c.line(), undefined, 'the proxy hangs up')
      assert.ok(logs.some((l) => l.includes('"event":"pre-auth-timeout"')))
    })

    it('the upstream refuses the token: one forced refresh, then NO [CONTACTADMIN] to the client', async () => {
      const { upstream, tokens, port, logs } = await setUp(refusing)
      const c = await greeted(port)
      c.send(`a1 LOGIN ${ALICE} ${LOCAL_PW}`)
      assert.deepEqual(await c.reply('a1'), [
        'a1 NO [CONTACTADMIN] The mailkey proxy cannot log in to this account: see "mailkey status"',
      ])
      c.destroy()
      assert.deepEqual(
        tokens.calls.map((x) => x.forceRefresh),
        [false, true],
      )
      assert.equal(upstream.connections(), 2)
      assert.ok(logs.some((l) => l.includes('"outcome":"config"') && l.includes('freshly refreshed token')))
    })

    it('a token source with a passing failure: NO [UNAVAILABLE]; the client may try again on the same connection', async () => {
      const { tokens, port } = await setUp(accepting)
      tokens.fail = new TransientError(ERR.OAUTH_TRANSIENT, 'the token endpoint is down')
      const c = await greeted(port)
      c.send(`a1 LOGIN ${ALICE} ${LOCAL_PW}`)
      assert.deepEqual(await c.reply('a1'), ['a1 NO [UNAVAILABLE] Temporary failure, try again later'])
      tokens.fail = undefined
      c.send(`a2 LOGIN ${ALICE} ${LOCAL_PW}`)
      assert.deepEqual(await c.reply('a2'), ['a2 OK Logged in'])
      c.destroy()
    })

    it('a token source whose grant is dead: NO [AUTHENTICATIONFAILED] with the sign-in hint', async () => {
      const { tokens, port } = await setUp(accepting)
      tokens.fail = new ReauthRequiredError(ERR.REAUTH_REQUIRED, 'the grant was revoked')
      const c = await greeted(port)
      c.send(`a1 LOGIN ${ALICE} ${LOCAL_PW}`)
      assert.deepEqual(await c.reply('a1'), [
        'a1 NO [AUTHENTICATIONFAILED] This account needs a new sign-in: run "mailkey status"',
      ])
      c.destroy()
    })

    it('close() ends the sessions still before login, and stops listening', async () => {
      const { proxy, port } = await setUp(accepting)
      const c = await greeted(port)
      assert.equal(proxy.connections(), 1)
      await proxy.close(50)
      assert.equal(await c.line(), undefined, 'the proxy hung up')
      await assert.rejects(Client.open(port), /ECONNREFUSED/)
    })

    it("keep-alive: the proxy runs the token source's pass at start and logs what it reports", async () => {
      const notes: KeepAliveNote[] = [
        { account: ALICE, refresh: { ok: true } },
        { account: 'bob@example.test', refresh: { ok: false, message: 'invalid_grant' }, ending: 'ends on 2027-01-01' },
      ]
      const { tokens, logs } = await setUp(accepting, { keepAliveIntervalMs: 3_600_000, notes })
      while (!logs.some((l) => l.includes('grant-ending'))) await new Promise((r) => setTimeout(r, 10))
      assert.equal(tokens.keepAlivePasses, 1)
      const events = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.account)
      assert.deepEqual(events, [
        { level: 'info', event: 'keepalive', account: ALICE, outcome: 'ok' },
        { level: 'warn', event: 'keepalive', account: 'bob@example.test', outcome: 'failed', msg: 'invalid_grant' },
        { level: 'warn', event: 'grant-ending', account: 'bob@example.test', msg: 'ends on 2027-01-01' },
      ])
    })
  },
)
