/**
 * The token store's protection at rest:
 *   mailkey store [status]                      how it is protected; whether an agent runs
 *   mailkey store migrate --to file|keyring|passphrase
 *   mailkey store passphrase                    a new passphrase for the same key
 *   mailkey unlock [--for 8h]                   ask once, keep the key in a background agent
 *   mailkey lock                                stop the agent (it forgets the key)
 *   mailkey agent [--for 8h]                    the agent in the foreground (a systemd user unit)
 * The work is in the library (store/migrate.ts, store/protection.ts, store/agent.ts).
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { EXIT, UsageError } from '../../errors.js'
import { resolvePaths } from '../../config/paths.js'
import { ConfigFile } from '../../config/config-file.js'
import type { FileStore } from '../../store/file-store.js'
import { openStore } from '../../store/open.js'
import type { CliIO } from '../io.js'
import { passphrasePrompt } from '../io.js'
import { COMMON_FLAGS, parse } from '../flags.js'
import { agentSocketPath, decodeKeyMap, encodeKeyMap, readMeta, type Protection } from '../../store/protection.js'
import { pingAgent, serveKeys, stopAgent } from '../../store/agent.js'
import { jsonLine } from '../json.js'

const HELP = `Usage: mailkey store [status] [--json]
       mailkey store migrate --to file|keyring|passphrase
       mailkey store passphrase
       mailkey unlock [--for 8h]  |  mailkey lock  |  mailkey agent [--for 8h]
Shared store (many hosts; MAILKEY_STORE_URL or [store] url):
       mailkey store init [--new-key FILE]     create or upgrade the schema; FILE: a new store key
       mailkey store migrate --to postgres://USER@HOST/DB
                                               move this host's accounts into a shared store
       mailkey store rotate-key --prepare      a new key at the end of the key file (copy it to every host)
       mailkey store rotate-key                the new key seals; every record sealed again
       mailkey store rotate-key --finish       older keys leave the key file

The tokens (access token, refresh token, client secret) can be kept encrypted (AES-256-GCM) with
a key held by the OS keyring (Secret Service, macOS Keychain, Windows Credential Manager) or
derived from a passphrase (scrypt). Addresses, servers and times stay readable, so "status"
works while the store is locked.

  migrate --to T   move every account to protection T (plain files, keyring, passphrase); no new
                   sign-in; a fresh key; safe to interrupt and run again
  passphrase       change the passphrase
  unlock           ask for the passphrase once (or read the keyring) and keep the key in a
                   background agent for --for (default 8h, [store] unlock_sec), reachable only by
                   you through a socket in $XDG_RUNTIME_DIR/mailkey; "mailkey token" then stays fast
  lock             stop that agent
  agent            the same agent in the foreground, until --for ends or it is stopped

A passphrase comes from [store] passphrase_command in config.toml, else the terminal, else one
line on stdin (for scripts).

Secrets: the passphrase as above, never from the command line. A shared store's key is read from
the file MAILKEY_STORE_KEY_FILE (or [store] key_file) names; "store init --new-key FILE" and
"rotate-key --prepare" write keys to such a file (0600), never to the terminal.
`

const WORKER_BIN = fileURLToPath(new URL('../bin.js', import.meta.url))

/** "8h", "30m", "90s", "2d" or seconds */
export function parseDuration(s: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(s.trim())
  if (!m) throw new UsageError(`"${s}" is not a duration`, { hint: 'Use for example 30m, 8h or 2d.' })
  const n = Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd']
  if (n < 1 || n > 31 * 86400) throw new UsageError('the duration must be from 1 second to 31 days')
  return n * 1000
}

async function newPassphrase(io: CliIO): Promise<string> {
  let pass: string | undefined
  if (io.stdinIsTTY && io.readSecretLine) {
    pass = await io.readSecretLine('New passphrase for the token store: ', io.signal)
    const again = await io.readSecretLine('Again: ', io.signal)
    if (pass !== again) throw new UsageError('the two passphrases differ', { hint: 'Run the command again.' })
  } else {
    pass = await io.readLine('', io.signal)
  }
  if (pass === undefined) throw new UsageError('no passphrase given')
  if (pass.length < 8) throw new UsageError('use at least 8 characters for the passphrase')
  return pass
}

