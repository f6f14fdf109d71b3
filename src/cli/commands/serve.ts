/**
 * `mailkey serve`: the token service (serve/server.ts) in the foreground, and `mailkey serve key
 * add|remove|list`: its API keys (serve/keys.ts), kept in the store so every replica knows them.
 *
 * Container-friendly: every setting can come from the environment (MAILKEY_SERVE_LISTEN,
 * MAILKEY_SERVE_TLS_CERT, MAILKEY_SERVE_TLS_KEY, with MAILKEY_STORE_URL and the store key as for
 * any host), logs are JSON lines on stdout, SIGTERM stops it gracefully.
 *
 * Owns: flags and environment -> startService options, the signals of a running service, the key
 * commands' output. Must not: answer requests itself (serve/api.ts).
 */
import { createSecureContext } from 'node:tls'
import { ConfigError, ERR, EXIT, UsageError } from '../../errors.js'
import { isLoopbackHost } from '../../core/net.js'
import { isServiceUrl } from '../../remote/service-url.js'
import { createMailkey, type Mailkey } from '../../mailkey.js'
import type { CliIO } from '../io.js'
import { passphrasePrompt } from '../io.js'
import { COMMON_FLAGS, parse, readSmallFile } from '../flags.js'
import { jsonLine } from '../json.js'

export const DEFAULT_LISTEN = '127.0.0.1:8625'

const HELP = `Usage: mailkey serve [--listen ADDR:PORT] [--tls-cert FILE --tls-key FILE] [--cache-ms N] [--grace-sec N]
       mailkey serve key add NAME [--accounts A,B,... | --all] [--json]
       mailkey serve key remove NAME
       mailkey serve key list [--json]

Runs the token service: an HTTP API that hands out access tokens to hosts that hold nothing but
a URL and an API key (MAILKEY_STORE_URL=https://... and MAILKEY_API_KEY_FILE there). Run as many
replicas as you like over one shared store; they share single flight, keys and hooks through it.

  --listen ADDR:PORT  where to listen (default ${DEFAULT_LISTEN}; env MAILKEY_SERVE_LISTEN).
                      Anything but loopback needs TLS: API keys and tokens cross the network.
  --tls-cert/--tls-key  PEM certificate and key (env MAILKEY_SERVE_TLS_CERT, MAILKEY_SERVE_TLS_KEY)
  --cache-ms N        reuse a token handed out for up to N ms (default 1000; 0: read the store each time)
  --grace-sec N       on SIGTERM, wait up to N s for answers in flight (default 30)
  --max-per-address N connections at once from one address (default 256; 0: no limit, for a
                      load balancer in front; env MAILKEY_SERVE_MAX_PER_ADDRESS)

  key add NAME        make an API key, print it once (stdout), store only its hash; --accounts
                      limits it to those accounts, --all lets it use every account
  key remove NAME     the key stops working on every replica within a second
  key list            the keys' names and accounts (never the keys)

Endpoints: GET /v1/accounts/{account}/token?min_ttl=SEC[&sasl=xoauth2|oauthbearer],
/v1/accounts/{account}, /v1/accounts, /metrics (these need "Authorization: Bearer KEY"),
/healthz and /readyz. Errors are application/problem+json. docs/openapi.json has the details.

Secrets: "key add" reads none; it prints the new key once on stdout. A worker reads its key from
the file MAILKEY_API_KEY_FILE names; the TLS key is the file --tls-key names.
`

const FLAGS = {
  ...COMMON_FLAGS,
  listen: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'cache-ms': { type: 'string' },
  'grace-sec': { type: 'string' },
  'max-per-address': { type: 'string' },
} as const

