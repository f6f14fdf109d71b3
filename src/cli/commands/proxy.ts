/**
 * `mailkey proxy`: run the local IMAP/POP3/SMTP proxy in the foreground, and
 * `mailkey proxy password <email>`: set the local password a LOGIN-only client uses.
 *
 * Logs are JSON lines on stderr (no secrets; a connection id per client). The listening
 * addresses are printed as JSON events on stdout. SIGTERM/SIGINT stop it gracefully.
 */
import { readFile } from 'node:fs/promises'
import { EXIT, UsageError } from '../../errors.js'
import { Secret } from '../../core/secret.js'
import { isLoopbackHost } from '../../core/net.js'
import { createMailkey } from '../../mailkey.js'
import type { CliIO } from '../io.js'
import { COMMON_FLAGS, needEmail, parse } from '../flags.js'

const HELP = `Usage: mailkey proxy [--imap-port N] [--pop-port N] [--smtp-port N] [--host ADDR]
                     [--tls-cert FILE --tls-key FILE [--tls implicit|starttls]]
       mailkey proxy password <email>

Listens for mail clients that can only log in with a user name and password. The user name is
the account's address; the password is the local one set with "mailkey proxy password". After
that login the proxy signs in to the account's own server with OAuth and passes the session
through untouched. Port 0 picks a free port; the addresses are printed as JSON on stdout.

  --host ADDR       address to listen on (default 127.0.0.1). Anything but loopback needs TLS.
  --tls-cert/-key   PEM certificate and key for TLS towards the clients
  --tls MODE        implicit (TLS from the first byte) or starttls (offered; default)
`

export async function run(args: string[], io: CliIO): Promise<number> {
  if (args[0] === 'password') return setPassword(args.slice(1), io)
  const { values } = parse('proxy', args, {
    ...COMMON_FLAGS,
    'imap-port': { type: 'string' },
    'pop-port': { type: 'string' },
    'smtp-port': { type: 'string' },
    host: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    tls: { type: 'string' },
  }, 0)
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const port = (flag: string): number | undefined => {
    const v = values[flag]
    if (v === undefined) return undefined
    if (typeof v !== 'string' || !/^\d+$/.test(v) || Number(v) > 65535) throw new UsageError(`--${flag} must be a port number (0 picks a free one)`)
    return Number(v)
  }
  const host = typeof values.host === 'string' ? values.host : '127.0.0.1'
  const certFile = values['tls-cert']
  const keyFile = values['tls-key']
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together')
  const mode = values.tls === undefined ? 'starttls' : values.tls
  if (mode !== 'implicit' && mode !== 'starttls') throw new UsageError('--tls must be implicit or starttls')
  const tls = typeof certFile === 'string' && typeof keyFile === 'string'
    ? { mode, cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') } as const
    : undefined
  // Local passwords would cross the network in clear text: refuse (issue #4, STYLE.md §1.6).
  if (!isLoopbackHost(host) && !tls) {
    throw new UsageError(`refusing to listen on ${host} without TLS: passwords would cross the network in clear text`, { hint: 'Give --tls-cert and --tls-key, or listen on 127.0.0.1.' })
  }
  const listeners = ([['imap', 'imap-port'], ['pop3', 'pop-port'], ['smtp', 'smtp-port']] as const)
    .map(([protocol, flag]) => ({ protocol, port: port(flag) }))
    .filter((l): l is { protocol: 'imap' | 'pop3' | 'smtp'; port: number } => l.port !== undefined)
    .map((l) => ({ ...l, host, ...(tls ? { tls } : {}) }))
  if (listeners.length === 0) throw new UsageError('give at least one of --imap-port, --pop-port, --smtp-port', { hint: 'Run "mailkey proxy --imap-port 1143 --smtp-port 1587".' })
  const mk = createMailkey({ env: io.env })
  const { startProxy } = await import('../../proxy/server.js')
  const log = (e: Record<string, unknown>): void => io.stderr(JSON.stringify({ t: new Date().toISOString(), ...e }) + '\n')
  const proxy = await startProxy({ mailkey: mk, listeners, log })
  for (const a of proxy.addresses) io.stdout(JSON.stringify({ event: 'listening', ...a }) + '\n')
  log({ level: 'info', event: 'started', listeners: proxy.addresses.map((a) => `${a.protocol}://${a.host}:${a.port}`).join(' ') })
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve()
    process.once('SIGTERM', stop)
    io.signal.addEventListener('abort', stop, { once: true })
  })
  log({ level: 'info', event: 'stopping', connections: proxy.connections() })
  await proxy.close(10_000)
  return EXIT.OK
}

async function setPassword(args: string[], io: CliIO): Promise<number> {
  const { positionals } = parse('proxy password', args, COMMON_FLAGS, 1)
  const email = needEmail('proxy password', positionals)
  const mk = createMailkey({ env: io.env })
  await mk.status(email) // the account must exist
  // From the terminal without echo, or from stdin when it is not a terminal (scripts).
  const pw = io.stdinIsTTY && io.readSecretLine
    ? await io.readSecretLine(`Local proxy password for ${email}: `, io.signal)
    : await io.readLine('', io.signal)
  if (pw === undefined || pw.length === 0) throw new UsageError('no password given')
  if (pw.length < 8) throw new UsageError('use at least 8 characters for the local password')
  const { PasswordStore } = await import('../../proxy/passwords.js')
  await new PasswordStore(mk.broker.store).set(email, new Secret(pw))
  io.stderr(`Set the local proxy password for ${email}. Mail clients log in to the proxy with user "${email}" and that password.\n`)
  return EXIT.OK
}
