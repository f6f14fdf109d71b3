// Crash safety: kill -9 at random moments of refreshes, hundreds of times. Whatever the moment,
// the store must afterwards hold a usable grant and the newest refresh token (the one the server
// considers current: with rotation on, every older one is dead).
// - the credential helper (`mailkey token`), as a mail client killing its PassCmd;
// - `mailkey proxy` while a client's login makes it refresh;
// - the same helper on an encrypted store (the key reaches the refresh worker through a pipe);
// - the refresh worker itself, against a server that keeps its refresh tokens (Google-like).
// Rounds: a short run by default (npm test), the full soak with MAILKEY_SOAK=1 (`npm run soak`, which
// CI runs once, on Node 20). Each count can be set: MAILKEY_KILL_ROUNDS (default 20, soak 200),
// MAILKEY_PROXY_KILL_ROUNDS (20, soak 100), MAILKEY_ENC_KILL_ROUNDS (10, soak 50),
// MAILKEY_WORKER_KILL_ROUNDS (10, soak 50); docs/security.md has a longer soak.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { spawn, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { join } from 'node:path'
import { startOAuthServer, introspectionUrl, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { BIN, runCli, noteSecrets, findLeaks, transcript } from '../harness/cli.js'
import { labFlags, signIn } from '../harness/sign-in.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'
import { FileStore } from '../../src/store/file-store.js'
import { StoreKeys } from '../../src/store/protection.js'
import { resolvePaths } from '../../src/config/paths.js'
import type { AccountRecord } from '../../src/domain/account.js'
import { isStale, readLock } from '../../src/store/lock.js'

const EMAIL = 'alice@example.test'
const SOAK = process.env.MAILKEY_SOAK === '1'
// the proxy's short run stays at 20: from 20 rounds on it also checks that kills landed on both sides of a login
const rounds = (name: string, short: number, soak: number): number => Number(process.env[name] ?? (SOAK ? soak : short))
const HELPER_ROUNDS = rounds('MAILKEY_KILL_ROUNDS', 20, 200)
const WORKER_ROUNDS = rounds('MAILKEY_WORKER_KILL_ROUNDS', 10, 50)
const ENC_ROUNDS = rounds('MAILKEY_ENC_KILL_ROUNDS', 10, 50)
const PROXY_ROUNDS = rounds('MAILKEY_PROXY_KILL_ROUNDS', 20, 100)
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const rand = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo))

if (!dovecotAvailable() && process.env.CI)
  throw new Error(`the kill tests need Dovecot in CI: apt-get install ${DOVECOT_INSTALL_HINT}`)
if (!dovecotAvailable()) console.error('\n*** SKIPPING the proxy kill rounds: Dovecot missing ***\n')

/** a lab, a home with alice signed in, and the checks every round ends with */
async function setup(
  opts: { rotate?: boolean; imapUrl?: (lab: LabServer) => Promise<string[]> } = {},
): Promise<{ lab: LabServer; home: TmpHome; env: Record<string, string> }> {
  const lab = await startOAuthServer({
    deviceInterval: 1,
    ...(opts.rotate === false ? { rotateRefreshTokens: false } : {}),
  })
  const home = await makeTmpHome()
  await signIn(lab, home.env, EMAIL, [...labFlags(lab), ...(opts.imapUrl ? await opts.imapUrl(lab) : [])])
  return { lab, home, env: { ...home.env } }
}

/** every token these rounds saw, for the leak check at the end */
const allSecrets: string[] = []