export async function run(args: string[], io: CliIO): Promise<number> {
  if (args[0] === 'key') return await keyCommand(args.slice(1), io)
  const { values } = parse('serve', args, FLAGS, 0)
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const str = (flag: string, env: string): string | undefined => {
    const v = values[flag]
    return typeof v === 'string' ? v : io.env[env] || undefined
  }
  if (isServiceUrl(io.env.MAILKEY_STORE_URL))
    throw new UsageError('mailkey serve needs the store itself, not another token service', {
      hint: 'Set MAILKEY_STORE_URL to the postgres:// or redis:// store (or unset it for the file store).',
    })
  const { host, port } = parseListen(str('listen', 'MAILKEY_SERVE_LISTEN') ?? DEFAULT_LISTEN)
  const certFile = str('tls-cert', 'MAILKEY_SERVE_TLS_CERT')
  const keyFile = str('tls-key', 'MAILKEY_SERVE_TLS_KEY')
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together')
  if (!isLoopbackHost(host) && !certFile)
    throw new UsageError(
      `refusing to listen on ${host} without TLS: API keys and tokens would cross the network in clear text`,
      {
        hint: 'Give --tls-cert and --tls-key (or MAILKEY_SERVE_TLS_CERT/KEY), or listen on 127.0.0.1.',
      },
    )
  const tls = certFile && keyFile ? readTls(certFile, keyFile) : undefined
  const cacheMs = whole(values['cache-ms'], '--cache-ms', 60_000) ?? 1000
  const graceSec = whole(values['grace-sec'], '--grace-sec', 3600) ?? 30
  const perAddress = whole(
    values['max-per-address'] ?? io.env.MAILKEY_SERVE_MAX_PER_ADDRESS,
    '--max-per-address',
    100_000,
  )
  const log = (e: Record<string, unknown>): void =>
    io.stdout(JSON.stringify({ t: new Date().toISOString(), ...e }) + '\n')
  const { Metrics } = await import('../../serve/metrics.js')
  const metrics = new Metrics()
  const mk = createMailkey({
    env: io.env,
    ...passphrasePrompt(io),
    onRefresh: (_account, outcome) => metrics.refresh(outcome),
    onWarning: (m) => log({ level: 'warn', event: 'warning', msg: m }),
  })
  await mk.unlock()
  await mk.preload()
  const { startService } = await import('../../serve/server.js')
  const svc = await startService({
    source: mk,
    host,
    port,
    log,
    metrics,
    cacheMs,
    ...(perAddress !== undefined ? { maxPerAddress: perAddress } : {}),
    ...(tls ? { tls } : {}),
  })
  // the handlers before the "listening" line: a supervisor that reads it may stop us at once, and
  // a SIGTERM before a handler exists would kill the process instead of stopping it gracefully
  const stopped = new Promise<void>((resolve) => {
    const stop = (): void => resolve()
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
    io.signal.addEventListener('abort', stop, { once: true })
  })
  log({ level: 'info', event: 'listening', url: svc.url, store: await mk.storeLabel() })
  await stopped
  log({ level: 'info', event: 'stopping', in_flight: svc.inFlight() })
  await svc.close(graceSec * 1000)
  log({ level: 'info', event: 'stopped' })
  return EXIT.OK
}

/**
 * The certificate and key, checked now: an empty file would make a server that fails every
 * handshake, a wrong pair would fail at the first one, and the service would look ready.
 */
function readTls(certFile: string, keyFile: string): { cert: string; key: string } {
  const cert = readSmallFile(certFile, '--tls-cert (MAILKEY_SERVE_TLS_CERT)')
  const key = readSmallFile(keyFile, '--tls-key (MAILKEY_SERVE_TLS_KEY)')
  const bad = (why: string): ConfigError =>
    new ConfigError(ERR.CONFIG_INVALID, `cannot serve TLS with "${certFile}" and "${keyFile}": ${why}`, {
      hint: 'Give a PEM certificate (chain) in --tls-cert (MAILKEY_SERVE_TLS_CERT) and its private key in --tls-key (MAILKEY_SERVE_TLS_KEY).',
    })
  if (!cert.includes('-----BEGIN CERTIFICATE-----')) throw bad('the certificate file holds no PEM certificate')
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw bad('the key file holds no PEM private key')
  try {
    createSecureContext({ cert, key })
  } catch (e) {
    throw bad(e instanceof Error ? e.message.replace(/^error:[0-9A-F]+:/, '') : 'they do not fit together')
  }
  return { cert, key }
}

