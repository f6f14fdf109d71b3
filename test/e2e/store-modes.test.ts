// Issue 11, items 13 and 14: a state directory, accounts directory or proxy password file that other users
// can read is refused at every entry point (not repaired), with the path and the chmod that fixes
// it, as `mailkey token` already did; a FIFO or a symlink planted at an account's lock path is
// refused at once instead of hanging a refresh forever. The real CLI, a real sign-in at the lab
// OAuth server; every run is bounded (runCli kills it and fails the test after its timeout).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, rm, symlink, writeFile } from 'node:fs/promises'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { startOAuthServer, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, type TmpHome } from '../harness/tmp-home.js'
import { runCli, type CliResult } from '../harness/cli.js'
import { signIn } from '../harness/sign-in.js'
import { freePorts } from '../harness/dovecot.js'

const EMAIL = 'alice@example.test'

describe('store modes are checked at every entry point', () => {
  let lab: LabServer
  let home: TmpHome
  let env: Record<string, string>
  let stateDir: string
  let accountsDir: string
  let imapPort: number

  /** the command refused with exit 74 (a StoreError, as "mailkey token" gives), naming the path and its chmod */
  const refused = (r: CliResult, path: string, mode: string, what: string): void => {
    assert.equal(r.code, 74, `${what}: ${r.stdout}${r.stderr}`)
    assert.ok(r.stderr.includes(`"${path}" is readable by other users`), `${what}: ${r.stderr}`)
    assert.ok(r.stderr.includes(`chmod ${mode} '${path}'`), `${what}: ${r.stderr}`)
  }
  /** every entry point, each bounded: a proxy that starts anyway is killed and fails the check */
  const entryPoints = async (path: string, mode: string): Promise<void> => {
    for (const args of [
      ['list'],
      ['status'],
      ['status', EMAIL],
      ['config', 'msmtp', EMAIL],
      ['remove', EMAIL],
      ['store', 'status'],
      ['proxy', 'password', EMAIL],
      ['proxy', '--imap-port', String(imapPort)],
    ]) {
      const r = await runCli(args, env, { stdin: 'local password 1\n', timeoutMs: 15_000 }).catch((e: Error) => ({
        code: -1,
        signal: null,
        stdout: '',
        stderr: e.message,
      }))
      refused(r, path, mode, args.join(' '))
    }
  }

  before(async () => {
    lab = await startOAuthServer({ deviceInterval: 1 })
    home = await makeTmpHome()
    env = home.env
    stateDir = join(env.XDG_STATE_HOME as string, 'mailkey')
    accountsDir = join(stateDir, 'accounts')
    ;[imapPort] = (await freePorts(1)) as [number]
    await signIn(lab, env, EMAIL)
    assert.equal((await runCli(['proxy', 'password', EMAIL], env, { stdin: 'local password 1\n' })).code, 0)
  })
  after(async () => {
    await lab?.close()
    await home?.cleanup()
  })

  for (const [what, dir] of [
    ['an accounts directory', () => accountsDir],
    ['a state directory', () => stateDir],
  ] as const) {
    it(`${what} open to others (0755)`, async () => {
      await chmod(dir(), 0o755)
      try {
        await entryPoints(dir(), '700')
      } finally {
        await chmod(dir(), 0o700)
      }
    })
  }

  it('a proxy password file others can read (0644): the proxy does not start, no password is set', async () => {
    const file = join(stateDir, 'proxy-passwords.json')
    await chmod(file, 0o644)
    try {
      for (const args of [
        ['proxy', 'password', EMAIL],
        ['proxy', '--imap-port', String(imapPort)],
      ]) {
        const r = await runCli(args, env, { stdin: 'local password 2\n', timeoutMs: 15_000 }).catch((e: Error) => ({
          code: -1,
          signal: null,
          stdout: '',
          stderr: e.message,
        }))
        refused(r, file, '600', args.join(' '))
      }
    } finally {
      await chmod(file, 0o600)
    }
  })

  it('a record others can read is named by "mailkey list", not listed as if all were well', async () => {
    const rec = join(accountsDir, `${EMAIL}.json`)
    await chmod(rec, 0o644)
    try {
      const r = await runCli(['list'], env)
      assert.ok(r.stderr.includes(`"${rec}" is readable by other users`), r.stderr)
      assert.doesNotMatch(r.stdout, /alice@example\.test/)
      assert.equal(r.code, 74, 'a refusal, not a success a script would trust')
      for (const args of [['status'], ['status', '--json'], ['list', '--json']])
        assert.equal((await runCli(args, env)).code, 74, args.join(' '))
    } finally {
      await chmod(rec, 0o600)
    }
    // and with everything private again, all of it works
    assert.equal((await runCli(['list'], env)).code, 0)
  })

  for (const kind of ['FIFO', 'symbolic link'] as const) {
    it(`a ${kind} at the account's lock path: "mailkey token --force-refresh" refuses within seconds, naming it`, async () => {
      const lock = join(accountsDir, `${EMAIL}.lock`)
      const target = join(home.dir, 'elsewhere')
      if (kind === 'FIFO') execFileSync('mkfifo', ['-m', '600', lock])
      else {
        await writeFile(target, '')
        await symlink(target, lock)
      }
      try {
        const r = await runCli(['token', EMAIL, '--force-refresh'], env, { timeoutMs: 20_000 }).catch((e: Error) => ({
          code: -1,
          signal: null,
          stdout: '',
          stderr: `did not finish: ${e.message}`,
        }))
        assert.equal(r.code, 74, r.stderr)
        assert.equal(r.stdout, '', 'no token')
        assert.ok(
          r.stderr.includes(
            `the lock file "${lock}" ${kind === 'FIFO' ? 'is not a regular file (a FIFO)' : 'is a symbolic link'}`,
          ),
          r.stderr,
        )
        assert.ok(r.stderr.includes(`rm '${lock}'`), r.stderr)
        if (kind !== 'FIFO') assert.equal(existsSync(target), true, 'the file the link points to is left alone')
      } finally {
        await rm(lock, { force: true })
      }
      // with the lock path clear, the refresh works
      const ok = await runCli(['token', EMAIL, '--force-refresh'], env, { timeoutMs: 20_000 })
      assert.equal(ok.code, 0, ok.stderr)
    })
  }
})
