/**
 * CLI helpers: flag parsing and conversion to account options (cli/flags.ts), browser detection
 * and BROWSER command splitting (cli/browser.ts), and human formatting (cli/format.ts).
 */
import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, before, describe, it } from 'node:test'

import { canOpenBrowser, splitCommand } from '../../src/cli/browser.js'
import {
  COMMON_FLAGS,
  PROVIDER_FLAGS,
  accountOptions,
  needEmail,
  parse,
  readSmallFile,
  saslFlag,
  type Values,
} from '../../src/cli/flags.js'
import { arrow, formatDuration, formatTime } from '../../src/cli/format.js'
import { UsageError } from '../../src/errors.js'

const FLAGS = { ...COMMON_FLAGS, ...PROVIDER_FLAGS }
const EMAIL = 'me@example.com'

function usage(fn: () => unknown, message: RegExp): UsageError {
  let caught: unknown
  try {
    fn()
  } catch (e) {
    caught = e
  }
  assert.ok(caught instanceof UsageError, `expected a UsageError, got ${String(caught)}`)
  assert.equal(caught.exitCode, 64)
  assert.match(caught.message, message)
  return caught
}

const opts = (args: string[]) => accountOptions(EMAIL, parse('add', args, FLAGS, 1).values)

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailkey-flags-'))
})
after(async () => rm(dir, { recursive: true, force: true }))

