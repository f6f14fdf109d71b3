/**
 * `mailkey proxy`: run the local IMAP/POP3/SMTP proxy in the foreground, and
 * `mailkey proxy password <email>`: set the local password a LOGIN-only client uses.
 *
 * Logs are JSON lines on stderr (no secrets; a connection id per client). The listening
 * addresses are printed as JSON events on stdout. SIGTERM/SIGINT stop it gracefully.
 *
 * Owns: flags and [proxy] config -> listeners and startProxy options, the signals of a running
 * proxy. Must not: handle mail connections itself (proxy/server.ts).
 */
import { existsSync, realpathSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, resolve as resolvePath } from 'node:path'
import { pathToFileURL } from 'node:url'
import { EXIT, UsageError } from '../../errors.js'
import { Secret } from '../../core/secret.js'
import { isLoopbackHost } from '../../core/net.js'
import { createMailkey, type Mailkey } from '../../mailkey.js'
import type { ProxyConfig } from '../../config/config.js'
import type { CliIO } from '../io.js'
import type { ListenerConfig, RunningProxy } from '../../proxy/server.js'
import { passphrasePrompt } from '../io.js'
import { COMMON_FLAGS, needEmail, parse } from '../flags.js'
import { shArg } from '../../core/address.js'
import { jsonLine } from '../json.js'

const HELP = `Usage: mailkey proxy [--imap-port N] [--pop-port N] [--smtp-port N] [--host ADDR]
                     [--tls-cert FILE --tls-key FILE [--tls implicit|starttls]] [--oauth-passthrough]
       mailkey proxy                    (the [[proxy.listeners]] of config.toml; SIGHUP reloads them)
       mailkey proxy password <email> [--save]   (--save: also the file --via proxy configs read)
       mailkey proxy install-service    (writes a systemd user unit; does not enable it)

Listens for mail clients that can only log in with a user name and password. The user name is
the account's address; the password is the local one set with "mailkey proxy password". After
that login the proxy signs in to the account's own server with OAuth and passes the session
through untouched. Port 0 picks a free port; the addresses are printed as JSON on stdout.

  --host ADDR       address to listen on (default 127.0.0.1). Anything but loopback needs TLS.
  --tls-cert/-key   PEM certificate and key for TLS towards the clients
  --tls MODE        implicit (TLS from the first byte) or starttls (offered; the default with
                    --tls-cert). Without --tls-cert: mailkey's own self-signed certificate, made
                    once in the state directory; its file and SHA-256 fingerprint are printed
                    for clients to pin. Off loopback, credentials are taken only over TLS: a
                    starttls listener refuses them until STARTTLS/STLS.
  --oauth-passthrough  also offer XOAUTH2/OAUTHBEARER, for clients that bring their own token
                    (passed to the account's server). Off by default: a client with a Cyrus
                    XOAUTH2 plugin (mbsync) would pick it and send the local password as a token;
                    a token that is the local password is never forwarded either way.
`

const FLAGS = {
  ...COMMON_FLAGS,
  'imap-port': { type: 'string' },
  'pop-port': { type: 'string' },
  'smtp-port': { type: 'string' },
  host: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  tls: { type: 'string' },
  'oauth-passthrough': { type: 'boolean' },
} as const

type Values = ReturnType<typeof parse>['values']
type Tls = { mode: 'implicit' | 'starttls'; cert: string; key: string }

