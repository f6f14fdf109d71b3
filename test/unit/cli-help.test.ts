// Issue 15, item 10: help and conventions. Every command and subcommand of the CLI's own table
// (src/cli/table.ts) answers --help, -h and `mailkey help ...` with its usage and exit 0, and its
// help names every flag it parses; a command or subcommand the modules dispatch but the table
// lacks fails here. Mistyped commands, subcommands and flags get "did you mean" (exit 64, stderr);
// --version prints package.json's version; one function decides colour (NO_COLOR, TERM=dumb).
// main() runs in process, with a home of its own.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { USAGE, main } from '../../src/cli/main.js'
import { TABLE, commandPaths, entryNamed } from '../../src/cli/table.js'
import { flagsSeenBy } from '../../src/cli/flags.js'
import { HIDDEN_FLAGS } from '../../src/cli/completion.js'
import { closest, editDistance } from '../../src/cli/suggest.js'
import { terminalAbilities } from '../../src/cli/terminal.js'
import { captureIO } from '../harness/capture-io.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

let home: string
let env: Record<string, string>
before(async () => {
  home = await mkdtemp(join(tmpdir(), 'mailkey-help-'))
  env = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_STATE_HOME: join(home, 'state'),
    PATH: '/usr/bin:/bin',
  }
})
after(() => rm(home, { recursive: true, force: true }))

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIO(env)
  const code = await main(argv, io)
  return { code, out: io.out, err: io.err }
}

const PATHS = commandPaths()

describe('--help for every command and subcommand of the table', () => {
  it('the table holds every command and the subcommands of proxy, serve key and store', () => {
    const names = PATHS.map((p) => p.join(' '))
    for (const want of ['add', 'token', 'proxy password', 'serve key add', 'store init', 'unlock', 'completion'])
      assert.ok(names.includes(want), want)
  })

  for (const path of PATHS) {
    const name = path.join(' ')
    it(`${name}: --help, -h and "mailkey help ${name}" print its usage and exit 0`, async () => {
      const long = await cli(...path, '--help')
      assert.equal(long.code, 0, long.err)
      assert.match(long.out, /^Usage: mailkey /)
      assert.equal(long.err, '')
      assert.deepEqual(await cli(...path, '-h'), long)
      assert.deepEqual(await cli('help', ...path), long)
    })
  }

  it('the help of each command names every flag it parses (provider flags: in "mailkey --help")', async () => {
    for (const path of PATHS) {
      const entry = entryNamed(path[0] as string)
      assert.ok(entry)
      const cmd = await entry.load()
      let help = ''
      const io = { ...captureIO(env), stdout: (t: string) => void (help += t) }
      const flags = await flagsSeenBy(() => cmd.run([...path.slice(1), '--help'], io))
      assert.ok(Object.keys(flags).length > 0, `${path.join(' ')} parses its flags`)
      for (const flag of Object.keys(flags)) {
        if (['help', 'debug', ...HIDDEN_FLAGS].includes(flag)) continue
        const shown = new RegExp(`--${flag}\\b|--${flag.split('-')[0]}/-${flag.split('-')[1]}\\b`)
        assert.ok(shown.test(help) || shown.test(USAGE), `"mailkey ${path.join(' ')} --help" names --${flag}`)
      }
    }
  })

  it('every subcommand the command modules dispatch is in the table', async () => {
    const dir = join(ROOT, 'src/cli/commands')
    const known = new Set(PATHS.map((p) => p[p.length - 1]))
    let seen = 0
    for (const file of await readdir(dir)) {
      const text = await readFile(join(dir, file), 'utf8')
      for (const m of text.matchAll(/\b(?:sub|verb|args\[0\]) === '([a-z-]+)'/g)) {
        seen++
        assert.ok(known.has(m[1] as string), `${file} dispatches "${m[1]}", which the table lacks`)
      }
    }
    assert.ok(seen >= 10, `${seen} dispatches found`)
  })

  it('"mailkey --help" names every command of the table, help, completion and --version', () => {
    for (const e of TABLE) assert.match(USAGE, new RegExp(`mailkey ${e.name}\\b`), e.name)
    assert.match(USAGE, /mailkey help <command>/)
    assert.match(USAGE, /--version/)
  })

  it('"mailkey help" alone is "mailkey --help" (exit 0); "mailkey" alone prints it with exit 64', async () => {
    const help = await cli('help')
    assert.equal(help.code, 0)
    assert.equal(help.out, USAGE)
    assert.deepEqual(await cli('--help'), help)
    assert.equal((await cli()).code, 64)
  })

  it('"mailkey help token you@example.com": the command\'s own help', async () => {
    assert.deepEqual(await cli('help', 'token', 'you@example.com'), await cli('token', '--help'))
  })
})