export function parseListen(v: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v)
  const port = Number(m?.[3])
  if (!m || port > 65535)
    throw new UsageError(`--listen "${v.slice(0, 80)}" is not ADDR:PORT`, {
      hint: 'Write it as 127.0.0.1:8625, [::1]:8625 or 0.0.0.0:8443 (port 0 picks a free one).',
    })
  return { host: (m[1] ?? m[2]) as string, port }
}

function whole(v: unknown, flag: string, max: number): number | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string' || !/^\d{1,7}$/.test(v) || Number(v) > max)
    throw new UsageError(`${flag} must be a whole number up to ${max}`)
  return Number(v)
}

const KEY_FLAGS = { ...COMMON_FLAGS, accounts: { type: 'string' }, all: { type: 'boolean' } } as const

async function keyCommand(args: string[], io: CliIO): Promise<number> {
  const verb = args[0]?.startsWith('-') ? undefined : args[0] // `serve key --help`: no verb yet
  const rest = verb === undefined ? args : args.slice(1)
  const { values, positionals } = parse(`serve key ${verb ?? ''}`.trim(), rest, KEY_FLAGS, 1)
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  // a usage error like any other: on stderr, and as the error line under --json
  if (verb === undefined)
    throw new UsageError('which key command? mailkey serve key add|list|remove', {
      hint: 'Run "mailkey serve key --help" for what each does.',
    })
  const mk = createMailkey({ env: io.env, ...passphrasePrompt(io) })
  const keys = await import('../../serve/keys.js')
  const items = await mk.items()
  if (verb === 'list') {
    const all = await keys.listKeys(items)
    if (values.json) io.stdout(jsonLine('keys', { keys: all.map(keyJson) }))
    else if (all.length === 0) io.stdout(`no API keys in ${items.where}; "mailkey serve key add NAME" makes one\n`)
    else for (const k of all) io.stdout(`${k.name}  ${k.accounts === '*' ? 'all accounts' : k.accounts.join(', ')}\n`)
    return EXIT.OK
  }
  const name = positionals[0]
  if (!name)
    throw new UsageError(`serve key ${verb} needs the key's name`, { hint: `Run "mailkey serve key ${verb} NAME".` })
  keys.checkKeyName(name)
  if (verb === 'remove') {
    if (!(await items.remove('api-key', name)))
      throw new UsageError(`there is no key named "${name}" in ${items.where}`, {
        hint: 'Run "mailkey serve key list".',
      })
    if (values.json) io.stdout(jsonLine('key_removed', { name }))
    io.stderr(`mailkey: removed the key "${name}"; every replica refuses it within a second\n`)
    return EXIT.OK
  }
  if (verb !== 'add')
    throw new UsageError(`unknown "serve key ${verb.slice(0, 40)}"`, { hint: 'Use add, remove or list.' })
  return await addKey(mk, io, name, values)
}

async function addKey(
  mk: Mailkey,
  io: CliIO,
  name: string,
  values: ReturnType<typeof parse>['values'],
): Promise<number> {
  const list =
    typeof values.accounts === 'string'
      ? values.accounts
          .split(',')
          .map((a) => a.trim())
          .filter(Boolean)
      : undefined
  if ((list === undefined) === (values.all !== true))
    throw new UsageError('say which accounts the key may use: --accounts A,B,... or --all', {
      hint: `Run "mailkey serve key add ${name} --accounts you@example.com".`,
    })
  for (const a of list ?? []) await mk.status(a) // each must exist: a typo is an error, not a dead key
  const keys = await import('../../serve/keys.js')
  const key = await keys.addKey(await mk.items(), name, list ?? '*')
  if (values.json) io.stdout(jsonLine('key_added', { name, key: key.reveal(), accounts: list ?? 'all' }))
  else {
    io.stdout(key.reveal() + '\n')
    io.stderr(
      `mailkey: the key "${name}" is shown once, above; only its hash is kept. Give it to the worker in a 0600 file named by MAILKEY_API_KEY_FILE.\n`,
    )
  }
  return EXIT.OK
}

const keyJson = (k: { name: string; accounts: string[] | '*'; createdAt: number }): Record<string, unknown> => ({
  name: k.name,
  accounts: k.accounts === '*' ? 'all' : k.accounts,
  created_at: new Date(k.createdAt).toISOString(),
})