export async function run(args: string[], io: CliIO): Promise<number> {
  if (args[0] === 'password') return setPassword(args.slice(1), io)
  if (args[0] === 'install-service') return installService(args.slice(1), io)
  const { values } = parse('proxy', args, FLAGS, 0)
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const host = typeof values.host === 'string' ? values.host : '127.0.0.1'
  const certFile = values['tls-cert']
  const keyFile = values['tls-key']
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together')
  const mode = values.tls === undefined ? 'starttls' : values.tls
  if (mode !== 'implicit' && mode !== 'starttls') throw new UsageError('--tls must be implicit or starttls')
  const mk = createMailkey({ env: io.env, ...passphrasePrompt(io) })
  await assertPrivateState(mk)
  const tls = await flagTls(io, mk, values, mode, host)
  // Local passwords would cross the network in clear text: refuse (issue #4, STYLE.md §1.6).
  if (!isLoopbackHost(host) && !tls) {
    throw new UsageError(`refusing to listen on ${host} without TLS: passwords would cross the network in clear text`, {
      hint: 'Give --tls-cert and --tls-key, or listen on 127.0.0.1.',
    })
  }
  const flagListeners = listenersFromFlags(values, host, tls)
  // Flags make a quick one-liner; without them the [[proxy.listeners]] of config.toml are used,
  // and SIGHUP re-reads them.
  const fromConfig = flagListeners.length === 0
  const listeners = fromConfig ? await configListeners(io, mk) : flagListeners
  if (listeners.length === 0) {
    throw new UsageError(
      'no listeners: give --imap-port, --pop-port or --smtp-port, or [[proxy.listeners]] in config.toml',
      {
        hint: 'Run "mailkey proxy --imap-port 1143 --smtp-port 1587".',
      },
    )
  }
  return serve(io, mk, listeners, fromConfig)
}

/** TLS towards the clients from --tls-cert/--tls-key, or mailkey's own certificate for a bare --tls. */
async function flagTls(
  io: CliIO,
  mk: Mailkey,
  values: Values,
  mode: Tls['mode'],
  host: string,
): Promise<Tls | undefined> {
  const certFile = values['tls-cert']
  const keyFile = values['tls-key']
  if (typeof certFile === 'string' && typeof keyFile === 'string') {
    return { mode, cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') }
  } else if (values.tls !== undefined) {
    // --tls without a certificate of one's own: mailkey's self-signed one, for clients to pin.
    const own = await ownCertificate(io, mk, [host])
    return { mode, cert: own.cert, key: own.key }
  }
  return undefined
}

/** The listeners --imap-port, --pop-port and --smtp-port ask for (none: use config.toml). */
function listenersFromFlags(values: Values, host: string, tls: Tls | undefined): ListenerConfig[] {
  const port = (flag: string): number | undefined => {
    const v = values[flag]
    if (v === undefined) return undefined
    if (typeof v !== 'string' || !/^\d+$/.test(v) || Number(v) > 65535)
      throw new UsageError(`--${flag} must be a port number (0 picks a free one)`)
    return Number(v)
  }
  return (
    [
      ['imap', 'imap-port'],
      ['pop3', 'pop-port'],
      ['smtp', 'smtp-port'],
    ] as const
  )
    .map(([protocol, flag]) => ({ protocol, port: port(flag) }))
    .filter((l): l is { protocol: 'imap' | 'pop3' | 'smtp'; port: number } => l.port !== undefined)
    .map((l) => ({
      ...l,
      host,
      ...(tls ? { tls } : {}),
      ...(values['oauth-passthrough'] === true ? { oauthPassthrough: true } : {}),
    }))
}

/** Run the proxy until SIGTERM (or the CLI's abort signal); SIGHUP reloads config listeners. */
async function serve(io: CliIO, mk: Mailkey, listeners: ListenerConfig[], fromConfig: boolean): Promise<number> {
  // An encrypted store: unlock it now (agent, keyring, passphrase_command or this terminal), not at
  // the first client's login, which could only fail. The key then stays in this process.
  await mk.unlock()
  const { startProxy } = await import('../../proxy/server.js')
  // issue 11 item 5: what a login may need later is read now, not at the descriptor ceiling
  await mk.preload()
  const log = (e: Record<string, unknown>): void =>
    io.stderr(JSON.stringify({ t: new Date().toISOString(), ...e }) + '\n')
  // [proxy] failed_login_delay_max_sec, login_timeout_sec, the caps and the guess throttle (read once, at start)
  const proxyCfg = (await mk.config())?.proxy
  const delayMaxSec = proxyCfg?.failedLoginDelayMaxSec
  const proxy = await startProxy({
    tokens: mk,
    listeners,
    log,
    ...(delayMaxSec !== undefined ? { penalty: { maxMs: delayMaxSec * 1000 } } : {}),
    ...(proxyCfg?.loginTimeoutSec !== undefined ? { loginTimeoutMs: proxyCfg.loginTimeoutSec * 1000 } : {}),
    ...limitOptions(proxyCfg),
  })
  for (const a of proxy.addresses) io.stdout(jsonLine('listening', { ...a }))
  log({ level: 'info', event: 'started', listeners: addressList(proxy) })
  const onHup = (): void => reload(io, mk, proxy, fromConfig, log)
  process.on('SIGHUP', onHup)
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve()
    process.once('SIGTERM', stop)
    io.signal.addEventListener('abort', stop, { once: true })
  })
  process.removeListener('SIGHUP', onHup)
  log({ level: 'info', event: 'stopping', connections: proxy.connections() })
  await proxy.close(10_000)
  return EXIT.OK
}

