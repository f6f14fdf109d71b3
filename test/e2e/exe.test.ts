// Issue 15 item 12: the single-file executable (dist/exe/mailkey, ADR 0013) runs the whole main
// job with no Node on the machine: PATH holds only the executable (as `mailkey`) and msmtp. It
// signs in at the lab OAuth server (device flow, approved by the harness), prints a token, the
// status, an msmtp configuration that msmtp then uses to send through the testbed's SMTP server
// (its passwordeval runs `mailkey token` from that PATH), logs in to Dovecot's IMAP and the SMTP
// server (`mailkey test`), refreshes through its own refresh worker, and keeps its store key in a
// real Secret Service through the embedded keyring addon, loaded from a checked private copy, or
// under a passphrase held by its agent (the executable started again).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { realpathSync } from 'node:fs'
import { chmod, lstat, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startOAuthServer, introspectionUrl, type LabServer } from '../harness/oauth-server.js'
import { makeTmpHome, type TmpHome } from '../harness/tmp-home.js'
import { findLeaks, have, noteSecrets, runCommand, transcript } from '../harness/cli.js'
import { labFlags, rememberTokens } from '../harness/sign-in.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from '../harness/dovecot.js'
import { startSmtp, type Smtp } from '../harness/smtp-server.js'
import { KEYRING_INSTALL_HINT, keyringAvailable, startKeyring, type Keyring } from '../harness/keyring.js'
import { buildExe, exePath, runExe, spawnExe } from '../harness/exe.js'

const EMAIL = 'alice@example.test'
const linuxX64 = process.platform === 'linux' && process.arch === 'x64'
const missing = [
  !linuxX64 && 'linux-x64',
  !dovecotAvailable() && 'dovecot',
  !have('msmtp') && 'msmtp',
  !keyringAvailable() && 'gnome-keyring/dbus/libsecret-tools',
].filter(Boolean)
const INSTALL = `${DOVECOT_INSTALL_HINT} msmtp ${KEYRING_INSTALL_HINT}`
if (missing.length && process.env.CI)
  throw new Error(`the executable's test needs ${missing.join(', ')} in CI (${INSTALL})`)