/** The store commands also take the passphrase as one line on stdin when it is not a terminal (scripts). */
function askFor(io: CliIO): { askPassphrase?: (prompt: string) => Promise<string | undefined> } {
  const tty = passphrasePrompt(io)
  if (tty.askPassphrase || io.stdinIsTTY) return tty
  let asked = false
  // once: a wrong line on stdin is not asked again
  return { askPassphrase: async () => (asked ? undefined : ((asked = true), await io.readLine('', io.signal))) }
}

/** The store these commands work on; an encrypted one unlocks with passphrase_command or `ask`. */
function storeFor(io: CliIO, ask: { askPassphrase?: (prompt: string) => Promise<string | undefined> }): FileStore {
  const paths = resolvePaths(io.env)
  return openStore({
    env: io.env,
    paths,
    passphraseCommand: async () => (await new ConfigFile(paths.configFile).loadOrNothing())?.store?.passphraseCommand,
    ...ask,
  })
}

async function unlockAll(store: FileStore): Promise<Map<string, Buffer>> {
  const keys = store.keys
  const meta = readMeta(store.paths)
  if (!keys || !meta || meta.keys.length === 0)
    throw new UsageError('the token store is not encrypted: there is nothing to unlock', {
      hint: 'Encrypt it with "mailkey store migrate --to passphrase" (or --to keyring).',
    })
  return await keys.unlockAll(meta)
}

async function lifetimeMs(store: FileStore, flag: unknown): Promise<number> {
  if (typeof flag === 'string') return parseDuration(flag)
  return ((await new ConfigFile(store.paths.configFile).load())?.store?.unlockSec ?? 8 * 3600) * 1000
}

const STORE_FLAGS = {
  ...COMMON_FLAGS,
  to: { type: 'string' },
  'new-key': { type: 'string' },
  prepare: { type: 'boolean' },
  finish: { type: 'boolean' },
} as const

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('store', args, STORE_FLAGS, 1)
  const sub = positionals[0] ?? 'status'
  if (values.help) return (io.stdout(HELP), EXIT.OK)
  const { runShared } = await import('./store-shared.js')
  const shared = await runShared(sub, values as Parameters<typeof runShared>[1], io, () => storeFor(io, askFor(io)))
  if (shared !== undefined) return shared
  const store = storeFor(io, askFor(io))
  // I2: a store others can read is refused before anything is shown or changed
  await store.assertPrivate()
  const paths = store.paths
  if (sub === 'status') {
    const meta = readMeta(paths)
    const agent = await pingAgent(agentSocketPath(paths, io.env))
    const { records } = await store.list()
    const sealed = records.filter((r) => r.sealed).length
    const protection: Protection = meta?.protection ?? 'file'
    if (values.json) {
      io.stdout(
        jsonLine('store_status', {
          kind: 'file',
          store: paths.stateDir,
          protection,
          keys: meta?.keys.map((k) => ({ kid: k.kid, kind: k.kind })) ?? [],
          account_count: records.length,
          encrypted_count: sealed,
          agent: agent ? { until: new Date(agent.until).toISOString() } : null,
        }),
      )
      return EXIT.OK
    }
    const how = {
      file: 'plain files (mode 0600, not encrypted)',
      keyring: 'encrypted; the key is in the OS keyring',
      passphrase: 'encrypted; the key is protected by a passphrase',
    }[protection]
    io.stdout(
      `token store   ${paths.stateDir}\nprotection    ${how}\naccounts      ${records.length} (${sealed} encrypted)\n`,
    )
    if ((meta?.keys.length ?? 0) > 1 || (protection === 'file' && (meta?.keys.length ?? 0) > 0))
      io.stdout(`migration     not finished: run "mailkey store migrate --to ${protection}"\n`)
    io.stdout(
      `agent         ${agent ? `running, unlocked until ${new Date(agent.until).toISOString()}` : 'not running'}\n`,
    )
    return EXIT.OK
  }
  if (sub === 'migrate') {
    const to = values.to
    if (to !== 'file' && to !== 'keyring' && to !== 'passphrase')
      throw new UsageError('store migrate needs --to file, keyring or passphrase')
    const { migrateStore } = await import('../../store/migrate.js')
    const resuming = (readMeta(paths)?.keys.length ?? 0) > 1
    // the present key first (the old passphrase, when there is one), then the new passphrase
    if ((readMeta(paths)?.keys.length ?? 0) > 0) await unlockAll(store)
    const passphrase = to === 'passphrase' && !resuming ? await newPassphrase(io) : undefined
    const r = await migrateStore(store, to, {
      ...(passphrase ? { passphrase } : {}),
      onProgress: (l) => io.stderr(`${l}\n`),
    })
    // an agent holds the old key only: stop it, the next unlock gets the new one
    const stopped = await stopAgent(agentSocketPath(paths, io.env))
    if (values.json) io.stdout(jsonLine('migrated', { ...r }))
    io.stderr(
      `The token store is now ${to === 'file' ? 'plain files (not encrypted)' : `encrypted (${to})`}: ${r.migrated.length} account(s)${r.resumed ? ', an interrupted migration finished' : ''}.\n`,
    )
    if (stopped) io.stderr('The agent was stopped (it held the old key); "mailkey unlock" starts it again.\n')
    for (const b of r.broken) io.stderr(`mailkey: not migrated: ${b.message}\n`)
    return r.broken.length ? EXIT.IOERR : EXIT.OK
  }
  if (sub === 'passphrase') {
    const { changePassphrase } = await import('../../store/migrate.js')
    await unlockAll(store)
    await changePassphrase(store, await newPassphrase(io))
    if (values.json) io.stdout(jsonLine('passphrase_changed'))
    io.stderr('The passphrase is changed (the data key and the records are the same).\n')
    return EXIT.OK
  }
  throw new UsageError(`store: unknown command "${sub}"`, { hint: 'Run "mailkey store --help".' })
}

