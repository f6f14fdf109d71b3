// The encrypted token store end to end, with the real OAuth server and the real CLI: migrations
// (passphrase, the OS keyring through a real Secret Service, back to plain), locked and unlocked
// use, a refresh whose worker gets the key only through its pipe, the agent's fast path, and
// kill -9 in the middle of migrations.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { startOAuthServer, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import { BIN, runCli, transcript, findLeaks, noteSecrets, have } from '../harness/cli.js'
import { labFlags, signIn } from '../harness/sign-in.js'
import { runInPty } from '../harness/pty.js'
import { KEYRING_INSTALL_HINT, keyringAvailable, startKeyring, type Keyring } from '../harness/keyring.js'
import { fastToken } from '../../src/cli/fast.js'
import { FileStore } from '../../src/store/file-store.js'
import { StoreKeys, readMeta } from '../../src/store/protection.js'
import { resolvePaths } from '../../src/config/paths.js'

const ACCOUNTS = ['alice@example.test', 'bob@example.test']
const PASS = 'store pass phrase 1'

const missing = [!keyringAvailable() && 'gnome-keyring/dbus/libsecret-tools', !have('script') && 'bsdutils'].filter(
  Boolean,
)
if (missing.length && process.env.CI)
  throw new Error(`the store tests need ${missing.join(', ')} in CI: ${KEYRING_INSTALL_HINT} bsdutils`)
if (missing.length) console.error(`\n*** SKIPPING encrypted-store tests: ${missing.join(', ')} missing ***\n`)

