// Hostile but legal addresses through every `mailkey config` recipe (issue 11, item 12). Each
// address is a valid RFC 5322 dot-atom (` $ ' | & { } ! % # ~ are atext) that runs $pwn if any
// consumer lets it reach a shell unquoted. The printed file is read by the REAL consumer where one
// is installed (msmtp, git send-email, mbsync, getmail, fetchmail, aerc, offlineimap's own parser
// and evaluator), the commands it runs go through their own sh, and `mailkey`/`msmtp` on PATH are
// fakes that record their argv: each must receive exactly the address, and $pwn must never run.
// The commands printed on stderr ("mailkey config ... > file") are run through sh the same way.
import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { spawn, spawnSync } from 'node:child_process'
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse as parseToml } from 'smol-toml'
import { startOAuthServer, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, type TmpHome } from '../harness/tmp-home.js'
import { runCli, spawnCli, have } from '../harness/cli.js'
import { labFlags } from '../harness/sign-in.js'
import { makeTestCA, type TestCA } from '../harness/certs.js'
import { startScriptedServer, type ScriptedServer } from '../harness/scripted-server.js'
import { runInPty } from '../harness/pty.js'

// lower case: mailkey keeps an account's address lower-cased, so $pwn must survive that
const ADDRESSES = ['a`$pwn`b@example.test', "o'|$pwn|'&{x}!%s#~@example.test"]
const LOCAL_PW = 'hostile local pw 9'
const SASL_XOAUTH2 = '/usr/lib/x86_64-linux-gnu/sasl2/libkdexoauth2.so'
const gitSendEmail =
  spawnSync('git', ['send-email', '--help'], { stdio: 'ignore' }).status === 0 &&
  spawnSync('perl', ['-MMail::Address', '-e', '1'], { stdio: 'ignore' }).status === 0
const missing = [
  !have('msmtp') && 'msmtp',
  !have('mbsync') && 'isync',
  !existsSync(SASL_XOAUTH2) && 'libsasl2-modules-kdexoauth2',
  !gitSendEmail && 'git-email',
  !have('neomutt') && 'neomutt',
  !existsSync('/usr/share/offlineimap3/offlineimap') && 'offlineimap3',
  !have('getmail') && 'getmail6',
  !have('fetchmail') && 'fetchmail',
  !have('aerc') && 'aerc',
  !have('script') && 'bsdutils',
].filter(Boolean)
if (missing.length && process.env.CI)
  throw new Error(`the hostile-address recipe tests need ${missing.join(', ')} in CI`)
if (missing.length) console.error(`\n*** SKIPPING hostile-address recipe tests: ${missing.join(', ')} missing ***\n`)