export async function runUnlock(args: string[], io: CliIO): Promise<number> {
  const { values } = parse('unlock', args, { ...COMMON_FLAGS, for: { type: 'string' } }, 0)
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const store = storeFor(io, askFor(io))
  await store.assertPrivate()
  const sock = agentSocketPath(store.paths, io.env)
  const ms = await lifetimeMs(store, values.for)
  if (await pingAgent(sock)) await stopAgent(sock)
  const keys = await unlockAll(store)
  // the agent runs on in the background; the keys reach it through a pipe, never argv or env
  const child = spawn(
    process.execPath,
    [WORKER_BIN, 'agent', '--keys-on-stdin', '--for', `${Math.round(ms / 1000)}s`],
    {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
      env: io.env as NodeJS.ProcessEnv,
    },
  )
  child.stdin?.on('error', () => {
    /* reported below: no agent answers */
  })
  child.stdin?.end(encodeKeyMap(keys))
  child.unref()
  for (let i = 0; i < 100; i++) {
    const up = await pingAgent(sock)
    if (up) {
      if (values.json) io.stdout(jsonLine('unlocked', { until: new Date(up.until).toISOString() }))
      io.stderr(`Unlocked until ${new Date(up.until).toISOString()} ("mailkey lock" locks it now).\n`)
      return EXIT.OK
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new UsageError('the agent did not start', { hint: `Run "mailkey agent" in the foreground to see why.` })
}

export async function runLock(args: string[], io: CliIO): Promise<number> {
  const { values } = parse('lock', args, { ...COMMON_FLAGS }, 0)
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const { resolvePaths } = await import('../../config/paths.js')
  const stopped = await stopAgent(agentSocketPath(resolvePaths(io.env), io.env))
  if (values.json) io.stdout(jsonLine('locked', { agent_stopped: stopped }))
  io.stderr(stopped ? 'Locked: the agent forgot the key and stopped.\n' : 'No agent was running.\n')
  return EXIT.OK
}

export async function runAgent(args: string[], io: CliIO): Promise<number> {
  const { values } = parse(
    'agent',
    args,
    { ...COMMON_FLAGS, for: { type: 'string' }, 'keys-on-stdin': { type: 'boolean' } },
    0,
  )
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const store = storeFor(io, values['keys-on-stdin'] ? {} : askFor(io))
  const ms = await lifetimeMs(store, values.for)
  let keys: Map<string, Buffer>
  if (values['keys-on-stdin']) {
    const got = decodeKeyMap((await io.readLine('', io.signal)) ?? '')
    io.close?.()
    if (!got)
      throw new UsageError(
        'mailkey agent --keys-on-stdin: no keys on stdin (this is how "mailkey unlock" starts the agent)',
        {
          hint: 'Run "mailkey unlock".',
        },
      )
    keys = got
  } else {
    keys = await unlockAll(store)
  }
  const agent = await serveKeys(agentSocketPath(store.paths, io.env), keys, ms)
  const stop = (): void => agent.stop()
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  if (!values['keys-on-stdin'])
    io.stderr(`mailkey agent: serving the store key until ${new Date(agent.until).toISOString()}\n`)
  await agent.stopped
  return EXIT.OK
}
