// Issue 15, item 10: `mailkey completion bash|zsh|fish`, tested in the real shells. bash: the
// script sourced, COMP_WORDS/COMP_CWORD set, _mailkey called, COMPREPLY read. zsh: an interactive
// zsh in a pseudo-terminal (zsh/zpty) with compinit, TAB pressed. fish: `complete -C`. Accounts
// come from a stand-in `mailkey` on PATH that prints what `mailkey list` prints and notes how it
// was run. Under CI=true a missing shell fails; elsewhere its test is skipped.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { main } from '../../src/cli/main.js'
import { FLAG_VALUES, completionSpec } from '../../src/cli/completion.js'
import { TABLE } from '../../src/cli/table.js'
import { captureIO } from '../harness/capture-io.js'

const CI = process.env.CI === 'true'
const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
/** skipped where the shell is missing, but never under CI=true */
const shellTest = (shell: string): { skip?: string } =>
  have(shell) || CI ? {} : { skip: `${shell} is not installed (.ci/packages.txt lists it)` }

let dir: string
let env: Record<string, string>
const scripts: Record<string, string> = {}

async function generate(shell: string): Promise<{ code: number; out: string; err: string }> {
  const io = captureIO(env)
  const code = await main(['completion', shell], io)
  return { code, out: io.out, err: io.err }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailkey-completion-'))
  env = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state') }
  for (const shell of ['bash', 'zsh', 'fish']) {
    const r = await generate(shell)
    assert.equal(r.code, 0, r.err)
    scripts[shell] = join(dir, `mailkey.${shell}`)
    await writeFile(scripts[shell] as string, r.out)
  }
  // a stand-in for `mailkey list`: two accounts as list prints them, and a note of how it was run
  await writeFile(
    join(dir, 'mailkey'),
    `#!/bin/sh
{ echo "args: $*"; if [ -t 0 ]; then echo "stdin: terminal"; else echo "stdin: $(readlink /proc/self/fd/0)"; fi; } >>"${dir}/ran"
[ "$1" = list ] || exit 64
printf 'alice@example.test\\tmicrosoft\\ttoken valid 12 min 00 s\\n'
printf 'bob@example.test\\tgoogle\\tneeds sign-in\\n'
[ -n "$HOSTILE" ] && printf '%s\\tcustom\\tneeds sign-in\\n' "$HOSTILE"
echo 'mailkey: something on stderr' >&2
`,
  )
  await chmod(join(dir, 'mailkey'), 0o755)
})
after(() => rm(dir, { recursive: true, force: true }))

const PATH = (): string => `${dir}:/usr/bin:/bin`

/** what bash completes for `line` (the last word is the one being completed) */
function bash(...words: string[]): string[] {
  const r = spawnSync(
    'bash',
    [
      '-c',
      `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _mailkey; printf '%s\\n' "\${COMPREPLY[@]}"`,
      'bash',
      scripts.bash as string,
      'mailkey',
      ...words,
    ],
    { encoding: 'utf8', env: { PATH: PATH(), HOME: dir }, cwd: dir },
  )
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stderr, '')
  return r.stdout.split('\n').filter(Boolean).sort()
}

/** what fish completes for the command line `line` */
function fish(line: string): string[] {
  const r = spawnSync(
    'fish',
    ['--no-config', '-c', `source $argv[1]; complete -C"$argv[2]"`, scripts.fish as string, line],
    {
      encoding: 'utf8',
      env: { PATH: PATH(), HOME: dir },
      cwd: dir,
    },
  )
  assert.equal(r.status, 0, r.stderr)
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t')[0] as string)
    .sort()
}

/**
 * zsh, interactively: for each case a zsh on a pseudo-terminal (zpty) with compinit and the
 * script, the line typed, TAB pressed twice, and its screen read until the wanted word shows (the
 * outer timeout only guards against a hang); the lines whose word showed.
 */
function zshShows(cases: [line: string, want: string][]): string[] {
  const driver = `
zmodload zsh/zpty
zpty -b z 'zsh -f -i'
zpty -w z "PS1='> '; autoload -U compinit; compinit -u -D; source \${(q)1}; print READY"
zpty -r z out '*READY*'; zpty -r z out '*READY*'
zpty -w -n z "$2"$'\\t\\t'
zpty -r z out "*$3*" && print -r -- "FOUND $2"
zpty -d z
`
  return cases.flatMap(([line, want]) => {
    const r = spawnSync('zsh', ['-f', '-c', driver, 'zsh', scripts.zsh as string, line, want], {
      encoding: 'utf8',
      env: { PATH: PATH(), HOME: dir, TERM: 'xterm' },
      cwd: dir,
      timeout: 60_000,
    })
    return [...r.stdout.matchAll(/^FOUND (.*)$/gm)].map((m) => m[1] as string)
  })
}

describe('mailkey completion', () => {
  it('refuses a shell it does not know, and a missing one (exit 64)', async () => {
    assert.equal((await generate('powershell')).code, 64)
    assert.match((await generate('zhs')).err, /Did you mean "mailkey completion zsh"\?/)
  })

  it("knows every command and subcommand of the table, and each one's flags", async () => {
    const spec = await completionSpec(TABLE, env)
    const root = spec.paths.find((p) => p.path === '')
    assert.deepEqual(root?.children, [...TABLE.map((e) => e.name), 'help'])
    const of = (path: string) => spec.paths.find((p) => p.path === path)
    assert.ok(of('proxy password')?.flags.includes('--save'))
    assert.ok(of('serve key add')?.valued.includes('--accounts'))
    assert.ok(of('token')?.valued.includes('--min-validity'))
    assert.ok(!of('agent')?.flags.includes('--keys-on-stdin'), 'an internal flag is not offered')
  })

  it('every flag with fixed values or a file is a flag some command parses', async () => {
    const spec = await completionSpec(TABLE, env)
    const all = new Set(spec.paths.flatMap((p) => p.valued))
    for (const flag of Object.keys(FLAG_VALUES)) assert.ok(all.has(`--${flag}`), `--${flag}`)
  })
})