const addressList = (proxy: RunningProxy): string =>
  proxy.addresses.map((a) => `${a.protocol}://${a.host}:${a.port}`).join(' ')

/** SIGHUP: read the [[proxy.listeners]] again and listen on them (flag listeners stay as they are). */
function reload(
  io: CliIO,
  mk: Mailkey,
  proxy: RunningProxy,
  fromConfig: boolean,
  log: (e: Record<string, unknown>) => void,
): void {
  if (!fromConfig) {
    log({
      level: 'info',
      event: 'reload',
      msg: 'listeners come from flags; nothing to reload (local passwords are read at every login)',
    })
    return
  }
  configListeners(io, mk)
    .then((next) => proxy.reload(next))
    .then(() => {
      log({ level: 'info', event: 'reloaded', listeners: addressList(proxy) })
      for (const a of proxy.addresses) io.stdout(jsonLine('listening', { ...a }))
    })
    .catch((e: unknown) => log({ level: 'error', event: 'reload-failed', msg: (e as Error).message }))
}

/**
 * The [proxy] limits config.toml sets, as startProxy options, only those that are set: connection
 * caps and the first-command timeout (proxy/admission.ts), the guess throttle and the KDF queue
 * (proxy/throttle.ts).
 */
function limitOptions(c: ProxyConfig | undefined): {
  admission?: Record<string, number>
  throttle?: Record<string, number>
  kdf?: Record<string, number>
  firstCommandTimeoutMs?: number
} {
  if (!c) return {}
  const pick = (pairs: [string, number | undefined][]): Record<string, number> | undefined => {
    const o = Object.fromEntries(pairs.filter((p): p is [string, number] => p[1] !== undefined))
    return Object.keys(o).length ? o : undefined
  }
  const admission = pick([
    ['maxConnections', c.maxConnections],
    ['maxConnectionsPerSource', c.maxConnectionsPerSource],
  ])
  const throttle = pick([
    ['perSourcePerMin', c.guessesPerMinPerAddress],
    ['perSourceBurst', c.guessBurstPerAddress],
    ['globalPerMin', c.guessesPerMin],
    ['globalBurst', c.guessBurst],
  ])
  const kdf = pick([
    ['parallel', c.passwordChecksParallel],
    ['queued', c.passwordChecksQueued],
  ])
  return {
    ...(admission ? { admission } : {}),
    ...(throttle ? { throttle } : {}),
    ...(kdf ? { kdf } : {}),
    ...(c.firstCommandTimeoutSec !== undefined ? { firstCommandTimeoutMs: c.firstCommandTimeoutSec * 1000 } : {}),
  }
}

