// `mailkey proxy` driven by config.toml: [[proxy.listeners]] with an account allow-list, SIGHUP
// reload, and `mailkey proxy install-service`.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { startOAuthServer, introspectionUrl, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, type TmpHome } from '../harness/tmp-home.js'
import { runCli, spawnCli, transcript, findLeaks, type LiveCli } from '../harness/cli.js'
import { labFlags, signIn } from '../harness/sign-in.js'
import { dovecotAvailable, freePorts, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'

const PW = 'local proxy pw 2'
const missing = [
  !dovecotAvailable() && 'dovecot',
  spawnSync('sh', ['-c', 'command -v python3']).status !== 0 && 'python3',
].filter(Boolean)
if (missing.length && process.env.CI)
  throw new Error(
    `the proxy config tests need ${missing.join(', ')} in CI: apt-get install ${DOVECOT_INSTALL_HINT} python3`,
  )
if (missing.length) console.error(`\n*** SKIPPING proxy config tests: ${missing.join(', ')} missing ***\n`)

describe(
  'mailkey proxy from config.toml',
  { skip: missing.length ? `${missing.join(', ')} not installed` : false },
  () => {
    let lab: LabServer
    let dovecot: Dovecot
    let home: TmpHome
    let proxy: LiveCli
    const secrets: string[] = [PW]
    const cfgFile = (): string => join(home.env.XDG_CONFIG_HOME as string, 'mailkey', 'config.toml')
    const listenerToml = (port: number, account: string): string =>
      `[proxy]\n\n[[proxy.listeners]]\nprotocol = "imap"\nport = ${port}\naccounts = ["${account}"]\n`
    const login = (port: number, user: string): Promise<string> =>
      new Promise((resolve) => {
        const py = `import imaplib, os\ntry:\n    m = imaplib.IMAP4('127.0.0.1', int(os.environ['PORT']))\n    m.login(os.environ['U'], os.environ['PW'])\n    print('ok', m.select('INBOX')[1][0].decode())\nexcept Exception as e:\n    print('fail', type(e).__name__, str(e)[:80])\n`
        const c = spawn('python3', ['-c', py], { env: { ...home.env, PORT: String(port), U: user, PW } })
        let out = ''
        c.stdout.on('data', (d) => (out += d))
        c.once('close', () => resolve(out.trim()))
      })

    before(async () => {
      lab = await startOAuthServer({ deviceInterval: 1 })
      dovecot = await startDovecot({
        introspectionUrl: introspectionUrl(lab.issuer),
        users: ['alice@example.test', 'bob@example.test', 'carol@example.test'],
      })
      home = await makeTmpHome()
      for (const email of ['alice@example.test', 'bob@example.test']) {
        await signIn(
          lab,
          home.env,
          email,
          [...labFlags(lab), '--imap-url', `imaps://localhost:${dovecot.ports.imaps}`, '--ca', dovecot.caFile],
          secrets,
        )
        assert.equal((await runCli(['proxy', 'password', email], home.env, { stdin: PW + '\n' })).code, 0)
      }
      // carol: her own server is the implicit-TLS port, and no CA is given for it
      await signIn(
        lab,
        home.env,
        'carol@example.test',
        [...labFlags(lab), '--imap-url', `imaps://localhost:${dovecot.ports.imaps}`],
        secrets,
      )
      assert.equal((await runCli(['proxy', 'password', 'carol@example.test'], home.env, { stdin: PW + '\n' })).code, 0)
      await mkdir(join(home.env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
    })
    after(async () => {
      proxy?.child.kill('SIGTERM')
      await proxy?.done
      await dovecot?.stop()
      await lab?.close()
      await home?.cleanup()
    })

    it('serves the listeners of config.toml, only to the accounts listed, and reloads them on SIGHUP', async () => {
      const [p1, p2] = (await freePorts(2)) as [number, number]
      await writeFile(cfgFile(), listenerToml(p1, 'alice@example.test'))
      proxy = spawnCli(['proxy'], home.env)
      const end = Date.now() + 15_000
      while (proxy.events('listening').length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
      assert.equal(proxy.events('listening')[0]?.port, p1, proxy.stderr())
      assert.match(await login(p1, 'alice@example.test'), /^ok 3$/)
      assert.match(
        await login(p1, 'bob@example.test'),
        /^fail error .*AUTHENTICATIONFAILED/,
        'bob is not allowed on this listener',
      )

      await writeFile(cfgFile(), listenerToml(p2, 'bob@example.test'))
      proxy.child.kill('SIGHUP')
      while (!/"event":"reloaded"/.test(proxy.stderr()) && Date.now() < end + 15_000)
        await new Promise((r) => setTimeout(r, 50))
      assert.match(await login(p2, 'bob@example.test'), /^ok 3$/)
      const refused = await new Promise<string>((resolve) => {
        const s = connect(p1, '127.0.0.1')
        s.once('connect', () => {
          s.destroy()
          resolve('connected')
        })
        s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
      })
      assert.equal(refused, 'ECONNREFUSED', 'the old listener is gone')
    })

    it("a listener can send its clients to another server and trust that server's private CA (upstream + ca)", async () => {
      const [p3, p4] = (await freePorts(2)) as [number, number]
      // the STARTTLS port instead of carol's own implicit-TLS one; only the first listener trusts its CA
      const up = `imap://localhost:${dovecot.ports.imap}`
      const other = join(home.env.XDG_CONFIG_HOME as string, 'mailkey', 'other.toml')
      await writeFile(
        other,
        `[proxy]\n[[proxy.listeners]]\nprotocol = "imap"\nport = ${p3}\nupstream = "${up}"\nca = "${dovecot.caFile}"\n\n[[proxy.listeners]]\nprotocol = "imap"\nport = ${p4}\nupstream = "${up}"\n`,
      )
      const p = spawnCli(['proxy'], { ...home.env, MAILKEY_CONFIG: other })
      try {
        const end = Date.now() + 15_000
        while (p.events('listening').length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
        assert.equal(p.events('listening').length, 2, p.stderr())
        assert.match(await login(p3, 'carol@example.test'), /^ok \d+$/)
        assert.match(
          await login(p4, 'carol@example.test'),
          /^fail error .*CONTACTADMIN/,
          "without the CA the server's certificate is not trusted",
        )
        assert.match(p.stderr(), /"outcome":"config","msg":"the certificate of imap:\/\/localhost:\d+ is not trusted/)
      } finally {
        p.child.kill('SIGTERM')
        await p.done
      }
    })

    it('a broken config on SIGHUP keeps the running listeners and logs why', async () => {
      await writeFile(cfgFile(), '[[proxy.listeners]]\nprotocol = "gopher"\nport = 1\n')
      proxy.child.kill('SIGHUP')
      const end = Date.now() + 10_000
      while (!/"event":"reload-failed"/.test(proxy.stderr()) && Date.now() < end)
        await new Promise((r) => setTimeout(r, 50))
      assert.match(proxy.stderr(), /reload-failed.*config\.toml:2:1: \\"protocol\\" must be/)
      const port = Number(proxy.events('listening').at(-1)?.port)
      assert.match(await login(port, 'bob@example.test'), /^ok 3$/)
    })

    it('install-service writes a systemd user unit and says how to enable it', async () => {
      const r = await runCli(['proxy', 'install-service'], home.env)
      assert.equal(r.code, 0, r.stderr)
      const file = r.stdout.trim()
      assert.equal(file, join(home.env.XDG_CONFIG_HOME as string, 'systemd', 'user', 'mailkey-proxy.service'))
      const unit = await readFile(file, 'utf8')
      assert.match(unit, /^ExecStart=\S+node\S* \S+mailkey\.cjs proxy$/m)
      assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m)
      // the README installed with this mailkey: no public web page is known
      const doc = /^Documentation=(\S+)$/m.exec(unit)?.[1] ?? ''
      assert.match(doc, /^file:\/\/\/\S+\/README\.md$/)
      assert.equal(
        await readFile(new URL(doc), 'utf8'),
        await readFile(new URL('../../README.md', import.meta.url), 'utf8'),
      )
      assert.match(unit, /^Environment=XDG_STATE_HOME=/m)
      assert.match(r.stderr, /systemctl --user enable --now mailkey-proxy\.service/)
    })

    it('no secret in any output', () => {
      assert.deepEqual(findLeaks([proxy.stderr(), ...transcript.map((t) => t.stdout + t.stderr)], secrets), [])
    })
  },
)
