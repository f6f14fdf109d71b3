// `mailkey config` recipes, proven with the real client against the testbed: the file exactly as
// printed, `mailkey` on PATH as a user has it after installing, the servers and CA of the account.
import { repoWithOneCommit } from '../harness/git.js'
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, realpathSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { startOAuthServer, introspectionUrl, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, recordFile, type TmpHome } from '../harness/tmp-home.js'
import {
  BIN,
  runCli,
  spawnCli,
  findLeaks,
  noteSecrets,
  transcript,
  type LiveCli,
  have,
  runCommand,
} from '../harness/cli.js'
import { labFlags, signIn } from '../harness/sign-in.js'
import { dovecotAvailable, freePorts, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'
import { startSmtp, type Smtp } from '../harness/smtp-server.js'
import { runInPty } from '../harness/pty.js'

const EMAIL = 'alice@example.test'
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const LOCAL_PW = 'recipe local pw 7'
const SASL_XOAUTH2 = '/usr/lib/x86_64-linux-gnu/sasl2/libkdexoauth2.so'
function gitSendEmailAvailable(): boolean {
  // git-email, and the Perl modules it loads on these tests' paths: Mail::Address (every address),
  // Authen::SASL (its AUTH). Both are only Recommends of git-email, so check the modules themselves.
  return (
    spawnSync('git', ['send-email', '--help'], { stdio: 'ignore' }).status === 0 &&
    spawnSync('perl', ['-MMail::Address', '-MAuthen::SASL', '-e', '1'], { stdio: 'ignore' }).status === 0
  )
}
const missing = [
  !dovecotAvailable() && 'dovecot',
  !have('msmtp') && 'msmtp',
  !have('mbsync') && 'isync',
  !existsSync(SASL_XOAUTH2) && 'libsasl2-modules-kdexoauth2',
  !gitSendEmailAvailable() && 'git-email',
  !have('neomutt') && 'neomutt',
  !have('offlineimap') && 'offlineimap3',
  !have('getmail') && 'getmail6',
  !have('setpriv') && 'util-linux',
  !have('fetchmail') && 'fetchmail',
  !have('aerc') && 'aerc',
  !have('script') && 'bsdutils',
].filter(Boolean)
if (missing.length && process.env.CI)
  throw new Error(
    `the recipe tests need ${missing.join(', ')} in CI: apt-get install ${DOVECOT_INSTALL_HINT} msmtp isync libsasl2-modules-kdexoauth2 git-email libmailtools-perl libauthen-sasl-perl neomutt offlineimap3 getmail6 fetchmail aerc bsdutils`,
  )
if (missing.length) console.error(`\n*** SKIPPING recipe tests: ${missing.join(', ')} missing ***\n`)

/** the numbers of the harness's seeded messages found in a Maildir folder (new/ and cur/) */
async function seedsIn(folder: string): Promise<string[]> {
  const seeds: string[] = []
  for (const sub of ['new', 'cur']) {
    for (const f of await readdir(join(folder, sub)).catch(() => [] as string[])) {
      const m = /Seed message (\d+)/.exec(await readFile(join(folder, sub, f), 'utf8'))
      if (m) seeds.push(m[1] as string)
    }
  }
  return seeds.sort()
}

describe(
  'mailkey config: recipes that work as printed',
  { skip: missing.length ? `${missing.join(', ')} not installed` : false },
  () => {
    let lab: LabServer
    let dovecot: Dovecot
    let smtp: Smtp
    let home: TmpHome
    let env: Record<string, string>
    let proxy: LiveCli | undefined
    let ports = { imap: 0, smtp: 0 }
    const secrets: string[] = [LOCAL_PW]
    const MAIL = `From: ${EMAIL}\r\nTo: bob@example.test\r\nSubject: recipe\r\n\r\nsent by msmtp as configured by mailkey\r\n`

    before(async () => {
      lab = await startOAuthServer({ deviceInterval: 1 })
      dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer) })
      smtp = await startSmtp({
        introspect: (t, s) => lab.introspect(t, { service: s }),
        tls: { certFile: dovecot.certFile, keyFile: dovecot.keyFile },
      })
      home = await makeTmpHome()
      // `mailkey` on PATH, as after "npm install -g mailkey"
      const bin = join(home.dir, 'bin')
      await mkdir(bin)
      await symlink(BIN, join(bin, 'mailkey'))
      env = { ...home.env, PATH: `${bin}:${home.env.PATH ?? '/usr/bin:/bin'}` }
      await mkdir(env.HOME as string, { recursive: true })
      await signIn(lab, env, EMAIL, [
        ...labFlags(lab),
        '--imap-url',
        `imaps://localhost:${dovecot.ports.imaps}`,
        '--smtp-url',
        `smtp://localhost:${smtp.ports.submission}`,
        '--ca',
        dovecot.caFile,
      ])
      // the proxy from config.toml, and the local password where the recipes' default command reads it
      const [imapPort, smtpPort] = (await freePorts(2)) as [number, number]
      ports = { imap: imapPort, smtp: smtpPort }
      await mkdir(join(env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
      await writeFile(
        join(env.XDG_CONFIG_HOME as string, 'mailkey', 'config.toml'),
        `[proxy]\n[[proxy.listeners]]\nprotocol = "imap"\nport = ${imapPort}\n\n[[proxy.listeners]]\nprotocol = "smtp"\nport = ${smtpPort}\n`,
      )
      // the one way: "mailkey proxy password --save" writes the file every --via proxy recipe reads
      const saved = await runCli(['proxy', 'password', EMAIL, '--save'], env, { stdin: LOCAL_PW + '\n' })
      assert.equal(saved.code, 0, saved.stderr)
      const pwFile = join(env.XDG_CONFIG_HOME as string, 'mailkey', 'proxy-passwords', EMAIL)
      assert.match(saved.stderr, new RegExp(`Saved it to ${pwFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(0600\\)`))
      assert.equal((await stat(pwFile)).mode & 0o777, 0o600)
      assert.equal(await readFile(pwFile, 'utf8'), LOCAL_PW + '\n')
      proxy = spawnCli(['proxy'], env)
      await proxy.event('listening', 15_000)
    })
    after(async () => {
      proxy?.child.kill('SIGTERM')
      await proxy?.done
      await smtp?.stop()
      await dovecot?.stop()
      await lab?.close()
      await home?.cleanup()
    })

    const msmtpWith = async (args: string[]): Promise<{ code: number; stderr: string; file: string }> => {
      const r = await runCli(['config', 'msmtp', EMAIL, ...args], env)
      assert.equal(r.code, 0, r.stderr)
      const file = join(env.HOME as string, `.msmtprc-${args.length ? 'proxy' : 'direct'}`)
      await writeFile(file, r.stdout, { mode: 0o600 })
      const sent = await runCommand('msmtp', ['-C', file, 'bob@example.test'], env, MAIL)
      return { code: sent.code ?? -1, stderr: sent.stderr, file }
    }

    // the README's own path: "npm install && npx mailkey …" leaves no mailkey on the PATH a mail
    // client has. The printed command must still run: this installation by its full path.
    for (const oldNode of [false, true])
      it(`no mailkey on PATH${oldNode ? ', and another node first on it' : ''}: the config names this mailkey in full, and msmtp sends with it`, async () => {
        const dir = await mkdtemp(join(tmpdir(), 'mailkey-npx-'))
        try {
          // npx puts the project's node_modules/.bin first on PATH; mail clients never have it
          const dotBin = join(dir, 'project', 'node_modules', '.bin')
          await mkdir(dotBin, { recursive: true })
          await symlink(BIN, join(dotBin, 'mailkey'))
          // a node that is not the one running mailkey (Debian 12's is 18): the command must not use it
          const old = join(dir, 'old')
          await mkdir(old)
          await writeFile(join(old, 'node'), '#!/bin/sh\necho "node 18 cannot run this" >&2\nexit 1\n', { mode: 0o755 })
          const clientPath = `${oldNode ? `${old}:` : ''}/usr/bin:/bin`
          const npx = { ...env, PATH: `${dotBin}:${clientPath}` }
          const printed = await runCli(['config', 'msmtp', EMAIL], npx)
          assert.equal(printed.code, 0, printed.stderr)
          const script = realpathSync(BIN)
          const node = realpathSync(process.execPath)
          // Node by its path, whatever node PATH has: cron's PATH may have none or an old one
          const want = `${node} ${script} token ${EMAIL}`
          assert.match(
            printed.stdout,
            new RegExp(`^passwordeval "${want.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"$`, 'm'),
          )
          assert.match(printed.stderr, /no "mailkey" is on PATH \(npx finds it, mail clients do not\)/)
          assert.match(printed.stderr, /npm link/)
          // msmtp as a mail client runs it: its own PATH, without node_modules/.bin
          const file = join(dir, 'msmtprc')
          await writeFile(file, printed.stdout, { mode: 0o600 })
          const before = smtp.received.length
          const sent = await runCommand('msmtp', ['-C', file, 'bob@example.test'], { ...env, PATH: clientPath }, MAIL)
          assert.equal(sent.code, 0, sent.stderr)
          assert.equal(smtp.received.length, before + 1)
          assert.equal(smtp.received.at(-1)?.user, EMAIL)
        } finally {
          await rm(dir, { recursive: true, force: true })
        }
      })

    it("msmtp, direct: XOAUTH2/OAUTHBEARER over STARTTLS with the account's CA; the server receives the mail from alice", async () => {
      const printed = await runCli(['config', 'msmtp', EMAIL], env)
      assert.match(printed.stdout, /^passwordeval "mailkey token alice@example\.test"$/m)
      assert.match(
        printed.stdout,
        new RegExp(`^tls_trust_file "${dovecot.caFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"$`, 'm'),
      )
      assert.match(printed.stderr, /chmod 600 ~\/\.msmtprc/, 'where it goes, on stderr')
      const before = smtp.received.length
      const r = await msmtpWith([])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(smtp.received.length, before + 1)
      assert.equal(smtp.received.at(-1)?.user, EMAIL, "authenticated with alice's token")
    })

    it('msmtp via the proxy: the [[proxy.listeners]] port from config.toml and the local password file', async () => {
      const printed = await runCli(['config', 'msmtp', EMAIL, '--via', 'proxy'], env)
      assert.match(printed.stdout, new RegExp(`^port ${ports.smtp}$`, 'm'))
      assert.match(printed.stdout, /^auth plain$/m)
      const before = smtp.received.length
      const r = await msmtpWith(['--via', 'proxy'])
      assert.equal(r.code, 0, `${r.stderr}\n${proxy?.stderr()}`)
      assert.equal(smtp.received.length, before + 1)
      assert.equal(smtp.received.at(-1)?.user, EMAIL, 'the proxy signed in upstream as alice')
    })

    /** write the printed mbsync file, make the Maildir root as the usage line says, sync, read INBOX */
    const mbsyncWith = async (args: string[], tag: string): Promise<{ code: number; out: string; seeds: string[] }> => {
      const r = await runCli(['config', 'mbsync', EMAIL, ...args], env)
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stderr, /mkdir -p ~\/Mail\/alice-example\.test/)
      const h = join(home.dir, `home-${tag}`) // a HOME of its own, so each sync starts empty
      await mkdir(join(h, 'Mail', 'alice-example.test'), { recursive: true })
      const rc = join(h, '.mbsyncrc')
      await writeFile(rc, r.stdout, { mode: 0o600 })
      const run = await runCommand('mbsync', ['-c', rc, '-a'], { ...env, HOME: h })
      const inbox = join(h, 'Mail', 'alice-example.test', 'INBOX')
      return { code: run.code ?? -1, out: run.stdout + run.stderr, seeds: await seedsIn(inbox) }
    }

    it('mbsync, direct: AuthMechs XOAUTH2 through the Cyrus SASL plugin, PassCmd running mailkey token; INBOX synced', async () => {
      lab.resetCounts()
      const r = await mbsyncWith([], 'direct')
      assert.equal(r.code, 0, r.out)
      assert.deepEqual(r.seeds, ['1', '2', '3'])
      assert.ok(lab.counts.introspection >= 1, 'Dovecot checked a token (no password involved)')
    })

    it('mbsync via the proxy: AuthMechs LOGIN, no plugin needed; INBOX synced', async () => {
      const r = await mbsyncWith(['--via', 'proxy'], 'proxy')
      assert.equal(r.code, 0, `${r.out}\n${proxy?.stderr()}`)
      assert.deepEqual(r.seeds, ['1', '2', '3'])
    })

    /** a repository with one commit, sent with git send-email under a config that includes the printed file */
    const gitSend = async (args: string[], tag: string, msmtprc?: string): Promise<{ code: number; out: string }> => {
      const h = join(home.dir, `home-git-${tag}`)
      const repo = join(h, 'repo')
      await mkdir(repo, { recursive: true })
      const r = await runCli(['config', 'git-send-email', EMAIL, ...args], env)
      assert.equal(r.code, 0, r.stderr)
      const include = join(h, 'git-send-email.gitconfig')
      await writeFile(include, r.stdout)
      await writeFile(
        join(h, '.gitconfig'),
        `[include]\n\tpath = ${include}\n[user]\n\tname = Alice\n\temail = ${EMAIL}\n`,
      )
      if (msmtprc) await writeFile(join(h, '.msmtprc'), msmtprc, { mode: 0o600 })
      const genv = { ...env, HOME: h, GIT_CONFIG_NOSYSTEM: '1' }
      await repoWithOneCommit(repo, genv, 'a patch sent by git send-email')
      const sent = await runCommand(
        'git',
        ['-C', repo, 'send-email', '--to=bob@example.test', '--confirm=never', '--suppress-cc=all', '-1'],
        genv,
      )
      return { code: sent.code ?? -1, out: sent.stdout + sent.stderr }
    }

    it('git send-email, direct: through msmtp (its own recipe), which does XOAUTH2 with mailkey token', async () => {
      const msmtprc = (await runCli(['config', 'msmtp', EMAIL], env)).stdout
      const before = smtp.received.length
      const r = await gitSend([], 'direct', msmtprc)
      assert.equal(r.code, 0, r.out)
      assert.equal(smtp.received.length, before + 1)
      assert.equal(smtp.received.at(-1)?.user, EMAIL)
      assert.deepEqual(smtp.received.at(-1)?.to, ['bob@example.test'])
    })

    it('git send-email via the proxy: AUTH PLAIN/LOGIN, the local password from a credential helper', async () => {
      const before = smtp.received.length
      const r = await gitSend(['--via', 'proxy'], 'proxy')
      assert.equal(r.code, 0, `${r.out}\n${proxy?.stderr()}`)
      assert.equal(smtp.received.length, before + 1)
      assert.equal(smtp.received.at(-1)?.user, EMAIL, 'the proxy signed in upstream as alice')
    })

    /** the printed muttrc; NeoMutt in batch mode sends one message (no terminal needed) */
    const neomuttSend = async (args: string[], tag: string): Promise<{ code: number; out: string }> => {
      const r = await runCli(['config', 'neomutt', EMAIL, ...args], env)
      assert.equal(r.code, 0, r.stderr)
      const h = join(home.dir, `home-neomutt-${tag}`)
      await mkdir(h, { recursive: true })
      const rc = join(h, 'neomuttrc')
      await writeFile(rc, r.stdout)
      const run = await runCommand(
        'neomutt',
        ['-n', '-F', rc, '-s', `neomutt ${tag}`, '--', 'bob@example.test'],
        { ...env, HOME: h },
        'sent by neomutt in batch mode\n',
      )
      return { code: run.code ?? -1, out: run.stdout + run.stderr }
    }

    /** the printed muttrc in a terminal: NeoMutt opens +INBOX over IMAP and lists the seeded messages */
    const neomuttInbox = async (args: string[], tag: string): Promise<void> => {
      const r = await runCli(['config', 'neomutt', EMAIL, ...args], env)
      assert.equal(r.code, 0, r.stderr)
      const h = join(home.dir, `home-neomutt-imap-${tag}`)
      await mkdir(h, { recursive: true })
      const rc = join(h, 'neomuttrc')
      await writeFile(rc, r.stdout)
      const run = runInPty(['neomutt', '-n', '-F', rc], { ...env, HOME: h })
      try {
        await run.waitFor(/^(?=[\s\S]*Seed message 1)(?=[\s\S]*Seed message 2)(?=[\s\S]*Seed message 3)/)
      } finally {
        run.type('q')
        await run.end(5000)
      }
    }

    it('neomutt, direct: INBOX over IMAP with XOAUTH2/OAUTHBEARER and imap_oauth_refresh_command', async () => {
      lab.resetCounts()
      await neomuttInbox([], 'direct')
      assert.ok(lab.counts.introspection >= 1, 'Dovecot checked a token')
    })

    it('neomutt via the proxy: INBOX over IMAP with LOGIN and the local password', async () => {
      await neomuttInbox(['--via', 'proxy'], 'proxy')
    })

    it('neomutt, direct: batch mode sends over SMTP with XOAUTH2/OAUTHBEARER and smtp_oauth_refresh_command', async () => {
      const before = smtp.received.length
      const r = await neomuttSend([], 'direct')
      assert.equal(r.code, 0, r.out)
      assert.equal(smtp.received.length, before + 1)
      assert.equal(smtp.received.at(-1)?.user, EMAIL)
    })

    it('neomutt via the proxy: batch mode sends with AUTH PLAIN and the local password', async () => {
      const before = smtp.received.length
      const r = await neomuttSend(['--via', 'proxy'], 'proxy')
      assert.equal(r.code, 0, `${r.out}\n${proxy?.stderr()}`)
      assert.equal(smtp.received.length, before + 1)
      assert.equal(smtp.received.at(-1)?.user, EMAIL)
    })

    /** the printed offlineimaprc, one sync (-o), the seeds found in the Maildir's INBOX */
    const offlineimapWith = async (
      args: string[],
      tag: string,
    ): Promise<{ code: number; out: string; seeds: string[] }> => {
      const r = await runCli(['config', 'offlineimap', EMAIL, ...args], env)
      assert.equal(r.code, 0, r.stderr)
      const h = join(home.dir, `home-offlineimap-${tag}`)
      await mkdir(h, { recursive: true })
      await writeFile(join(h, '.offlineimaprc'), r.stdout)
      const run = await runCommand('offlineimap', ['-o', '-u', 'basic'], { ...env, HOME: h })
      const inbox = join(h, 'Mail', 'alice-example.test', 'INBOX')
      return { code: run.code ?? -1, out: run.stdout + run.stderr, seeds: await seedsIn(inbox) }
    }

    it('offlineimap, direct: XOAUTH2 with oauth2_access_token_eval running mailkey token; INBOX synced', async () => {
      const r = await offlineimapWith([], 'direct')
      assert.equal(r.code, 0, r.out)
      assert.deepEqual(r.seeds, ['1', '2', '3'])
    })

    it('offlineimap via the proxy: LOGIN with remotepasseval; INBOX synced', async () => {
      const r = await offlineimapWith(['--via', 'proxy'], 'proxy')
      assert.equal(r.code, 0, `${r.out}\n${proxy?.stderr()}`)
      assert.deepEqual(r.seeds, ['1', '2', '3'])
    })

    /**
     * getmail6 refuses to deliver as root, so it runs as nobody, the way a user runs it: its own
     * HOME, a copy of the mailkey state (owned by it, 0700/0600 as mailkey insists), `mailkey` on its
     * PATH, and the CA certificate readable (a public certificate).
     */
    const getmailWith = async (
      args: string[],
      tag: string,
    ): Promise<{ code: number; out: string; seeds: string[] }> => {
      const { chmod, chown, cp } = await import('node:fs/promises')
      const { dirname } = await import('node:path')
      const r = await runCli(['config', 'getmail', EMAIL, ...args], env)
      assert.equal(r.code, 0, r.stderr)
      const u = await mkdtemp(join(tmpdir(), `mailkey-getmail-${tag}-`))
      const h = join(u, 'home')
      const inbox = join(h, 'Mail', 'alice-example.test', 'INBOX')
      for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(inbox, sub), { recursive: true })
      await mkdir(join(h, '.getmail'), { recursive: true })
      await writeFile(join(h, '.getmail', 'getmailrc'), r.stdout)
      await cp(env.XDG_STATE_HOME as string, join(u, 'state'), { recursive: true })
      await cp(env.XDG_CONFIG_HOME as string, join(u, 'config'), { recursive: true })
      // mailkey installed for that user: dist and the runtime dependencies, wherever this checkout is
      // (it may sit below a directory the user cannot enter, such as /root)
      const mk = join(u, 'mailkey')
      const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
        dependencies: Record<string, string>
      }
      await cp(join(ROOT, 'package.json'), join(mk, 'package.json'))
      // as npm installs it: without the single-file executable (package.json "files": !dist/exe)
      await cp(join(ROOT, 'dist'), join(mk, 'dist'), {
        recursive: true,
        filter: (src) => !src.startsWith(join(ROOT, 'dist', 'exe')),
      })
      for (const dep of Object.keys(pkg.dependencies))
        await cp(join(ROOT, 'node_modules', dep), join(mk, 'node_modules', dep), { recursive: true })
      await mkdir(join(u, 'bin'))
      await symlink(join(mk, 'dist', 'cli', 'mailkey.cjs'), join(u, 'bin', 'mailkey'))
      const own = async (p: string): Promise<void> => {
        await chown(p, 65534, 65534)
        const { readdir, lstat } = await import('node:fs/promises')
        if ((await lstat(p)).isDirectory()) for (const n of await readdir(p)) await own(join(p, n))
      }
      await own(u)
      await chmod(u, 0o700)
      await chmod(dirname(dovecot.caFile), 0o711)
      await chmod(dovecot.caFile, 0o644)
      const uenv = {
        ...env,
        HOME: h,
        XDG_STATE_HOME: join(u, 'state'),
        XDG_CONFIG_HOME: join(u, 'config'),
        PATH: `${join(u, 'bin')}:${env.PATH}`,
      }
      // from its HOME: the checkout's directory may be closed to that user
      const run = await runCommand(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          'sh',
          '-c',
          'cd "$HOME" && exec getmail --getmaildir "$HOME/.getmail"',
        ],
        uenv,
      )
      const seeds = await seedsIn(inbox)
      await rm(u, { recursive: true, force: true })
      return { code: run.code ?? -1, out: run.stdout + run.stderr, seeds }
    }

    it('getmail6, direct, as an ordinary user: IMAP over TLS, use_xoauth2, password_command running mailkey token', async () => {
      const r = await getmailWith([], 'direct')
      assert.equal(r.code, 0, r.out)
      assert.deepEqual(r.seeds, ['1', '2', '3'])
    })

    it('getmail6 via the proxy, as an ordinary user: LOGIN to the loopback listener', async () => {
      const r = await getmailWith(['--via', 'proxy'], 'proxy')
      assert.equal(r.code, 0, `${r.out}\n${proxy?.stderr()}`)
      assert.deepEqual(r.seeds, ['1', '2', '3'])
    })

    it('fetchmail via the proxy: the printed rc and the printed ~/.netrc line retrieve the 3 messages', async () => {
      const { chmod } = await import('node:fs/promises')
      const r = await runCli(['config', 'fetchmail', EMAIL, '--via', 'proxy'], env)
      assert.equal(r.code, 0, r.stderr)
      const h = join(home.dir, 'home-fetchmail')
      const out = join(h, 'out')
      await mkdir(out, { recursive: true })
      await writeFile(join(h, '.fetchmailrc'), r.stdout)
      await chmod(join(h, '.fetchmailrc'), 0o600)
      // the ~/.netrc step exactly as printed, through sh
      const netrc = r.stderr.split('\n').find((l) => l.startsWith('# printf'))
      assert.ok(netrc, r.stderr)
      const step = await runCommand('sh', ['-c', netrc.slice(2)], { ...env, HOME: h })
      assert.equal(step.code, 0, step.stderr)
      // delivery is the user's choice (the local MTA by default): here an mda that writes files
      const mda = join(h, 'mda.sh')
      await writeFile(mda, `#!/bin/sh\nexec cat > "${out}/$(date +%s%N).$$"\n`, { mode: 0o700 })
      const run = await runCommand(
        'fetchmail',
        ['--nodetach', '--idfile', join(h, 'ids'), '--pidfile', join(h, 'pid'), '--mda', mda],
        { ...env, HOME: h },
      )
      assert.equal(run.code, 0, `${run.stdout}${run.stderr}\n${proxy?.stderr()}`)
      const bodies = await Promise.all((await readdir(out)).map((f) => readFile(join(out, f), 'utf8')))
      assert.deepEqual(bodies.map((b) => /Seed message (\d+)/.exec(b)?.[1]).sort(), ['1', '2', '3'])
      // without --via proxy: the same configuration (the only way fetchmail can work), and why on stderr
      const direct = await runCli(['config', 'fetchmail', EMAIL], env)
      assert.equal(direct.code, 0, direct.stderr)
      assert.equal(direct.stdout, r.stdout)
      assert.match(
        direct.stderr,
        /^# through "mailkey proxy", as with --via proxy: fetchmail cannot use OAuth itself \(fetchmail 6\.4 has no OAuth mechanism/m,
      )
    })

    /**
     * aerc in a terminal (util-linux script), the accounts.conf exactly as printed, started the way
     * stderr says: it opens INBOX, a mailto: link opens the composer, "y" sends.
     */
    const aercRun = async (args: string[], tag: string): Promise<{ inbox: boolean; sent: boolean; out: string }> => {
      const { chmod } = await import('node:fs/promises')
      const r = await runCli(['config', 'aerc', EMAIL, ...args], env)
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stderr, /^# written for the aerc on PATH \(0\.14\.0\)/m, 'the dialect of the aerc installed here')
      const dir = join(env.XDG_CONFIG_HOME as string, 'aerc')
      await mkdir(dir, { recursive: true })
      await writeFile(join(dir, 'accounts.conf'), r.stdout)
      await chmod(join(dir, 'accounts.conf'), 0o600)
      // the start line from stderr ("SSL_CERT_FILE=<ca> aerc" when the account has its own CA)
      const start = r.stderr.split('\n').find((l) => /^# (SSL_CERT_FILE=\S+ )?aerc$/.test(l))
      assert.ok(start, r.stderr)
      const cert = /SSL_CERT_FILE=(\S+)/.exec(start)?.[1]
      const before = smtp.received.length
      // EDITOR=true: the body comes from the mailto: link; the review screen then offers y to send
      const run = runInPty(['aerc', `mailto:bob@example.test?subject=aerc%20${tag}&body=sent%20by%20aerc`], {
        ...env,
        EDITOR: 'true',
        ...(cert ? { SSL_CERT_FILE: cert } : {}),
      })
      let sent = false
      let inbox = false
      try {
        await run.waitFor(/Send this email\?/)
        run.type('y')
        const until = Date.now() + 20_000
        while (smtp.received.length === before && Date.now() < until) await new Promise((res) => setTimeout(res, 100))
        sent = smtp.received.length === before + 1
        // after sending, aerc shows the account's INBOX as read over IMAP
        await run.waitFor(/^(?=[\s\S]*Seed message 1)(?=[\s\S]*Seed message 2)(?=[\s\S]*Seed message 3)/)
        inbox = true
      } catch (e) {
        return { inbox, sent, out: `${(e as Error).message}\n${proxy?.stderr() ?? ''}` }
      } finally {
        run.type(':quit\r')
        await run.end(5000)
      }
      return { inbox, sent, out: run.screen().replace(/ {2,}/g, ' ').slice(-2000) }
    }

    it('aerc, direct: IMAP and SMTP with XOAUTH2/OAUTHBEARER, cred commands running mailkey token; INBOX listed, a message sent', async () => {
      lab.resetCounts()
      const r = await aercRun([], 'direct')
      assert.ok(r.sent, `the server received aerc's message\n${r.out}`)
      assert.equal(smtp.received.at(-1)?.user, EMAIL, "authenticated with alice's token")
      assert.ok(r.inbox, `aerc listed INBOX over IMAP\n${r.out}`)
      assert.ok(lab.counts.introspection >= 2, 'Dovecot and the SMTP server checked tokens (no password involved)')
    })

    it('aerc via the proxy: imap+insecure and plain SMTP to the loopback listeners with the local password', async () => {
      // a command with ";": go-ini would end the value there (an inline comment) unless it is in backticks
      const r = await aercRun(
        [
          '--via',
          'proxy',
          '--password-command',
          'set -e; cat "${XDG_CONFIG_HOME:-$HOME/.config}/mailkey/proxy-passwords/alice@example.test"',
        ],
        'proxy',
      )
      assert.ok(r.sent, `the server received aerc's message\n${r.out}`)
      assert.equal(smtp.received.at(-1)?.user, EMAIL, 'the proxy signed in upstream as alice')
      assert.ok(r.inbox, `aerc listed INBOX through the proxy\n${r.out}`)
    })

    it('lists the clients; unknown clients and accounts get the next command to run', async () => {
      const list = await runCli(['config'], env)
      assert.equal(list.code, 0)
      assert.match(list.stdout, /^ {2}msmtp /m)
      assert.match(list.stdout, /^ {2}generic /m)
      const unknown = await runCli(['config', 'pine', EMAIL], env)
      assert.equal(unknown.code, 64)
      assert.match(unknown.stderr, /no recipe for "pine"[\s\S]*mailkey config/)
      const nobody = await runCli(['config', 'msmtp', 'nobody@example.test'], env)
      assert.equal(nobody.code, 78)
      assert.match(nobody.stderr, /mailkey add nobody@example\.test/)
      const version = await runCli(['config', 'aerc', EMAIL, '--client-version', 'latest'], env)
      assert.equal(version.code, 64)
      assert.match(version.stderr, /--client-version takes a version such as 0\.14/)
      // himalaya is not installed here: the 2.x dialect; 1.x has no token command, so only via the proxy
      const h2 = await runCli(['config', 'himalaya', EMAIL], env)
      assert.equal(h2.code, 0, h2.stderr)
      assert.match(
        h2.stdout,
        /^imap\.sasl\.(xoauth2|oauthbearer)\.token\.command = "mailkey token alice@example\.test"$/m,
      )
      assert.match(h2.stderr, /not proven by mailkey's tests/)
      const h1 = await runCli(['config', 'himalaya', EMAIL, '--client-version', '1.2.0'], env)
      assert.equal(h1.code, 64)
      assert.match(
        h1.stderr,
        /himalaya 1\.2\.0 cannot use OAuth itself[\s\S]*mailkey config himalaya alice@example\.test --via proxy/,
      )
      const h1p = await runCli(['config', 'himalaya', EMAIL, '--client-version', '1.2.0', '--via', 'proxy'], env)
      assert.equal(h1p.code, 0, h1p.stderr)
      assert.match(h1p.stdout, new RegExp(`^backend\\.port = ${ports.imap}$`, 'm'))
      // generic (password-only apps) has only the proxy way: printed directly, with why on stderr
      const generic = await runCli(['config', 'generic', EMAIL], env)
      assert.equal(generic.code, 0, generic.stderr)
      assert.match(generic.stdout, new RegExp(`^incoming IMAP +server 127\\.0\\.0\\.1 {2}port ${ports.imap} `, 'm'))
      assert.equal(generic.stdout, (await runCli(['config', 'generic', EMAIL, '--via', 'proxy'], env)).stdout)
      assert.match(
        generic.stderr,
        /^# through "mailkey proxy", as with --via proxy: generic cannot use OAuth itself \(such apps cannot do OAuth at all/m,
      )
    })

    it('no secret in any output', async () => {
      const rec = JSON.parse(await readFile(recordFile(env, EMAIL), 'utf8')) as {
        grant: { accessToken: string; refreshToken: string }
      }
      secrets.push(rec.grant.accessToken, rec.grant.refreshToken)
      await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken, LOCAL_PW)
      assert.deepEqual(
        findLeaks(
          [proxy?.stderr() ?? '', ...transcript.filter((t) => t.args[0] !== 'token').map((t) => t.stdout + t.stderr)],
          secrets,
        ),
        [],
      )
    })
  },
)