describe('parse', () => {
  it('returns values and positionals', () => {
    const { values, positionals } = parse(
      'add',
      ['me@example.com', '--provider', 'microsoft', '--json', '--tenant=consumers'],
      FLAGS,
      1,
    )
    assert.deepEqual(positionals, ['me@example.com'])
    assert.equal(values.provider, 'microsoft')
    assert.equal(values.json, true)
    assert.equal(values.tenant, 'consumers')
  })

  it('an unknown flag is a UsageError naming the flag and the command', () => {
    for (const [arg, name, near] of [
      ['--bogus', '--bogus', ''],
      ['--bogus=1', '--bogus', ''],
      ['-x', '-x', ''],
      // a typo of a flag names the flag it was meant to be (issue 15, item 10)
      ['--client-secrt', '--client-secrt', 'Did you mean "--client-secret"? '],
    ]) {
      const e = usage(
        () => parse('add', ['me@example.com', arg as string], FLAGS, 1),
        new RegExp(`^add: unknown option "${name}"$`),
      )
      assert.equal(e.hint, `${near}Run "mailkey add --help" for the options.`)
    }
  })

  it('a missing flag value is a UsageError', () => {
    usage(() => parse('add', ['--scope'], FLAGS, 1), /^add: .*--scope/)
  })

  it('a boolean flag given a value is a UsageError', () => {
    usage(() => parse('status', ['--json=1'], FLAGS, 0), /^status: .*--json/)
  })

  it('too many positionals are refused, naming the first extra one', () => {
    const e = usage(
      () => parse('token', ['a@example.com', 'b@example.com', 'c'], FLAGS, 1),
      /^token: unexpected argument "b@example\.com"$/,
    )
    assert.match(e.hint ?? '', /mailkey token --help/)
    assert.deepEqual(parse('list', [], FLAGS, 0).positionals, [])
  })

  it('needEmail', () => {
    assert.equal(needEmail('add', ['x@example.com']), 'x@example.com')
    const e = usage(() => needEmail('add', []), /add needs the account's e-mail address/)
    assert.match(e.hint ?? '', /mailkey add you@example\.com/)
  })
})

describe('accountOptions', () => {
  it('maps every string flag to its option, trimmed', () => {
    const o = opts([
      '--provider',
      'microsoft',
      '--issuer',
      'https://id.example.com',
      '--authorize-url',
      'https://id.example.com/a',
      '--token-url',
      ' https://id.example.com/t ',
      '--device-url',
      'https://id.example.com/d',
      '--revocation-url',
      'https://id.example.com/r',
      '--client-id',
      'cid',
      '--tenant',
      'organizations',
      '--imap-url',
      'imaps://imap.example.com',
      '--pop-url',
      'pop3s://pop.example.com',
      '--smtp-url',
      'smtp://smtp.example.com',
    ])
    assert.deepEqual(o, {
      email: EMAIL,
      provider: 'microsoft',
      issuer: 'https://id.example.com',
      authorizeUrl: 'https://id.example.com/a',
      tokenUrl: 'https://id.example.com/t',
      deviceUrl: 'https://id.example.com/d',
      revocationUrl: 'https://id.example.com/r',
      clientId: 'cid',
      tenant: 'organizations',
      imapUrl: 'imaps://imap.example.com',
      popUrl: 'pop3s://pop.example.com',
      smtpUrl: 'smtp://smtp.example.com',
    })
  })

  it('no flags -> only the email', () => {
    assert.deepEqual(opts([]), { email: EMAIL })
  })

  it('an empty flag value is refused', () => {
    usage(() => opts(['--provider', '  ']), /--provider needs a value/)
    usage(() => opts(['--client-id=']), /--client-id needs a value/)
  })

  it('--scope splits on spaces and commas', () => {
    assert.deepEqual(opts(['--scope', 'a b,c ,  d']).scopes, ['a', 'b', 'c', 'd'])
    assert.deepEqual(opts(['--scope', 'https://outlook.office.com/IMAP.AccessAsUser.All offline_access']).scopes, [
      'https://outlook.office.com/IMAP.AccessAsUser.All',
      'offline_access',
    ])
    usage(() => opts(['--scope', ' , ']), /--scope needs at least one scope/)
  })

  it('--client-secret and --client-secret-file together -> error', () => {
    usage(
      () => opts(['--client-secret', 's', '--client-secret-file', join(dir, 'x')]),
      /give --client-secret or --client-secret-file, not both/,
    )
  })

  it('--client-secret-file is read and trimmed; a missing file is an error naming it', async () => {
    const f = join(dir, 'secret.txt')
    await writeFile(f, '  from-file-secret \n')
    assert.equal(opts(['--client-secret-file', f]).clientSecret, 'from-file-secret')
    assert.equal(opts(['--client-secret', 'inline']).clientSecret, 'inline')
    const e = usage(
      () => opts(['--client-secret-file', join(dir, 'absent')]),
      /--client-secret-file: cannot read ".*absent" \(ENOENT\)/,
    )
    assert.ok(e.message.includes(dir))
  })

  it('--client-auth must be post or basic', () => {
    assert.equal(opts(['--client-auth', 'basic']).clientAuth, 'basic')
    assert.equal(opts(['--client-auth', 'post']).clientAuth, 'post')
    usage(
      () => opts(['--client-auth', 'jwt']),
      /--client-auth must be "post" \(client_secret_post\) or "basic" \(client_secret_basic\)/,
    )
  })

  it('--ca with a PEM file gives its absolute path', async () => {
    const pem = join(dir, 'ca.pem')
    await writeFile(pem, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
    assert.equal(opts(['--ca', pem]).ca, resolve(pem))
  })

  it('--ca with a non-PEM file -> error', async () => {
    const der = join(dir, 'ca.der')
    await writeFile(der, Buffer.from([0x30, 0x82, 0x01, 0x0a]))
    usage(() => opts(['--ca', der]), /--ca ".*ca\.der" holds no PEM certificate/)
    const key = join(dir, 'key.pem')
    await writeFile(key, '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n')
    usage(() => opts(['--ca', key]), /holds no PEM certificate/)
    usage(() => opts(['--ca', join(dir, 'nope.pem')]), /--ca: cannot read .*\(ENOENT\)/)
  })

  it('--ca naming a directory is an error, not a crash', async () => {
    const sub = join(dir, 'certs')
    await mkdir(sub, { recursive: true })
    usage(() => opts(['--ca', sub]), /--ca: cannot read .*\(EISDIR\)/)
  })

  it('--sasl values, in any case', () => {
    assert.equal(opts(['--sasl', 'xoauth2']).sasl, 'XOAUTH2')
    assert.equal(opts(['--sasl', 'OAuthBearer']).sasl, 'OAUTHBEARER')
    usage(() => opts(['--sasl', 'plain']), /--sasl must be xoauth2 or oauthbearer, not "plain"/)
    assert.equal(saslFlag('XOAUTH2'), 'XOAUTH2')
    usage(() => saslFlag(''), /--sasl must be/)
  })

  it('ignores values of the wrong type', () => {
    const v: Values = { provider: true, scope: ['a'] }
    assert.deepEqual(accountOptions(EMAIL, v), { email: EMAIL })
  })
})

describe('readSmallFile', () => {
  it('refuses files over 1 MiB', async () => {
    const big = join(dir, 'big.txt')
    await writeFile(big, 'x'.repeat(1024 * 1024 + 1))
    usage(() => readSmallFile(big, '--client-secret-file'), /--client-secret-file ".*big\.txt" is larger than 1 MiB/)
  })
})

describe('canOpenBrowser', () => {
  let binDir: string
  before(async () => {
    binDir = join(dir, 'bin')
    await mkdir(binDir, { recursive: true })
    await writeFile(join(binDir, 'xdg-open'), '#!/bin/sh\nexit 0\n')
    await chmod(join(binDir, 'xdg-open'), 0o755)
  })

  it('an explicit BROWSER or MAILKEY_BROWSER wins, even over SSH', () => {
    assert.equal(canOpenBrowser({ BROWSER: 'firefox' }, 'linux'), true)
    assert.equal(canOpenBrowser({ MAILKEY_BROWSER: 'w3m', SSH_CONNECTION: '1 2 3 4' }, 'linux'), true)
    assert.equal(canOpenBrowser({ BROWSER: '   ', PATH: '' }, 'linux'), false, 'blank BROWSER does not count')
  })

  it('SSH_CONNECTION or SSH_TTY means no browser', () => {
    assert.equal(
      canOpenBrowser({ SSH_CONNECTION: '10.0.0.1 5 10.0.0.2 22', DISPLAY: ':0', PATH: binDir }, 'linux'),
      false,
    )
    assert.equal(canOpenBrowser({ SSH_TTY: '/dev/pts/1' }, 'darwin'), false)
  })

  it('macOS and Windows always have one locally', () => {
    assert.equal(canOpenBrowser({}, 'darwin'), true)
    assert.equal(canOpenBrowser({}, 'win32'), true)
  })

  it('Linux needs DISPLAY or WAYLAND_DISPLAY and xdg-open on PATH', () => {
    assert.equal(canOpenBrowser({ DISPLAY: ':0', PATH: binDir }, 'linux'), true)
    assert.equal(canOpenBrowser({ WAYLAND_DISPLAY: 'wayland-0', PATH: `/nonexistent:${binDir}` }, 'linux'), true)
    assert.equal(canOpenBrowser({ PATH: binDir }, 'linux'), false, 'no display')
    assert.equal(canOpenBrowser({ DISPLAY: ':0', PATH: join(dir, 'empty-bin') }, 'linux'), false, 'no xdg-open')
    assert.equal(canOpenBrowser({ DISPLAY: ':0' }, 'linux'), false, 'no PATH')
  })

  it('a non-executable xdg-open does not count', async () => {
    const other = join(dir, 'noexec')
    await mkdir(other, { recursive: true })
    await writeFile(join(other, 'xdg-open'), '#!/bin/sh\n')
    await chmod(join(other, 'xdg-open'), 0o644)
    // root may execute anything with an x bit somewhere; 0644 has none
    assert.equal(canOpenBrowser({ DISPLAY: ':0', PATH: other }, 'linux'), false)
  })
})

describe('splitCommand', () => {
  it('splits on whitespace', () => {
    assert.deepEqual(splitCommand('firefox --new-window'), ['firefox', '--new-window'])
    assert.deepEqual(splitCommand('  w3m   %s  '), ['w3m', '%s'])
    assert.deepEqual(splitCommand(''), [])
  })

  it('keeps double- and single-quoted words together', () => {
    assert.deepEqual(splitCommand('"/Applications/My Browser.app/bin" --url "%s"'), [
      '/Applications/My Browser.app/bin',
      '--url',
      '%s',
    ])
    assert.deepEqual(splitCommand("open -a 'Google Chrome' %s"), ['open', '-a', 'Google Chrome', '%s'])
    assert.deepEqual(splitCommand('a "" b'), ['a', '', 'b'])
    assert.deepEqual(splitCommand(`x "it's" 'say "hi"'`), ['x', "it's", 'say "hi"'])
  })
})

describe('format', () => {
  it('formatDuration: seconds, then minutes and seconds under an hour', () => {
    assert.equal(formatDuration(872), '14 min 32 s')
    assert.equal(formatDuration(0), '0 s')
    assert.equal(formatDuration(5), '5 s')
    assert.equal(formatDuration(59.6), '1 min 00 s')
    assert.equal(formatDuration(3599), '59 min 59 s')
    assert.equal(formatDuration(-30), '0 s')
  })

  it('arrow: → only where the locale is UTF-8', () => {
    assert.equal(arrow({ LANG: 'en_US.UTF-8' }), '→')
    assert.equal(arrow({ LANG: 'C' }), '->')
    assert.equal(arrow({}), '->')
    assert.equal(arrow({ LANG: 'en_US.UTF-8', LC_ALL: 'C' }), '->', 'LC_ALL wins')
    assert.equal(arrow({ LC_CTYPE: 'C.utf8' }), '→')
  })

  it('formatDuration: hours and minutes under a day, then days', () => {
    assert.equal(formatDuration(3600), '1 h 00 min')
    assert.equal(formatDuration(4000), '1 h 06 min')
    assert.equal(formatDuration(86_399), '23 h 59 min')
    assert.equal(formatDuration(86_400), '1.0 days')
    assert.equal(formatDuration(200_000), '2.3 days')
  })

  it('formatTime', () => {
    assert.equal(formatTime(undefined), '-')
    assert.equal(formatTime(''), '-')
    assert.equal(formatTime('2026-11-22T10:00:00.123Z'), '2026-11-22 10:00:00 UTC')
    assert.equal(formatTime('2026-11-22T10:00:00Z'), '2026-11-22 10:00:00 UTC')
  })
})