describe('the single-file executable, alone on PATH', { skip: missing.length ? missing.join(', ') : false }, () => {
  let exe = ''
  let lab: LabServer
  let dovecot: Dovecot
  let smtp: Smtp
  let home: TmpHome
  let env: Record<string, string>
  const secrets: string[] = []
  const run = (args: string[], e = env, stdin = ''): ReturnType<typeof runExe> => runExe(exe, args, e, stdin)

  before(async () => {
    exe = buildExe()
    lab = await startOAuthServer({ deviceInterval: 1 })
    dovecot = await startDovecot({ introspectionUrl: introspectionUrl(lab.issuer) })
    smtp = await startSmtp({
      introspect: (t, s) => lab.introspect(t, { service: s }),
      tls: { certFile: dovecot.certFile, keyFile: dovecot.keyFile },
      deliverTo: (u) => dovecot.mailDir(u),
    })
    home = await makeTmpHome()
    env = { ...home.env, PATH: await exePath(exe, ['msmtp']) }
  })
  after(async () => {
    await smtp?.stop()
    await dovecot?.stop()
    await lab?.close()
    await home?.cleanup()
  })

  it('PATH has no node, and the executable carries Node itself', async () => {
    const sh = spawnSync('/bin/sh', ['-c', 'command -v node; command -v mailkey'], { env, encoding: 'utf8' })
    assert.equal(sh.stdout.trim(), join(env.PATH as string, 'mailkey'), 'mailkey found, node not')
    const v = await run(['--version'])
    assert.equal(v.code, 0, v.stderr)
    assert.equal(
      v.stdout.trim(),
      JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')).version,
    )
    assert.equal(v.stderr, '', 'no experimental-SEA warning')
  })

  it('add (device sign-in), token, status, config msmtp, then msmtp and mailkey test log in', async () => {
    const p = dovecot.ports
    const servers = [
      '--imap-url',
      `imaps://localhost:${p.imaps}`,
      '--pop-url',
      `pop3s://localhost:${p.pop3s}`,
      '--smtp-url',
      `smtp://localhost:${smtp.ports.submission}`,
    ]
    const add = spawnExe(
      exe,
      ['add', EMAIL, '--device', '--json', ...labFlags(lab), ...servers, '--ca', dovecot.caFile],
      env,
    )
    await lab.approveDevice(String((await add.event('device_code')).user_code), { login: EMAIL })
    const added = await add.done
    assert.equal(added.code, 0, added.stderr)
    const { accessToken } = await rememberTokens(env, EMAIL, secrets)

    const token = await run(['token', EMAIL])
    assert.equal(token.code, 0, token.stderr)
    assert.equal(token.stdout, `${accessToken}\n`, 'the stored token, and only it')

    const status = await run(['status', EMAIL])
    assert.equal(status.code, 0, status.stderr)
    assert.ok(status.stdout.includes(EMAIL), status.stdout)

    const cfg = await run(['config', 'msmtp', EMAIL])
    assert.equal(cfg.code, 0, cfg.stderr)
    // the mailkey on this PATH is this very executable: the short name, and no note about PATH
    assert.match(cfg.stdout, /^passwordeval "mailkey token alice@example\.test"$/m)
    assert.doesNotMatch(cfg.stderr, /on PATH/)
    // copied somewhere not on PATH and run from there: configs name that file in full
    const elsewhere = await run(['config', 'msmtp', EMAIL], { ...env, PATH: join(env.HOME as string, 'no-bin') })
    assert.equal(elsewhere.code, 0, elsewhere.stderr)
    assert.match(
      elsewhere.stdout,
      new RegExp(
        `^passwordeval "${realpathSync(exe).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} token alice@example\\.test"$`,
        'm',
      ),
    )
    assert.match(elsewhere.stderr, /no "mailkey" is on PATH/)
    const rc = join(env.HOME as string, '.msmtprc')
    await writeFile(rc, cfg.stdout, { mode: 0o600 })
    const before = smtp.received.length
    // async: the SMTP server runs in this process
    const mail = `From: ${EMAIL}\r\nTo: bob@example.test\r\nSubject: from the executable\r\n\r\nhello\r\n`
    const sent = await runCommand('msmtp', ['-C', rc, 'bob@example.test'], env, mail)
    assert.equal(sent.code, 0, sent.stderr)
    assert.equal(smtp.received.length, before + 1)
    assert.equal(smtp.received.at(-1)?.user, EMAIL, "authenticated with alice's token")

    const test = await run(['test', EMAIL])
    assert.equal(test.code, 0, test.stdout + test.stderr)
    assert.match(test.stdout, /IMAP .* ok/)
    assert.match(test.stdout, /POP3 .* ok/)
    assert.match(test.stdout, /SMTP .* ok/)
  })

  it('token --force-refresh: a new token (the refresh worker is this executable started again)', async () => {
    const old = (await rememberTokens(env, EMAIL, secrets)).accessToken
    const r = await run(['token', EMAIL, '--force-refresh'])
    assert.equal(r.code, 0, r.stderr)
    const { accessToken } = await rememberTokens(env, EMAIL, secrets)
    assert.notEqual(accessToken, old)
    assert.equal(r.stdout, `${accessToken}\n`)
  })

  it('the OS keyring through the embedded addon: a private, checked copy holding only the addon', async () => {
    // no Secret Service reachable: the addon loads, the keyring refuses, and the store is unchanged
    const noBus = { ...env, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent' }
    const nokr = await run(['store', 'migrate', '--to', 'keyring'], noBus)
    assert.notEqual(nokr.code, 0, nokr.stdout)
    assert.match(nokr.stderr, /the OS keyring cannot store mailkey's key \(.*DBus/)
    assert.equal((await run(['token', EMAIL], noBus)).code, 0, 'still a plain store')

    const keyring: Keyring = await startKeyring()
    try {
      const kenv = { ...env, ...keyring.env }
      const mig = await run(['store', 'migrate', '--to', 'keyring'], kenv)
      assert.equal(mig.code, 0, `${mig.stderr}\n${keyring.diagnose()}`)
      const t = await run(['token', EMAIL], kenv)
      assert.equal(t.code, 0, `${t.stderr}\n${keyring.diagnose()}`)
      assert.ok(secrets.includes(t.stdout.trim()), 'the sealed store gave the token back')

      const dir = join(env.XDG_CACHE_HOME as string, 'mailkey', 'exe')
      assert.equal((await stat(dir)).mode & 0o777, 0o700)
      const files = await readdir(dir)
      assert.equal(files.length, 1, files.join(' '))
      const file = join(dir, files[0] as string)
      assert.equal((await stat(file)).mode & 0o777, 0o600)
      const bytes = await readFile(file)
      const hash = createHash('sha256').update(bytes).digest('hex')
      assert.equal(files[0], `keyring-${hash.slice(0, 32)}.node`, 'named by its content')
      assert.deepEqual(findLeaks([bytes.toString('latin1')], secrets), [], 'no token in the extracted file')

      // a changed copy is not loaded: it is replaced by the embedded addon's bytes
      await writeFile(file, 'not the addon')
      const again = await run(['token', EMAIL], kenv)
      assert.equal(again.code, 0, again.stderr)
      assert.equal(
        createHash('sha256')
          .update(await readFile(file))
          .digest('hex'),
        hash,
      )

      // a link in its place is not followed, even to the right bytes: a real file replaces it
      const elsewhere = join(env.HOME as string, 'addon-copy.node')
      await writeFile(elsewhere, bytes, { mode: 0o600 })
      await rm(file)
      await symlink(elsewhere, file)
      const linked = await run(['token', EMAIL], kenv)
      assert.equal(linked.code, 0, linked.stderr)
      assert.equal((await lstat(file)).isFile(), true, 'the link was replaced by a file')
      assert.equal(
        createHash('sha256')
          .update(await readFile(file))
          .digest('hex'),
        hash,
      )

      // a directory others may enter is refused, with the reason, and nothing is loaded
      await chmod(dir, 0o755)
      const open = await run(['token', EMAIL], kenv)
      assert.equal(open.code, 77, open.stderr) // the store is locked (StoreLockedError)
      assert.match(open.stderr, /keyring module cannot be loaded here .*must be a directory .* 0700/)
      await chmod(dir, 0o700)

      const back = await run(['store', 'migrate', '--to', 'file'], kenv)
      assert.equal(back.code, 0, back.stderr)
    } finally {
      await keyring.stop()
    }
  })

  it('a passphrase store: unlock starts the agent (this executable again), token gets the key from it', async () => {
    const pass = 'correct horse battery staple 42'
    const mig = await run(['store', 'migrate', '--to', 'passphrase'], env, `${pass}\n${pass}\n`)
    assert.equal(mig.code, 0, mig.stderr)
    const locked = await run(['token', EMAIL])
    assert.equal(locked.code, 77, locked.stderr)
    const unlock = await run(['unlock'], env, `${pass}\n`)
    assert.equal(unlock.code, 0, unlock.stderr)
    try {
      const st = await run(['store', 'status'])
      assert.match(st.stdout, /agent\s+running, unlocked/)
      const t = await run(['token', EMAIL])
      assert.equal(t.code, 0, t.stderr)
      assert.ok(secrets.includes(t.stdout.trim()), 'the sealed store gave the token back')
    } finally {
      assert.equal((await run(['lock'])).code, 0)
    }
  })

  it('no secret in anything the executable printed', async () => {
    await noteSecrets(...secrets)
    assert.deepEqual(
      findLeaks(
        transcript.filter((t) => !(t.args[0] === 'token' && t.args.length <= 3)).map((t) => t.stdout + t.stderr),
        secrets,
      ),
      [],
    )
  })
})