async function setPassword(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('proxy password', args, { ...COMMON_FLAGS, save: { type: 'boolean' } }, 1)
  if (values.help) {
    io.stdout(PASSWORD_HELP)
    return EXIT.OK
  }
  const email = needEmail('proxy password', positionals)
  const mk = createMailkey({ env: io.env, ...passphrasePrompt(io) })
  await assertPrivateState(mk)
  await mk.status(email) // the account must exist
  // From the terminal without echo, or from stdin when it is not a terminal (scripts).
  const pw =
    io.stdinIsTTY && io.readSecretLine
      ? await io.readSecretLine(`Local proxy password for ${email}: `, io.signal)
      : await io.readLine('', io.signal)
  if (pw === undefined || pw.length === 0) throw new UsageError('no password given')
  if (pw.length < 8) throw new UsageError('use at least 8 characters for the local password')
  const { passwordStoreFor } = await import('../../proxy/passwords.js')
  await passwordStoreFor(mk).set(email, new Secret(pw))
  const items = await mk.items()
  const shared = items.shared
    ? ` It is kept in the shared store (${items.where}): every proxy on that store takes it.`
    : ''
  io.stderr(
    `Set the local proxy password for ${email}. Mail clients log in to the proxy with user "${email}" and that password.${shared}\n`,
  )
  const saved = await savedCopy(io, mk, email, values.save === true ? new Secret(pw) : undefined)
  if (values.json) io.stdout(jsonLine('password_set', { account: email, ...(saved ? { file: saved } : {}) }))
  return EXIT.OK
}

const PASSWORD_HELP = `Usage: mailkey proxy password <email> [--save]

Sets the local password a mail client gives "mailkey proxy" for <email> (from the terminal without
echo, or from stdin; never from the command line). The proxy keeps only a hash of it.

  --save    also write it to \${XDG_CONFIG_HOME:-$HOME/.config}/mailkey/proxy-passwords/<email> (0600),
            the file every "mailkey config <client> <email> --via proxy" reads
`

/** --save: write the copy the --via proxy recipes read, and say where; without it, warn of a stale copy. */
async function savedCopy(io: CliIO, mk: Mailkey, email: string, pw: Secret | undefined): Promise<string | undefined> {
  const { passwordFilePath, savePasswordFile } = await import('../../proxy/password-file.js')
  if (pw) {
    const path = await savePasswordFile(mk.paths.configDir, email, pw)
    io.stderr(`Saved it to ${path} (0600), where "mailkey config <client> ${shArg(email)} --via proxy" reads it.\n`)
    return path
  }
  const path = passwordFilePath(mk.paths.configDir, email)
  const { existsSync } = await import('node:fs')
  if (existsSync(path))
    io.stderr(`${path} holds a password saved before; add --save to replace it with this one, or delete it.\n`)
  else io.stderr(`Add --save to also write it where "mailkey config <client> ${shArg(email)} --via proxy" reads it.\n`)
  return undefined
}

/**
 * I2 before the proxy starts or a password is set: the state and accounts directories and the
 * password file (scrypt hashes, which others could guess at offline) must be ours alone. Refused,
 * not repaired: the user should know someone may have read them.
 */
async function assertPrivateState(mk: Mailkey): Promise<void> {
  await mk.assertPrivate()
  const { checkPrivate } = await import('../../store/atomic-file.js')
  const { passwordStoreFor } = await import('../../proxy/passwords.js')
  await checkPrivate(passwordStoreFor(mk).path, 'file', { missingOk: true })
}

/**
 * mailkey's own certificate for TLS towards clients (made on first use, renewed before it ends, in
 * the state directory). Printed as a JSON event on stdout: where it is and its fingerprint, which
 * is what a client pins.
 */
async function ownCertificate(io: CliIO, mk: Mailkey, listenHosts: string[]): Promise<{ cert: string; key: string }> {
  const { ensureProxyCertificate, certificateNames } = await import('../../proxy/self-signed.js')
  await mk.ensureStateDir()
  const c = await ensureProxyCertificate(mk.paths.stateDir, certificateNames(listenHosts))
  io.stdout(
    jsonLine('certificate', { file: c.certFile, fingerprint256: c.fingerprint256, names: c.names, created: c.created }),
  )
  return { cert: c.cert, key: c.key }
}