describe(
  'the encrypted token store, end to end',
  { skip: missing.length ? `${missing.join(', ')} not installed` : false },
  () => {
    let lab: LabServer
    let home: TmpHome
    let keyring: Keyring
    let env: Record<string, string>
    const secrets: string[] = [PASS]
    /** the records as the library opens them, with the passphrase */
    const opened = async (pass = PASS): Promise<Record<string, { at?: string; rt?: string }>> => {
      const paths = resolvePaths(env)
      const store = new FileStore(
        paths,
        new StoreKeys(paths, { env, useAgent: false, passphraseCommand: `printf '%s\\n' '${pass}'` }),
      )
      const out: Record<string, { at?: string; rt?: string }> = {}
      for (const a of ACCOUNTS) {
        const r = await store.read(a)
        out[a] = {
          ...(r?.grant?.accessToken ? { at: r.grant.accessToken } : {}),
          ...(r?.grant?.refreshToken ? { rt: r.grant.refreshToken } : {}),
        }
      }
      return out
    }
    const note = async (o: Record<string, { at?: string; rt?: string }>): Promise<void> => {
      for (const v of Object.values(o)) for (const s of [v.at, v.rt]) if (s) secrets.push(s)
      await noteSecrets(...Object.values(o).flatMap((v) => [v.at, v.rt]))
    }

    before(async () => {
      lab = await startOAuthServer({ deviceInterval: 1 })
      home = await makeTmpHome()
      env = { ...home.env }
      for (const email of ACCOUNTS) await signIn(lab, env, email, labFlags(lab), secrets)
    })
    after(async () => {
      await runCli(['lock'], env).catch(() => undefined)
      await lab?.close()
      await keyring?.stop()
      await home?.cleanup()
    })

    it('migrates plain -> passphrase: no token left in any file, status and list still work while locked', async () => {
      const plain = await opened()
      await note(plain)
      const r = await runCli(['store', 'migrate', '--to', 'passphrase'], env, { stdin: PASS + '\n' })
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stderr, /now encrypted \(passphrase\): 2 account/)
      for (const a of ACCOUNTS) {
        const text = await readFile(recordFile(env, a), 'utf8')
        assert.ok(
          !text.includes(plain[a]?.rt as string) && !text.includes(plain[a]?.at as string),
          `${a}: no token in the file`,
        )
      }
      assert.deepEqual(await opened(), plain, 'the same tokens, sealed')
      const st = await runCli(['status', 'alice@example.test'], env)
      assert.equal(st.code, 0, st.stderr)
      assert.match(st.stdout, /tokens encrypted, key under a passphrase/)
      assert.match(st.stdout, /access token +valid for/)
      const list = await runCli(['list'], env)
      assert.equal(list.code, 0, list.stderr)
      const store = await runCli(['store'], env)
      assert.match(store.stdout, /encrypted; the key is protected by a passphrase/)
      assert.match(store.stdout, /2 \(2 encrypted\)/)
    })

    it('locked: mailkey token says so with the command to run (exit 77); a wrong passphrase is named', async () => {
      const t = await runCli(['token', 'alice@example.test'], env)
      assert.equal(t.code, 77)
      assert.equal(t.stdout, '')
      assert.match(t.stderr, /encrypted with a passphrase and locked[\s\S]*mailkey unlock/)
      // the proxy unlocks at start, or refuses to start: never a listener that can only fail logins
      const px = await runCli(['proxy', '--imap-port', '0'], env, { timeoutMs: 20_000 })
      assert.equal(px.code, 77, px.stderr)
      assert.doesNotMatch(px.stdout, /listening/)
      assert.match(px.stderr, /locked/)
      const wrong = await runCli(['unlock'], env, { stdin: 'not the pass phrase\n' })
      assert.equal(wrong.code, 77)
      assert.match(wrong.stderr, /wrong passphrase/)
    })

    it('passphrase_command in [store] opens it for every command', async () => {
      const pwFile = join(home.dir, 'store-pass')
      await writeFile(pwFile, PASS + '\n', { mode: 0o600 })
      const cfgDir = join(env.XDG_CONFIG_HOME as string, 'mailkey')
      await mkdir(cfgDir, { recursive: true })
      await writeFile(join(cfgDir, 'config.toml'), `[store]\npassphrase_command = "cat '${pwFile}'"\n`)
      const t = await runCli(['token', 'bob@example.test'], env)
      assert.equal(t.code, 0, t.stderr)
      assert.equal(t.stdout.trim(), (await opened())['bob@example.test']?.at)
      await rm(join(cfgDir, 'config.toml'))
    })

    it('a refresh on a terminal: the passphrase typed once, the worker gets the key through its pipe, the rotated refresh token is sealed on disk', async () => {
      const before = await opened()
      lab.resetCounts()
      const tty = runInPty([BIN, 'token', 'alice@example.test', '--force-refresh'], env)
      await tty.waitFor(/Passphrase for the mailkey token store:/)
      tty.type(PASS + '\r')
      const code = await tty.end(30_000)
      assert.equal(code, 0, tty.screen())
      assert.equal(lab.counts.refresh, 1, 'one refresh at the server')
      const after = await opened()
      await note(after)
      assert.notEqual(
        after['alice@example.test']?.rt,
        before['alice@example.test']?.rt,
        'rotated, and the new one is on disk',
      )
      assert.match(
        tty.screen(),
        new RegExp(after['alice@example.test']?.at as string),
        'the new access token was printed',
      )
      assert.equal((await lab.introspect(after['alice@example.test']?.at as string)).active, true)
      const text = await readFile(recordFile(env, 'alice@example.test'), 'utf8')
      assert.ok(!text.includes(after['alice@example.test']?.rt as string), 'sealed')
      assert.ok(!tty.screen().includes(PASS), 'the passphrase was not echoed')
    })

    it('unlock starts the agent; token then needs nothing, also on the fast path; lock forgets', async () => {
      const u = await runCli(['unlock', '--for', '10m'], env, { stdin: PASS + '\n' })
      assert.equal(u.code, 0, u.stderr)
      assert.match(u.stderr, /Unlocked until/)
      const t = await runCli(['token', 'bob@example.test'], env)
      assert.equal(t.code, 0, t.stderr)
      const want = (await opened())['bob@example.test']?.at
      assert.equal(t.stdout.trim(), want)
      // the fast path itself (no config.toml, the default margin): the key from the agent
      assert.equal(await fastToken(['token', 'bob@example.test'], env), want)
      const st = await runCli(['store'], env)
      assert.match(st.stdout, /agent +running, unlocked until/)
      const l = await runCli(['lock'], env)
      assert.match(l.stderr, /Locked/)
      assert.equal(await fastToken(['token', 'bob@example.test'], env), undefined, 'locked: the fast path steps aside')
      assert.equal((await runCli(['token', 'bob@example.test'], env)).code, 77)
    })

    it('survives kill -9 at random moments of migrations: every round, every account opens with its newest tokens', async () => {
      const want = await opened()
      // a short run in npm test; the soak (MAILKEY_SOAK=1, npm run soak) runs the 12 rounds
      const rounds = Number(process.env.MAILKEY_KILL_ROUNDS ?? (process.env.MAILKEY_SOAK === '1' ? 12 : 6))
      let killedMidway = 0
      for (let i = 0; i < rounds; i++) {
        const child = spawn(process.execPath, [BIN, 'store', 'migrate', '--to', 'passphrase'], {
          env,
          stdio: ['pipe', 'ignore', 'pipe'],
        })
        child.stdin.end(`${PASS}\n${PASS}\n`) // the present passphrase, then the new one (the same)
        let err = ''
        child.stderr.on('data', (d: Buffer) => (err += d.toString()))
        const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)))
        await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 1500)))
        child.kill('SIGKILL')
        const code = await exited
        if (code === null) killedMidway++
        // whatever the moment, everything opens, with the same tokens
        assert.deepEqual(await opened(), want, `round ${i}: ${err}`)
        assert.ok((readMeta(resolvePaths(env))?.keys.length ?? 0) >= 1)
      }
      // and running it once more always finishes the job with one key left
      const done = await runCli(['store', 'migrate', '--to', 'passphrase'], env, { stdin: `${PASS}\n${PASS}\n` })
      assert.equal(done.code, 0, done.stderr)
      assert.equal(readMeta(resolvePaths(env))?.keys.length, 1)
      assert.deepEqual(await opened(), want)
      assert.ok(killedMidway > 0, 'some rounds were really interrupted')
      const left = (await readdir(join(env.XDG_STATE_HOME as string, 'mailkey', 'accounts'))).filter((f) =>
        f.endsWith('.tmp'),
      )
      assert.ok(left.length <= rounds, 'at most a temp file per killed write')
    })

    it('migrates to the OS keyring (a real Secret Service): no passphrase needed, the key is in the keyring; a missing entry locks the store', async () => {
      const want = await opened()
      // no keyring reachable: the migration says so, with the commands to run, and changes nothing
      const noBus = { ...env, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent' }
      const nokr = await runCli(['store', 'migrate', '--to', 'keyring'], noBus, { stdin: PASS + '\n' })
      assert.equal(nokr.code, 74, nokr.stderr)
      assert.match(nokr.stderr, /the OS keyring cannot store mailkey's key \(.*DBus/)
      assert.match(nokr.stderr, /"mailkey store migrate --to keyring" again.*"mailkey store migrate --to passphrase"/s)
      assert.equal(readMeta(resolvePaths(env))?.protection, 'passphrase')
      assert.equal(readMeta(resolvePaths(env))?.keys.length, 1)
      assert.deepEqual(await opened(), want)
      // the Secret Service starts here, for the one test that uses it; the tests before it have no bus
      keyring = await startKeyring()
      const kenv = { ...env, ...keyring.env }
      const r = await runCli(['store', 'migrate', '--to', 'keyring'], kenv, { stdin: PASS + '\n' })
      assert.equal(r.code, 0, r.code === 0 ? '' : `${r.stderr}\n${keyring.diagnose()}`)
      const meta = readMeta(resolvePaths(env))
      assert.equal(meta?.protection, 'keyring')
      const kid = meta?.current as string
      const stored = keyring.lookup('mailkey', `store-key-${kid}`)
      assert.ok(stored && Buffer.from(stored, 'base64').length === 32, 'a 32-byte key in the Secret Service')
      secrets.push(stored)
      const t = await runCli(['token', 'alice@example.test'], kenv)
      assert.equal(t.code, 0, t.code === 0 ? '' : `${t.stderr}\n${keyring.diagnose()}`)
      assert.equal(t.stdout.trim(), want['alice@example.test']?.at)
      const st = await runCli(['status', 'alice@example.test'], kenv)
      assert.match(st.stdout, /key in the OS keyring/)
      // without the session bus (no keyring reachable): locked, with the reason
      const nb = await runCli(['token', 'alice@example.test'], noBus)
      assert.equal(nb.code, 77)
      assert.match(nb.stderr, /OS keyring did not give mailkey its store key/)
      // back to plain files: tokens in the clear again, the keyring entry gone
      const back = await runCli(['store', 'migrate', '--to', 'file'], kenv)
      assert.equal(back.code, 0, back.code === 0 ? '' : `${back.stderr}\n${keyring.diagnose()}`)
      assert.equal(keyring.lookup('mailkey', `store-key-${kid}`), undefined, 'the old key was deleted from the keyring')
      assert.match(
        await readFile(recordFile(env, 'alice@example.test'), 'utf8'),
        new RegExp(want['alice@example.test']?.rt as string),
      )
      assert.match((await runCli(['status', 'alice@example.test'], kenv)).stdout, /not encrypted/)
    })

    it('no token, passphrase or key in any output', async () => {
      // a token command's stdout is the token, by design: everything else is checked
      assert.deepEqual(
        findLeaks(
          transcript.map((t) => (t.args[0] === 'token' ? '' : t.stdout) + t.stderr),
          secrets,
        ),
        [],
      )
    })
  },
)