describe('bash', shellTest('bash'), () => {
  it('commands, subcommands, flags and their values', () => {
    assert.deepEqual(bash('pro'), ['proxy'])
    assert.deepEqual(bash('proxy', ''), ['install-service', 'password'])
    assert.deepEqual(bash('serve', 'key', ''), ['add', 'list', 'remove'])
    assert.deepEqual(bash('store', 'ro'), ['rotate-key'])
    assert.deepEqual(bash('token', '--min-v'), ['--min-validity'])
    assert.deepEqual(bash('proxy', 'password', '--s'), ['--save'])
    assert.deepEqual(bash('add', 'x@example.test', '--provider', 'g'), ['google'])
    assert.deepEqual(bash('test', 'x@example.test', '--protocol', ''), ['imap', 'pop', 'smtp'])
    assert.deepEqual(bash('completion', ''), ['bash', 'fish', 'zsh'])
    assert.deepEqual(bash('help', 'serve', 'key', 'a'), ['add'])
    assert.deepEqual(bash('--vers'), ['--version'])
  })

  it("a flag's value is not taken for a positional: config --via proxy ms<TAB> is a client", () => {
    assert.deepEqual(bash('config', '--via', 'proxy', 'ms'), ['msmtp'])
  })

  it('files for a flag that names a file', async () => {
    await writeFile(join(dir, 'secret-file.txt'), 'x')
    assert.deepEqual(bash('import', 'x@example.test', '--refresh-token-file', 'secret-f'), ['secret-file.txt'])
  })

  it('accounts from "mailkey list", run with no terminal on stdin; its stderr never shows', async () => {
    await rm(join(dir, 'ran'), { force: true })
    assert.deepEqual(bash('token', ''), ['alice@example.test', 'bob@example.test'])
    assert.deepEqual(bash('config', 'msmtp', 'al'), ['alice@example.test'])
    assert.deepEqual(bash('proxy', 'password', 'b'), ['bob@example.test'])
    const ran = await readFile(join(dir, 'ran'), 'utf8')
    assert.match(ran, /^args: list$/m)
    assert.doesNotMatch(ran, /^args: (?!list$)/m)
    assert.match(ran, /^stdin: \/dev\/null$/m)
  })

  it('an address with shell syntax in it is a word, never code: offered quoted, nothing runs', async () => {
    const pwned = join(dir, 'pwned')
    for (const hostile of [
      '`touch${IFS}' + pwned + '`@example.com',
      '$(touch${IFS}' + pwned + ')@example.com',
      'a\'b"c;d@example.com',
    ]) {
      const r = spawnSync(
        'bash',
        [
          '-c',
          `source "$1"; COMP_WORDS=(mailkey token ''); COMP_CWORD=2; _mailkey; printf '%s\\n' "\${COMPREPLY[@]}"`,
          'bash',
          scripts.bash as string,
        ],
        { encoding: 'utf8', env: { PATH: PATH(), HOME: dir, HOSTILE: hostile }, cwd: dir },
      )
      assert.equal(r.status, 0, r.stderr)
      const offered = r.stdout.split('\n').filter(Boolean)
      assert.equal(offered.length, 3, r.stdout)
      // what bash would insert reads back, through the shell, as exactly the address
      const hostileWord = offered.find((w) => !w.endsWith('@example.test')) as string
      const back = spawnSync('bash', ['-c', `printf '%s' ${hostileWord}`], { encoding: 'utf8' })
      assert.equal(back.stdout, hostile)
      assert.equal(existsSync(pwned), false, `completing ${hostile} ran it`)
    }
  })

  it('no account list where no account is asked for', async () => {
    await rm(join(dir, 'ran'), { force: true })
    bash('add', '')
    bash('list', '')
    await assert.rejects(readFile(join(dir, 'ran'), 'utf8'), { code: 'ENOENT' })
  })
})

describe('zsh', shellTest('zsh'), () => {
  it('TAB completes subcommands, flags and accounts in an interactive zsh', () => {
    const cases: [string, string][] = [
      ['mailkey proxy pa', 'password'],
      ['mailkey serve key ', 'remove'],
      ['mailkey token al', 'alice@example.test'],
    ]
    assert.deepEqual(
      zshShows(cases),
      cases.map(([line]) => line),
    )
  })

  it('the candidates, from the shared sh walk under zsh', () => {
    const r = spawnSync(
      'zsh',
      ['-f', '-c', 'source "$1" 2>/dev/null; _mailkey_candidates mailkey "" serve key', 'zsh', scripts.zsh as string],
      { encoding: 'utf8', env: { PATH: PATH(), HOME: dir } },
    )
    assert.equal(r.stdout.trim(), 'add remove list')
  })
})

describe('fish', shellTest('fish'), () => {
  it('commands, subcommands, flags, values and accounts', () => {
    assert.deepEqual(fish('mailkey pro'), ['proxy'])
    assert.deepEqual(fish('mailkey serve key '), ['add', 'list', 'remove'])
    assert.deepEqual(fish('mailkey token --min-v'), ['--min-validity'])
    assert.deepEqual(fish('mailkey add x@example.test --sasl '), ['oauthbearer', 'xoauth2'])
    assert.deepEqual(fish('mailkey help proxy '), ['install-service', 'password'])
    assert.deepEqual(fish('mailkey status '), ['alice@example.test', 'bob@example.test'])
  })
})
