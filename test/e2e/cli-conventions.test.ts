// Issue 15, item 10, through the installed entry (dist/cli/mailkey.cjs, which answers --version
// itself, without the full CLI): the version is package.json's, `help <command> <sub>` is the
// subcommand's --help, a typo gets "did you mean" on stderr with exit 64, and the completion script
// it prints loads in bash and completes accounts from the real `mailkey list`.
import { it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BIN, assertBuilt, runCli } from '../harness/cli.js'
import { makeTmpHome, type TmpHome } from '../harness/tmp-home.js'
import { FileStore } from '../../src/store/file-store.js'
import { resolvePaths } from '../../src/config/paths.js'
import { accountRecord } from '../harness/records.js'

let home: TmpHome
let env: Record<string, string>
before(async () => {
  assertBuilt()
  home = await makeTmpHome()
  env = home.env
})
after(() => home?.cleanup())

it('--version and -V print the version of package.json', async () => {
  const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  for (const flag of ['--version', '-V']) {
    const r = await runCli([flag], env)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, `${version}\n`)
  }
})

it('help proxy password is proxy password --help; a typo is a usage error with a suggestion', async () => {
  const help = await runCli(['help', 'proxy', 'password'], env)
  assert.equal(help.code, 0)
  assert.equal(help.stdout, (await runCli(['proxy', 'password', '--help'], env)).stdout)
  assert.match(help.stdout, /^Usage: mailkey proxy password/)
  const typo = await runCli(['token', '--min-valdity', '60'], env)
  assert.equal(typo.code, 64)
  assert.equal(typo.stdout, '')
  assert.match(typo.stderr, /Did you mean "--min-validity"\?/)
})

it('the bash completion script it prints loads and completes', async () => {
  const script = await runCli(['completion', 'bash'], env)
  assert.equal(script.code, 0, script.stderr)
  const file = join(home.dir, 'mailkey.bash')
  await writeFile(file, script.stdout)
  const r = spawnSync(
    'bash',
    [
      '-c',
      'source "$1"; COMP_WORDS=(mailkey serve key a); COMP_CWORD=3; _mailkey; echo "${COMPREPLY[*]}"',
      'bash',
      file,
    ],
    { encoding: 'utf8' },
  )
  assert.equal(r.stdout.trim(), 'add', r.stderr)
  assert.ok(BIN.endsWith('mailkey.cjs'))
})

it('bash completes the accounts of the real "mailkey list", and nothing secret', async () => {
  const email = 'carol@example.test'
  await new FileStore(resolvePaths(env)).write(
    accountRecord(email, {
      refreshToken: 'rt-completion-secret',
      accessToken: 'at-completion-secret',
      settings: {
        endpoints: { token: 'https://as.example.test/token' },
        servers: { imap: 'imaps://imap.example.test:993' },
      },
    }),
  )
  // `mailkey` on PATH is this build
  const bin = join(home.dir, 'bin')
  await mkdir(bin, { recursive: true })
  await writeFile(join(bin, 'mailkey'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`)
  await chmod(join(bin, 'mailkey'), 0o755)
  const script = await runCli(['completion', 'bash'], env)
  const file = join(home.dir, 'mailkey.bash')
  await writeFile(file, script.stdout)
  const r = spawnSync(
    'bash',
    [
      '-c',
      'source "$1"; COMP_WORDS=(mailkey token ""); COMP_CWORD=2; _mailkey; printf "%s\\n" "${COMPREPLY[@]}"',
      'bash',
      file,
    ],
    { encoding: 'utf8', env: { ...env, PATH: `${bin}:${env.PATH ?? '/usr/bin:/bin'}` } },
  )
  assert.equal(r.stdout, `${email}\n`, r.stderr)
  assert.doesNotMatch(r.stdout + r.stderr, /completion-secret/)
})