describe('did you mean', () => {
  const cases: [string[], RegExp, RegExp][] = [
    [['ad', 'x@example.com'], /^mailkey: unknown command "ad"$/m, /Did you mean "mailkey add"\?/],
    [['stauts'], /unknown command "stauts"/, /Did you mean "mailkey status"\?/],
    [['token', '--min-valdity', '60'], /^mailkey: token: unknown option "--min-valdity"$/m, /"--min-validity"/],
    [['list', '-json'], /list: unknown option/, /Did you mean "--json"\?/],
    [['add', 'x@example.com', '--provder', 'google'], /unknown option "--provder"/, /"--provider"/],
    [['proxy', 'pasword', 'x@example.com'], /proxy: unknown command "pasword"/, /"mailkey proxy password"/],
    [['serve', 'key', 'ad', 'k'], /serve key: unknown command "ad"/, /"mailkey serve key add"/],
    [['store', 'int'], /store: unknown command "int"/, /"mailkey store init"/],
    [['help', 'prox'], /unknown command "prox"/, /"mailkey proxy"/],
    [['completion', 'bahs'], /no completion for the shell "bahs"/, /"mailkey completion bash"/],
  ]
  for (const [argv, message, hint] of cases) {
    it(`mailkey ${argv.join(' ')}`, async () => {
      const r = await cli(...argv)
      assert.equal(r.code, 64)
      assert.equal(r.out, '')
      assert.match(r.err, message)
      assert.match(r.err, hint)
    })
  }

  it('a word far from every command gets the list, not a guess', async () => {
    const r = await cli('frobnicate')
    assert.equal(r.code, 64)
    assert.doesNotMatch(r.err, /Did you mean/)
    assert.match(r.err, /mailkey --help/)
  })

  it('edit distance: insertions, deletions, substitutions, swaps; typos only', () => {
    assert.equal(editDistance('add', 'add'), 0)
    assert.equal(editDistance('ad', 'add'), 1)
    assert.equal(editDistance('stauts', 'status'), 1)
    assert.equal(editDistance('kitten', 'sitting'), 3)
    assert.equal(closest('min-valdity', ['min-validity', 'json']), 'min-validity')
    assert.equal(closest('prox', ['proxy', 'token']), 'proxy')
    assert.equal(closest('xyz', ['add', 'token']), undefined)
    assert.equal(closest('tkn', ['token']), undefined)
  })
})

describe('--version', () => {
  it('prints the version of package.json, for --version and -V', async () => {
    const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    for (const flag of ['--version', '-V']) {
      const r = await cli(flag)
      assert.equal(r.code, 0)
      assert.equal(r.out, `${version}\n`)
    }
  })
})

describe('colour and redraws: one decision', () => {
  it('a terminal gets colour and redraws', () => {
    assert.deepEqual(terminalAbilities({ TERM: 'xterm-256color' }, true), { colour: true, redraw: true })
  })
  it('NO_COLOR set and not empty: no colour, redraws stay', () => {
    assert.deepEqual(terminalAbilities({ NO_COLOR: '1' }, true), { colour: false, redraw: true })
    assert.deepEqual(terminalAbilities({ NO_COLOR: '' }, true), { colour: true, redraw: true })
  })
  it('TERM=dumb or no terminal: neither', () => {
    assert.deepEqual(terminalAbilities({ TERM: 'dumb' }, true), { colour: false, redraw: false })
    assert.deepEqual(terminalAbilities({}, false), { colour: false, redraw: false })
  })
  it('the CLI writes an escape only in add.ts, where terminalAbilities() allows it', async () => {
    const found: string[] = []
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = join(dir, e.name)
        if (e.isDirectory()) await walk(p)
        else if (/\\x1b|\\u001b|\\033|\x1b/.test(await readFile(p, 'utf8'))) found.push(p.slice(ROOT.length))
      }
    }
    await walk(join(ROOT, 'src'))
    assert.deepEqual(found, ['src/cli/commands/add.ts'])
    assert.match(await readFile(join(ROOT, 'src/cli/commands/add.ts'), 'utf8'), /terminalAbilities\(io\.env/)
  })
})

describe('help says where secrets come from', () => {
  const cases: [string[], RegExp[]][] = [
    [['add'], [/--client-secret-file/, /stdin/]],
    [['import'], [/--refresh-token-file/, /stdin/]],
    [
      ['proxy', 'password'],
      [/terminal/, /stdin/, /never from the command line/],
    ],
    [['store'], [/passphrase_command/, /terminal/, /stdin/, /MAILKEY_STORE_KEY_FILE/]],
    [['unlock'], [/passphrase_command/, /terminal/, /stdin/]],
    [['token'], [/Secrets:/]],
    [['serve', 'key', 'add'], [/Secrets:/]],
  ]
  for (const [path, want] of cases) {
    it(path.join(' '), async () => {
      const r = await cli(...path, '--help')
      for (const w of want) assert.match(r.out, w)
    })
  }
})