class Soak {
  readonly secrets = allSecrets
  killedDuringRun = 0
  killedDuringRefresh = 0
  readonly lab: LabServer
  readonly env: Record<string, string>
  readonly pass: string | undefined
  constructor(lab: LabServer, env: Record<string, string>, pass?: string) {
    this.lab = lab
    this.env = env
    this.pass = pass
  }
  get file(): string {
    return recordFile(this.env, EMAIL)
  }
  get lock(): string {
    return this.file.replace(/\.json$/, '.lock')
  }
  #store: FileStore | undefined
  /** the record as the library opens it (one StoreKeys: the passphrase is derived once) */
  async record(): Promise<AccountRecord> {
    const paths = resolvePaths(this.env)
    this.#store ??= new FileStore(
      paths,
      new StoreKeys(paths, {
        env: this.env,
        useAgent: false,
        ...(this.pass ? { passphraseCommand: `printf '%s\\n' '${this.pass}'` } : {}),
      }),
    )
    return (await this.#store.read(EMAIL)) as AccountRecord
  }
  /** make the stored access token look expired (the test's hand on the clock) */
  async expire(): Promise<void> {
    const raw = JSON.parse(await readFile(this.file, 'utf8')) as AccountRecord
    raw.grant = { ...(raw.grant as NonNullable<AccountRecord['grant']>), expiresAt: Date.now() - 1000 }
    await writeFile(this.file, JSON.stringify(raw), { mode: 0o600 })
  }
  /** the refresh the killed process started finishes in its worker: wait until the lock is gone or stale (as the next caller would judge it) */
  async settle(): Promise<void> {
    for (let i = 0; i < 400 && existsSync(this.lock); i++) {
      const info = await readLock(this.lock).catch(() => undefined)
      if (info && isStale(info)) return // its holder is gone: the next caller takes it over
      await sleep(25)
    }
  }
  /**
   * One round on the credential helper: an expired token, a server that takes 0-100 ms to answer
   * (so kills land before, during and after the request), `mailkey token` killed after 0-maxMs
   * (or, every other round, 0-100 ms after its request reached the server), the worker left to
   * finish, then the invariant.
   */
  async helperRound(round: number, maxMs: number, note: string): Promise<void> {
    await this.expire()
    this.lab.injectTokenFault({ grantType: 'refresh_token', delayMs: rand(0, 100) })
    const before = this.lab.counts.refresh
    const child = spawn(process.execPath, [BIN, 'token', EMAIL], { env: this.env, stdio: 'ignore' })
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)))
    if (round % 2 === 1) {
      // every other round: once the refresh has reached the server, within its 0-100 ms answer, so
      // kills land mid-refresh however slowly a busy machine starts the process
      const watchdog = Date.now() + 30_000
      while (this.lab.counts.refresh === before && child.exitCode === null && Date.now() < watchdog) await sleep(5)
      await sleep(rand(0, 100))
    } else await sleep(rand(0, maxMs))
    if (child.exitCode === null && child.kill('SIGKILL')) this.killedDuringRun++
    await exited
    await this.settle()
    this.lab.clearFaults()
    if (this.lab.counts.refresh > before) this.killedDuringRefresh++
    await this.check(round, note)
  }

  /** the invariant: a usable grant, and the refresh token the server considers current */
  async check(round: number, note: string): Promise<void> {
    const rec = await this.record()
    assert.equal(rec.state, 'active', `round ${round} (${note}): ${rec.lastError?.message}`)
    const rt = rec.grant?.refreshToken as string
    if (process.env.KILL_DEBUG)
      console.error(
        JSON.stringify({
          round,
          lastError: rec.lastError,
          refreshedAt: rec.grant?.refreshedAt,
          now: Date.now(),
          lock: existsSync(this.lock),
          alive: await this.lab.refreshTokenAlive(rt),
          counts: this.lab.counts.refresh,
        }),
      )
    const at = rec.grant?.accessToken as string
    this.secrets.push(rt, at)
    await noteSecrets(rt, at)
    assert.equal(
      await this.lab.refreshTokenAlive(rt),
      true,
      `round ${round} (${note}): the stored refresh token is the newest, and alive`,
    )
  }
}