describe(
  'mailkey config: a hostile but legal address reaches every consumer as exactly itself',
  { skip: missing.length ? `${missing.join(', ')} not installed` : false },
  () => {
    let lab: LabServer
    let ca: TestCA
    let imap: ScriptedServer
    let home: TmpHome
    let env: Record<string, string>
    let work: string
    let canary: string
    let log: string
    /** what "mailkey add" printed on stderr for each address */
    const addHints = new Map<string, string>()

    /** what the fakes on PATH were called with since the last look: [program, ...argv] */
    const calls = async (): Promise<string[][]> => {
      const text = await readFile(log, 'utf8').catch(() => '')
      await writeFile(log, '')
      return text
        .split('\x1e')
        .filter(Boolean)
        .map((r) => r.split('\x1f'))
    }
    const sh = (line: string): ReturnType<typeof run> => run('sh', ['-c', line], { env, cwd: work })
    const printed = async (client: string, email: string, via = false): Promise<{ stdout: string; stderr: string }> => {
      const r = await runCli(['config', client, email, ...(via ? ['--via', 'proxy'] : [])], env)
      assert.equal(r.code, 0, r.stderr)
      return r
    }
    /** every "mailkey config ..." / "mailkey proxy password ..." printed on stderr, run by sh: the fake gets the address as one argument */
    const runsAsPrinted = async (stderr: string, client: string, email: string): Promise<void> => {
      const lines = stderr
        .split('\n')
        .map(
          (l) =>
            /^# (?:first: |and set the local password once: )?(mailkey (?:config|proxy password) .*)$/.exec(l)?.[1],
        )
        .filter((l): l is string => l !== undefined)
      assert.ok(lines.length > 0, stderr)
      for (const line of lines) {
        const r = await sh(line)
        assert.equal(r.status, 0, `${line}\n${String(r.stderr)}`)
        const [call] = await calls()
        assert.ok(call, line)
        const want = line.startsWith('mailkey proxy')
          ? ['mailkey', 'proxy', 'password', email]
          : ['mailkey', 'config', /^mailkey config (\S+)/.exec(line)?.[1] ?? client, email]
        assert.deepEqual(call.slice(0, want.length), want, line)
      }
    }

    before(async () => {
      lab = await startOAuthServer({ deviceInterval: 1 })
      home = await makeTmpHome()
      work = join(home.dir, 'work')
      const bin = join(home.dir, 'fakebin')
      await mkdir(work)
      await mkdir(bin)
      ca = await makeTestCA(work)
      canary = join(home.dir, 'PWNED')
      log = join(home.dir, 'calls.log')
      // the fakes: record the program and its argv (\x1f between words, \x1e after each call)
      const record = `{ printf '%s' "$(basename "$0")"; for a in "$@"; do printf '\\037%s' "$a"; done; printf '\\036'; } >> '${log}'`
      await writeFile(join(bin, 'mailkey'), `#!/bin/sh\n${record}\necho fake-output\n`, { mode: 0o755 })
      // the fake msmtp takes the message from git like the real one
      await writeFile(join(bin, 'msmtp'), `#!/bin/sh\n${record}\ncat > /dev/null\n`, { mode: 0o755 })
      await writeFile(join(home.dir, 'pwn.sh'), `#!/bin/sh\ntouch '${canary}'\n`, { mode: 0o755 })
      // an IMAPS server that offers XOAUTH2 and refuses every login: the clients ask for the token first
      imap = await startScriptedServer({
        tls: { certFile: ca.certFile, keyFile: ca.keyFile, implicit: true },
        script: () => [
          { send: '* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=PLAIN] ready\r\n' },
          {
            repeat: [
              { expect: /^(\S+) (\S+)/ },
              {
                send: (m) =>
                  /^capability$/i.test(m?.[2] ?? '')
                    ? `* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=PLAIN\r\n${m?.[1]} OK done\r\n`
                    : `${m?.[1]} NO [AUTHENTICATIONFAILED] no\r\n`,
              },
            ],
          },
        ],
      })
      env = { ...home.env, PATH: `${bin}:/usr/bin:/bin`, pwn: join(home.dir, 'pwn.sh') }
      for (const d of ['.config/neomutt', '.config/aerc', '.config/mailkey', '.config/himalaya', '.getmail'])
        await mkdir(join(env.HOME as string, d), { recursive: true })
      await mkdir(join(env.XDG_CONFIG_HOME as string, 'mailkey'), { recursive: true })
      // signed in for real, each address as typed (the lab approves the device code as that user)
      for (const email of ADDRESSES) {
        const cli = spawnCli(
          [
            'add',
            email,
            '--device',
            '--json',
            ...labFlags(lab),
            '--imap-url',
            `imaps://localhost:${imap.port}`,
            '--smtp-url',
            'smtp://localhost:1',
            '--ca',
            ca.caFile,
          ],
          env,
        )
        await lab.approveDevice(String((await cli.event('device_code')).user_code), { login: 'hostile' })
        const r = await cli.done
        assert.equal(r.code, 0, r.stderr)
        addHints.set(email, r.stderr)
        // the local password where every --via proxy recipe reads it, written by mailkey itself (from stdin)
        const saved = await runCli(['proxy', 'password', email, '--save'], env, { stdin: LOCAL_PW + '\n' })
        assert.equal(saved.code, 0, saved.stderr)
        assert.match(saved.stderr, /Saved it to .*proxy-passwords/)
      }
    })

    for (const email of ADDRESSES) {
      it(`the commands "mailkey add" suggests on stderr run as printed: ${email}`, async () => {
        const text = addHints.get(email) ?? ''
        const lines = [...text.matchAll(/"(mailkey (?:token|status|test) [^"]*)"/g)].map((m) => m[1] as string)
        assert.ok(lines.length >= 2, text)
        await calls()
        for (const line of lines) {
          const r = await sh(line)
          assert.equal(r.status, 0, `${line}\n${String(r.stderr)}`)
          const [call] = await calls()
          assert.deepEqual(call?.slice(0, 3), ['mailkey', /^mailkey (\S+)/.exec(line)?.[1], email], line)
        }
      })
    }
    afterEach(async () => {
      assert.equal(existsSync(canary), false, 'a hostile address ran a command')
    })
    after(async () => {
      await imap?.close()
      await lab?.close()
      await home?.cleanup()
    })

    for (const email of ADDRESSES) {
      it(`msmtp (real msmtp --pretend runs passwordeval through sh): ${email}`, async () => {
        for (const via of [false, true]) {
          const r = await printed('msmtp', email, via)
          const rc = join(work, 'msmtprc')
          await writeFile(rc, r.stdout, { mode: 0o600 })
          await calls()
          // the real msmtp by its path: the fake one on PATH stands in for it under git send-email
          const m = await run('/usr/bin/msmtp', ['-C', rc, '-a', email, '--pretend'], { env })
          assert.equal(m.status, 0, m.stderr)
          assert.match(m.stdout, new RegExp(`^user = ${esc(email)}$`, 'm'))
          assert.match(m.stdout, new RegExp(`^from = ${esc(email)}$`, 'm'))
          assert.deepEqual(await calls(), via ? [] : [['mailkey', 'token', email]])
          await runsAsPrinted(r.stderr, 'msmtp', email)
        }
      })

      it(`git send-email (real git: sendmailcmd through its sh, the fake msmtp records -a): ${email}`, async () => {
        const r = await printed('git-send-email', email)
        const cfg = join(work, 'gse.gitconfig')
        await writeFile(cfg, r.stdout)
        await writeFile(
          join(work, 'msg.txt'),
          'From: bob@example.test\nTo: carol@example.test\nSubject: hostile\n\nbody\n',
        )
        await calls()
        const ident = {
          GIT_AUTHOR_NAME: 'Bob',
          GIT_AUTHOR_EMAIL: 'bob@example.test',
          GIT_COMMITTER_NAME: 'Bob',
          GIT_COMMITTER_EMAIL: 'bob@example.test',
          GIT_CONFIG_NOSYSTEM: '1',
        }
        const g = await run(
          'git',
          [
            '-c',
            `include.path=${cfg}`,
            'send-email',
            '--confirm=never',
            '--quiet',
            '--from=bob@example.test',
            '--to=carol@example.test',
            'msg.txt',
          ],
          { env: { ...env, ...ident }, cwd: work },
        )
        assert.equal(g.status, 0, g.stderr)
        const sent = await calls()
        assert.equal(sent.length, 1, JSON.stringify(sent))
        assert.deepEqual(sent[0]?.slice(0, 3), ['msmtp', '-a', email])
        assert.equal(gitGet(cfg, 'sendemail.from'), email)
        await runsAsPrinted(r.stderr, 'git-send-email', email)
        const p = await printed('git-send-email', email, true)
        await writeFile(cfg, p.stdout)
        assert.equal(gitGet(cfg, 'sendemail.smtpUser'), email)
        assert.equal(gitGet(cfg, 'sendemail.from'), email)
        await runsAsPrinted(p.stderr, 'git-send-email', email)
      })

      it(`mbsync (real mbsync: PassCmd through sh during XOAUTH2 to an IMAPS server): ${email}`, async () => {
        const r = await printed('mbsync', email)
        const rc = join(work, 'mbsyncrc')
        await writeFile(rc, r.stdout, { mode: 0o600 })
        // as printed: "mailkey config mbsync ... > ~/.mbsyncrc && mkdir -p ~/Mail/<name>" (the fake prints no file)
        await runsAsPrinted(r.stderr, 'mbsync', email)
        const mb = await run('mbsync', ['-V', '-c', rc, '-a'], { env, cwd: work })
        assert.deepEqual(
          (await calls()).filter((c) => c[0] === 'mailkey'),
          [['mailkey', 'token', email]],
          mb.stdout + mb.stderr,
        )
        await runsAsPrinted((await printed('mbsync', email, true)).stderr, 'mbsync', email)
      })

      it(`neomutt (real neomutt -Q reads the muttrc; the refresh command through sh): ${email}`, async () => {
        const r = await printed('neomutt', email)
        const rc = join(work, 'neomuttrc')
        await writeFile(rc, r.stdout)
        for (const v of ['imap_oauth_refresh_command', 'smtp_oauth_refresh_command']) {
          const q = await run('neomutt', ['-n', '-F', rc, '-Q', v], { env })
          assert.equal(q.status, 0, q.stderr)
          const cmd = muttValue(q.stdout, v)
          await calls()
          assert.equal((await sh(cmd)).status, 0)
          assert.deepEqual(await calls(), [['mailkey', 'token', email]])
        }
        const from = await run('neomutt', ['-n', '-F', rc, '-Q', 'from'], { env })
        assert.equal(muttValue(from.stdout, 'from'), email)
        await runsAsPrinted(r.stderr, 'neomutt', email)
        await runsAsPrinted((await printed('neomutt', email, true)).stderr, 'neomutt', email)
      })

      it(`offlineimap (its own CustomConfigParser and LocalEval, "%" and all): ${email}`, async () => {
        for (const via of [false, true]) {
          const r = await printed('offlineimap', email, via)
          const rc = join(work, 'offlineimaprc')
          await writeFile(rc, r.stdout)
          const py = [
            'import sys, json',
            "sys.path.insert(0, '/usr/share/offlineimap3')",
            'from offlineimap.CustomConfig import CustomConfigParser',
            'from offlineimap.localeval import LocalEval',
            'c = CustomConfigParser()',
            'c.read(sys.argv[1])',
            "s = [x for x in c.sections() if x.startswith('Repository ') and x.endswith('-remote')][0]",
            "key = 'remotepasseval' if c.has_option(s, 'remotepasseval') else 'oauth2_access_token_eval'",
            "print(json.dumps({'user': c.get(s, 'remoteuser'), 'secret': LocalEval().eval(c.get(s, key))}))",
          ].join('\n')
          await calls()
          const o = await run('python3', ['-c', py, rc], { env })
          assert.equal(o.status, 0, o.stderr)
          const got = JSON.parse(o.stdout) as { user: string; secret: string }
          assert.equal(got.user, email)
          assert.equal(got.secret, via ? LOCAL_PW : 'fake-output')
          assert.deepEqual(await calls(), via ? [] : [['mailkey', 'token', email]])
          await runsAsPrinted(r.stderr, 'offlineimap', email)
        }
      })

      it(`getmail6 (real getmail: password_command before it logs in): ${email}`, async () => {
        const r = await printed('getmail', email)
        const dir = join(work, 'getmail')
        await mkdir(dir, { recursive: true })
        await writeFile(join(dir, 'getmailrc'), r.stdout)
        const maildir = /^path = ~\/(.*)\/$/m.exec(r.stdout)?.[1] as string
        for (const sub of ['cur', 'new', 'tmp'])
          await mkdir(join(env.HOME as string, maildir, sub), { recursive: true })
        await calls()
        const g = await run('getmail', ['--rcfile', 'getmailrc', '--getmaildir', dir], { env })
        assert.ok(`${g.stdout}${g.stderr}`.includes(`${email}@localhost:${imap.port}`), `${g.stdout}${g.stderr}`)
        assert.deepEqual(await calls(), [['mailkey', 'token', email]])
        await runsAsPrinted(r.stderr, 'getmail', email)
        await runsAsPrinted((await printed('getmail', email, true)).stderr, 'getmail', email)
      })

      it(`fetchmail (real fetchmail --configdump; the printed ~/.netrc line through sh): ${email}`, async () => {
        const r = await printed('fetchmail', email, true)
        const rc = join(work, 'fetchmailrc')
        await writeFile(rc, r.stdout, { mode: 0o600 })
        await rm(join(env.HOME as string, '.netrc'), { force: true })
        const netrc = r.stderr
          .split('\n')
          .find((l) => l.startsWith('# printf'))
          ?.slice(2)
        assert.ok(netrc, r.stderr)
        assert.equal((await sh(netrc)).status, 0)
        const d = await run('fetchmail', ['-f', rc, '--configdump'], { env })
        assert.equal(d.status, 0, d.stderr)
        assert.match(d.stdout, new RegExp(`"remote":"${esc(email)}"`))
        assert.match(d.stdout, new RegExp(`"password":"${esc(LOCAL_PW)}"`), 'the ~/.netrc line matched the user')
        await calls()
        await runsAsPrinted(r.stderr, 'fetchmail', email)
      })

      it(`aerc (real aerc 0.14: go-ini reads source-cred-cmd, aerc runs it through sh at start): ${email}`, async () => {
        const r = await printed('aerc', email)
        await writeFile(join(env.XDG_CONFIG_HOME as string, 'aerc', 'accounts.conf'), r.stdout).catch(async () => {
          await mkdir(join(env.XDG_CONFIG_HOME as string, 'aerc'), { recursive: true })
          await writeFile(join(env.XDG_CONFIG_HOME as string, 'aerc', 'accounts.conf'), r.stdout)
        })
        await chmod(join(env.XDG_CONFIG_HOME as string, 'aerc', 'accounts.conf'), 0o600)
        await calls()
        const run = runInPty(['aerc'], { ...env, SSL_CERT_FILE: ca.caFile })
        let got: string[][] = []
        try {
          // until aerc runs the command: a watchdog, not a measure (aerc starts slowly on a busy machine)
          const watchdog = Date.now() + 90_000
          while (got.length === 0 && Date.now() < watchdog && run.child.exitCode === null) {
            got = await calls()
            if (got.length === 0) await new Promise((res) => setTimeout(res, 100))
          }
        } finally {
          run.type(':quit\r')
          await run.end(5000)
        }
        assert.deepEqual(got, [['mailkey', 'token', email]], run.screen().slice(-1500))
        await runsAsPrinted(r.stderr, 'aerc', email)
        await runsAsPrinted((await printed('aerc', email, true)).stderr, 'aerc', email)
      })

      it(`himalaya (not installed: its TOML read with smol-toml, the token command through sh): ${email}`, async () => {
        const r = await printed('himalaya', email)
        const acc = (
          parseToml(r.stdout) as {
            accounts: Record<
              string,
              { imap: { sasl: Record<string, { username: string; token: { command: string } }> } }
            >
          }
        ).accounts[email]
        assert.ok(acc, r.stdout)
        const sasl = Object.values(acc.imap.sasl)[0]
        assert.equal(sasl?.username, email)
        await calls()
        assert.equal((await sh(sasl?.token.command ?? 'false')).status, 0)
        assert.deepEqual(await calls(), [['mailkey', 'token', email]])
        await runsAsPrinted(r.stderr, 'himalaya', email)
      })

      it(`generic (the printed "mailkey proxy password" command through sh): ${email}`, async () => {
        const r = await printed('generic', email, true)
        await runsAsPrinted(r.stderr, 'generic', email)
        const inText = /set with "(mailkey proxy password .*)"\)$/m.exec(r.stdout)?.[1]
        assert.ok(inText, r.stdout)
        assert.equal((await sh(inText)).status, 0)
        assert.deepEqual(await calls(), [['mailkey', 'proxy', 'password', email]])
      })
    }
  },
)

/** A program run to its end (killed after 30 s), without blocking the in-process IMAPS server as spawnSync would. */
function run(
  cmd: string,
  args: string[],
  opts: { env: Record<string, string>; cwd?: string; timeoutMs?: number },
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, {
      env: opts.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    let stdout = ''
    let stderr = ''
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    // the whole process group: a shell it started must not keep the pipes open
    const t = setTimeout(() => process.kill(-(c.pid as number), 'SIGKILL'), opts.timeoutMs ?? 30_000)
    c.once('error', reject)
    c.once('close', (status) => {
      clearTimeout(t)
      resolve({ status, stdout, stderr })
    })
  })
}

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}

function gitGet(file: string, key: string): string {
  return spawnSync('git', ['config', '--file', file, '--get', key], { encoding: 'utf8' }).stdout.replace(/\n$/, '')
}

/** A value as `neomutt -Q` prints it: set name = "value", with \" and \\ escaped. */
function muttValue(out: string, name: string): string {
  const m = new RegExp(`^set ${name} = "(.*)"$`, 'm').exec(out)
  assert.ok(m, out)
  return (m[1] as string).replace(/\\(.)/g, '$1')
}