async function configListeners(io: CliIO, mk: Mailkey): Promise<ListenerConfig[]> {
  const cfg = await mk.config()
  const p = cfg?.proxy
  if (!cfg || !p) return []
  let cert = p.tlsCert ? await readFile(p.tlsCert, 'utf8') : undefined
  let key = p.tlsKey ? await readFile(p.tlsKey, 'utf8') : undefined
  if (!cert && p.listeners.some((l) => l.tls !== 'none')) {
    // TLS listeners without tls_cert/tls_key: mailkey's self-signed certificate.
    const own = await ownCertificate(
      io,
      mk,
      p.listeners.map((l) => l.host),
    )
    cert = own.cert
    key = own.key
  }
  return p.listeners.map((l) => {
    if (!isLoopbackHost(l.host) && l.tls === 'none') {
      throw new UsageError(
        `${cfg.file}: refusing to listen on ${l.host} without TLS: passwords would cross the network in clear text`,
      )
    }
    return {
      protocol: l.protocol,
      host: l.host,
      port: l.port,
      ...(l.tls !== 'none' && cert && key ? { tls: { mode: l.tls, cert, key } } : {}),
      ...(l.accounts ? { accounts: l.accounts } : {}),
      ...(l.upstream ? { upstream: l.upstream } : {}),
      ...(l.ca ? { upstreamCa: l.ca } : {}),
      ...(l.oauthPassthrough ? { oauthPassthrough: true } : {}),
    }
  })
}

/**
 * The README installed with this mailkey as a file: URL, for the unit's Documentation= (no public
 * web page is known; the unit names this installation's paths anyway). bin is
 * <package>/dist/cli/mailkey.cjs, maybe through a symlink; none when no README is beside it.
 */
function installedReadme(bin: string): string | undefined {
  try {
    const readme = resolvePath(dirname(realpathSync(bin)), '..', '..', 'README.md')
    return existsSync(readme) ? pathToFileURL(readme).href : undefined
  } catch {
    return undefined
  }
}

/** Write a systemd user unit; print where and how to enable it (never enables it by itself). */
async function installService(args: string[], io: CliIO): Promise<number> {
  const { values } = parse('proxy install-service', args, COMMON_FLAGS, 0)
  if (values.help) {
    io.stdout(
      'Usage: mailkey proxy install-service\n\nWrites a systemd user unit that runs "mailkey proxy" with the listeners of config.toml.\n',
    )
    return EXIT.OK
  }
  const { mkdir, writeFile } = await import('node:fs/promises')
  const { join } = await import('node:path')
  const { resolvePaths } = await import('../../config/paths.js')
  const paths = resolvePaths(io.env)
  const configHome = join(paths.configDir, '..')
  const dir = join(configHome, 'systemd', 'user')
  const file = join(dir, 'mailkey-proxy.service')
  // systemd's PATH is not the user's: name Node and the script (or the single executable) in full
  const me = await (await import('../self.js')).thisInstallation()
  const start = me.script === undefined ? [me.execPath] : [me.execPath, me.script]
  const readme = me.script === undefined ? undefined : installedReadme(me.script)
  const { proxyServiceUnit } = await import('../../proxy/service-unit.js')
  const unit = proxyServiceUnit({
    start,
    ...(readme ? { readme } : {}),
    env: { XDG_CONFIG_HOME: io.env.XDG_CONFIG_HOME, XDG_STATE_HOME: io.env.XDG_STATE_HOME },
  })
  await mkdir(dir, { recursive: true })
  await writeFile(file, unit, { mode: 0o644 })
  io.stdout(values.json ? jsonLine('service_installed', { file }) : file + '\n')
  io.stderr(
    `Wrote ${file}. It runs the listeners of your config.toml ([[proxy.listeners]]).\n` +
      'Enable and start it with:\n  systemctl --user daemon-reload && systemctl --user enable --now mailkey-proxy.service\n',
  )
  return EXIT.OK
}