describe('kill -9 at random moments of refreshes', () => {
  it(`the credential helper, ${HELPER_ROUNDS} rounds: the store always holds the newest refresh token`, async () => {
    const { lab, home, env } = await setup()
    const soak = new Soak(lab, env)
    try {
      for (let round = 0; round < HELPER_ROUNDS; round++) await soak.helperRound(round, 250, 'helper killed')
      assert.ok(
        soak.killedDuringRun >= HELPER_ROUNDS / 4,
        `kills that landed while the helper ran: ${soak.killedDuringRun}`,
      )
      console.error(
        `helper: ${HELPER_ROUNDS} rounds, ${soak.killedDuringRun} kills while it ran, ${soak.killedDuringRefresh} rounds with a refresh at the server`,
      )
      // one more ordinary refresh: the grant is alive
      const f = await runCli(['token', EMAIL, '--force-refresh'], env)
      assert.equal(f.code, 0, f.stderr)
      soak.secrets.push(f.stdout.trim())
      await noteSecrets(f.stdout.trim())
    } finally {
      await lab.close()
      await home.cleanup()
    }
  })

  it(`the refresh worker itself, ${WORKER_ROUNDS} rounds, against a server that keeps its refresh tokens: the grant survives`, async () => {
    const { lab, home, env } = await setup({ rotate: false })
    const soak = new Soak(lab, env)
    let workerKills = 0
    try {
      for (let round = 0; round < WORKER_ROUNDS; round++) {
        await soak.expire()
        lab.injectTokenFault({ grantType: 'refresh_token', delayMs: rand(0, 100) })
        const child = spawn(process.execPath, [BIN, 'token', EMAIL], { env, stdio: 'ignore' })
        const exited = new Promise((r) => child.once('exit', r).once('error', r))
        // find the worker through the lock it adopted, however long a busy machine takes to start
        // it (other test files run beside this one), and kill it at a random moment of its refresh
        const watchdog = Date.now() + 30_000
        while (child.exitCode === null && child.signalCode === null && Date.now() < watchdog) {
          const pid = (await readLock(soak.lock).catch(() => undefined))?.pid
          if (pid && pid !== child.pid) {
            await sleep(rand(0, 120))
            try {
              process.kill(pid, 'SIGKILL')
              workerKills++
            } catch {
              /* done already */
            }
            break
          }
          await sleep(5)
        }
        await exited
        await soak.settle()
        lab.clearFaults()
        // the next caller repairs whatever the kill left: a stale lock, no new token
        const next = await runCli(['token', EMAIL], env, { timeoutMs: 60_000 })
        assert.equal(next.code, 0, `round ${round}: ${next.stderr}`)
        await soak.check(round, 'worker killed')
      }
      assert.ok(workerKills >= WORKER_ROUNDS / 4, `workers killed: ${workerKills}`)
      console.error(`worker: ${WORKER_ROUNDS} rounds, ${workerKills} workers killed`)
    } finally {
      await lab.close()
      await home.cleanup()
    }
  })

  it(`the helper on an encrypted store, ${ENC_ROUNDS} rounds (its key reaches the worker through a pipe)`, async () => {
    const { lab, home, env } = await setup()
    const pass = 'kill soak pass phrase'
    const m = await runCli(['store', 'migrate', '--to', 'passphrase'], env, { stdin: pass + '\n' })
    assert.equal(m.code, 0, m.stderr)
    const u = await runCli(['unlock', '--for', '30m'], env, { stdin: pass + '\n' })
    assert.equal(u.code, 0, u.stderr)
    const soak = new Soak(lab, env, pass)
    try {
      for (let round = 0; round < ENC_ROUNDS; round++) {
        await soak.helperRound(round, 300, 'helper killed, encrypted store')
        assert.ok(
          !(await readFile(soak.file, 'utf8')).includes((await soak.record()).grant?.refreshToken as string),
          'still sealed',
        )
      }
      assert.ok(soak.killedDuringRun >= ENC_ROUNDS / 4)
    } finally {
      await runCli(['lock'], env)
      await lab.close()
      await home.cleanup()
    }
  })

  it(
    `mailkey proxy killed while a client's login refreshes, ${PROXY_ROUNDS} rounds`,
    { skip: dovecotAvailable() ? false : 'Dovecot not installed' },
    async () => {
      let dovecot: Dovecot | undefined
      const { lab, home, env } = await setup({
        imapUrl: async (l) => {
          dovecot = await startDovecot({ introspectionUrl: introspectionUrl(l.issuer) })
          return ['--imap-url', `imaps://localhost:${dovecot.ports.imaps}`, '--ca', dovecot.caFile]
        },
      })
      const soak = new Soak(lab, env)
      const pw = 'proxy local password 9'
      assert.equal((await runCli(['proxy', 'password', EMAIL], env, { stdin: pw + '\n' })).code, 0)
      await mkdir(join(env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
      let loginsDone = 0
      try {
        for (let round = 0; round < PROXY_ROUNDS; round++) {
          await soak.expire()
          lab.injectTokenFault({ grantType: 'refresh_token', delayMs: rand(0, 100) })
          const proxy: ChildProcess = spawn(process.execPath, [BIN, 'proxy', '--imap-port', '0'], {
            env,
            stdio: ['ignore', 'pipe', 'ignore'],
          })
          const port = await new Promise<number>((resolve, reject) => {
            let out = ''
            proxy.stdout?.on('data', (d: Buffer) => {
              out += d.toString()
              const m = /"port":(\d+)/.exec(out)
              if (m) resolve(Number(m[1]))
            })
            proxy.once('exit', () => reject(new Error('the proxy exited before listening')))
          })
          // a client logs in: the proxy refreshes the expired token, then logs in upstream
          const sock = connect(port, '127.0.0.1')
          sock.on('error', () => {
            /* the proxy is killed under it */
          })
          let reply = ''
          let sent = false
          let answered: () => void = () => undefined
          const loginAnswered = new Promise<void>((resolve) => (answered = resolve))
          sock.on('close', () => answered())
          sock.on('data', (d: Buffer) => {
            reply += d.toString()
            if (/^\* OK/m.test(reply) && !sent) {
              sent = true
              sock.write(`a1 LOGIN "${EMAIL}" "${pw}"\r\n`)
            }
            if (/^a1 /m.test(reply)) answered()
          })
          // Every other round waits for the login's answer and kills just after it; the others kill
          // at a random moment from the start. So kills land on both sides of a finished login
          // however fast the machine is (other test files run beside this one).
          if (round % 2 === 1 && !process.env.KILL_PROXY_WAIT) {
            await Promise.race([loginAnswered, sleep(30_000)])
            await sleep(rand(0, 200))
          } else await sleep(Number(process.env.KILL_PROXY_WAIT ?? 0) || rand(30, 2000))
          if (/a1 OK/.test(reply)) loginsDone++
          if (process.env.KILL_DEBUG) console.error(JSON.stringify(reply.slice(0, 300)))
          proxy.kill('SIGKILL')
          sock.destroy()
          await new Promise((r) => proxy.once('exit', r))
          await soak.settle()
          lab.clearFaults()
          await soak.check(round, 'proxy killed')
        }
        console.error(`proxy: ${PROXY_ROUNDS} rounds, ${loginsDone} logins had finished before the kill`)
        if (PROXY_ROUNDS >= 20)
          assert.ok(
            loginsDone > 0 && loginsDone < PROXY_ROUNDS,
            `kills landed both before and after logins finished (${loginsDone} of ${PROXY_ROUNDS} had)`,
          )
      } finally {
        await dovecot?.stop()
        await lab.close()
        await home.cleanup()
      }
    },
  )

  it('no secret in any output of these rounds', () => {
    // the only CLI output collected here is from sign-ins, migrations and "token" (its stdout is the token)
    assert.ok(allSecrets.length >= 2 * HELPER_ROUNDS, `the rounds collected their tokens (${allSecrets.length})`)
    assert.deepEqual(
      findLeaks(
        transcript.map((t) => (t.args[0] === 'token' ? '' : t.stdout) + t.stderr),
        allSecrets,
      ),
      [],
    )
  })
})
