/**
 * `mailkey add <email>`: sign in and store the grant.
 *
 * Human output goes to stderr; with --json, newline-delimited JSON events go to stdout (the
 * device prompt is one event, so a script can push the code to a phone; docs/json.md).
 */
import { shArg } from '../../core/address.js'
import { EXIT, UsageError } from '../../errors.js'
import { createMailkey } from '../../mailkey.js'
import type { AccountStatus } from '../../broker/accounts.js'
import type { DevicePrompt, SignInCallbacks } from '../../broker/sign-in.js'
import type { Flow } from '../../providers/types.js'
import type { CliIO } from '../io.js'
import { passphrasePrompt } from '../io.js'
import { COMMON_FLAGS, PROVIDER_FLAGS, accountOptions, needEmail, parse } from '../flags.js'
import { browserLauncher, canOpenBrowser, noDisplayReason } from '../browser.js'
import { formatDuration } from '../format.js'
import { notOnPathNote, selfCommand, thisInstallation, type SelfCommand } from '../self.js'
import { accountStatusJson, jsonLine } from '../json.js'
import { terminalAbilities } from '../terminal.js'

const HELP = `Usage: mailkey add <email> [--device | --browser | --paste] [provider flags] [--json]

Signs in to the mail provider and stores the grant. With no flow flag mailkey opens a browser
when it can, and shows a device code (a URL and a code to enter on any phone or computer) when
it cannot (SSH, no display). Google allows no device code for mail: use --paste there.

  --device           device-code sign-in (RFC 8628)
  --browser          system browser with a loopback redirect (127.0.0.1, or localhost where
                     the provider registered that: then mailkey listens on 127.0.0.1 and ::1)
  --paste            print the URL; paste back the address the browser ends on
  --port N           fixed port for the loopback redirect (default: random), for servers that
                     want the exact port they have registered
  --timeout SEC      how long to wait for the browser (default 300)
  --no-qr            do not draw a QR code for the device-code URL
  --json             newline-delimited JSON events on stdout
  --sign-in-as USER  accept a sign-in as USER (an alias of the address, or the user of a shared
                     mailbox named as the account); a sign-in as anyone else is refused
  --graph            Microsoft: also ask to send mail through Microsoft Graph (Mail.Send), for
                     mailboxes where SMTP AUTH is switched off (535 5.7.139); the proxy and
                     "mailkey send" then submit through Graph (with --device: a second code)
  --graph-url URL    the Graph API base (default https://graph.microsoft.com/v1.0)
  --send MODE        how mail is submitted: smtp, graph, or auto (SMTP until the server
                     answers 5.7.139, then Graph if the sign-in has it; Microsoft's default)
Provider flags: see "mailkey --help".

Secrets: a client secret from --client-secret-file F, or - for stdin (--client-secret S works
too, but other users see it in "ps"); with --paste, the address the browser ends on (it holds a
one-time code) from the terminal or stdin. An encrypted store's key comes from the agent
("mailkey unlock"), the OS keyring, [store] passphrase_command or the terminal.

The browser is handed a private page (0600, in a 0700 directory, removed afterwards) that
forwards to the sign-in address, so the address (its state and PKCE challenge) never appears
in the browser's command line, which every user of the machine can read.
`

const ADD_FLAGS = {
  ...COMMON_FLAGS,
  ...PROVIDER_FLAGS,
  device: { type: 'boolean' },
  browser: { type: 'boolean' },
  paste: { type: 'boolean' },
  port: { type: 'string' },
  timeout: { type: 'string' },
  'no-qr': { type: 'boolean' },
} as const

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('add', args, ADD_FLAGS, 1)
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const email = needEmail('add', positionals)
  const flows = (['device', 'browser', 'paste'] as const).filter((f) => values[f] === true)
  if (flows.length > 1)
    throw new UsageError(`choose one of --device, --browser, --paste (got ${flows.map((f) => '--' + f).join(' and ')})`)
  const flow: Flow | undefined = flows[0]
  const port = values.port === undefined ? undefined : intFlag('--port', values.port, 1, 65535)
  const timeoutSec = values.timeout === undefined ? undefined : intFlag('--timeout', values.timeout, 5, 3600)
  const opts = accountOptions(email, values)
  const mk = createMailkey({ env: io.env, ...passphrasePrompt(io) })
  const ui = signInUi(io, email, { json: values.json === true, qr: values['no-qr'] !== true })
  let status: AccountStatus
  try {
    status = await mk.signIn({
      ...opts,
      ...(flow ? { flow } : {}),
      canOpenBrowser: canOpenBrowser(io.env),
      ...(noDisplayReason(io.env) ? { browserUnavailable: noDisplayReason(io.env) } : {}),
      ...(port !== undefined ? { redirectPort: port } : {}),
      ...(timeoutSec !== undefined ? { timeoutMs: timeoutSec * 1000 } : {}),
      signal: io.signal,
      ...ui.callbacks,
    })
  } finally {
    await ui.finish()
  }
  ui.emit({
    event: 'signed_in',
    account: status.email,
    status: accountStatusJson(status),
    next: `mailkey token ${shArg(status.email)}`,
  })
  const rec = await mk.record(status.email).catch(() => undefined)
  const self = selfCommand(await thisInstallation(), io.env)
  const server =
    status.provider === 'custom' ? (rec?.settings.endpoints.issuer ?? rec?.settings.endpoints.token) : undefined
  io.stderr(signedInText(status, self, server))
  if (rec?.settings.send === 'graph') io.stderr(graphNextText(status.email, self))
  return EXIT.OK
}

/** After `add --graph`: how mail clients reach Graph (the proxy's SMTP listener, or `mailkey send`). */
function graphNextText(email: string, self: SelfCommand): string {
  const mk = self.argv.map(shArg).join(' ')
  const a = shArg(email)
  return (
    `Sending: ${email} sends through Microsoft Graph, which saves each message in Sent Items (do not let clients save a copy too).\n` +
    `      Mail clients send through the proxy: "${mk} proxy" (or "${mk} proxy install-service"), then\n` +
    `      "${mk} config msmtp ${a}" (or git-send-email, neomutt, …) writes a configuration that uses it;\n` +
    `      or use "${mk} send" as a sendmail command (git: sendemail.sendmailcmd).\n`
  )
}

/**
 * What the user sees while signing in: prose on stderr, and with --json one event per line on
 * stdout (plan, client_rejected, device_code, authorization_url, signed_in).
 */
function signInUi(
  io: CliIO,
  email: string,
  o: { json: boolean; qr: boolean },
): { callbacks: SignInCallbacks; emit: (event: Record<string, unknown>) => void; finish: () => Promise<void> } {
  const emit = (event: Record<string, unknown>): void => {
    if (!o.json) return
    const { event: name, ...fields } = event
    io.stdout(jsonLine(String(name), fields)) // docs/json.md: schema, event, snake_case keys
  }
  const say = (text: string): void => io.stderr(text)
  const device = deviceCountdown(io)
  const browser = browserLauncher(io.env)
  let lastSaid: number | undefined
  const callbacks: SignInCallbacks = {
    onPlan: (p) => {
      emit({ event: 'plan', account: email, provider: p.provider, flow: p.flow, client_id: p.clientId })
      if (p.why) say(`mailkey: signing in with --paste: ${p.why}.\n`)
      if (p.plainHttp)
        say('mailkey: warning: this server is reached over plain http (accepted only for loopback addresses)\n')
    },
    onClientRejected: (r) => {
      say(
        `mailkey: the ${r.label} client id ${r.clientId} was refused (${r.error.message})${r.next ? `; trying the next one (${r.next})` : ''}\n`,
      )
      emit({
        event: 'client_rejected',
        client_id: r.clientId,
        message: r.error.message,
        ...(r.next ? { next_client_id: r.next } : {}),
      })
    },
    onDevicePrompt: async (p) => {
      emit({
        event: 'device_code',
        account: email,
        user_code: p.userCode,
        verification_uri: p.verificationUri,
        ...(p.verificationUriComplete ? { verification_uri_complete: p.verificationUriComplete } : {}),
        expires_in: p.expiresIn,
        interval: p.interval,
        ...(p.message ? { message: p.message } : {}),
        ...(p.purpose ? { purpose: p.purpose } : {}),
      })
      say(await devicePromptText(p, io.stderrIsTTY && o.qr))
      device.start(p.expiresAt)
    },
    onDeviceTick: (left) => {
      if (terminalAbilities(io.env, io.stderrIsTTY).redraw) return // the terminal's countdown line says it
      const next = stillWaiting(lastSaid, left)
      lastSaid = next.lastSaid
      if (next.say) say(`Still waiting; the code expires in ${formatDuration(left)}\n`)
    },
    openBrowser: (url) => browser.open(url),
    onAuthorizationUrl: (url, info) => {
      emit({
        event: 'authorization_url',
        account: email,
        url,
        redirect_uri: info.redirectUri,
        browser_opened: info.browserOpened,
      })
      say(authorizationUrlText(email, url, info))
    },
    onGraph: graphOutcome(email, emit, say),
    readPastedRedirect: (signal) =>
      io.readLine('Paste the address here: ', signal).then((t) => {
        if (t === undefined) return new Promise<string>(() => {}) // stdin closed: keep waiting for the listener
        return t
      }),
  }
  return {
    callbacks,
    emit,
    finish: async () => {
      device.stop()
      await browser.cleanup()
    },
  }
}

/** `--graph`: whether the sign-in gave a Graph token, as an event and in words. */
function graphOutcome(
  email: string,
  emit: (event: Record<string, unknown>) => void,
  say: (text: string) => void,
): NonNullable<SignInCallbacks['onGraph']> {
  return (r) => {
    emit({ event: 'graph', account: email, granted: r.ok, ...(r.ok ? {} : { message: r.error.message }) })
    say(
      r.ok
        ? 'Microsoft Graph: Mail.Send granted; mail you send through mailkey goes out through Graph.\n'
        : `mailkey: warning: Microsoft Graph was not granted for ${email} (${r.error.message}); sending through Graph fails until "mailkey add ${shArg(email)} --graph" succeeds.\n`,
    )
  }
}

/** On a terminal, a line that counts down the device code's life until the sign-in ends. */
/**
 * Without a terminal, a "still waiting" line once a minute: `left` (seconds) when the last line was
 * said (the prompt's first tick counts as one, so the prompt is not echoed at once).
 */
export function stillWaiting(lastSaid: number | undefined, left: number): { say: boolean; lastSaid: number } {
  if (lastSaid === undefined) return { say: false, lastSaid: left }
  if (left > 0 && lastSaid - left >= 60) return { say: true, lastSaid: left }
  return { say: false, lastSaid }
}

function deviceCountdown(io: CliIO): { start: (expiresAt: number) => void; stop: () => void } {
  let countdown: NodeJS.Timeout | undefined
  let deviceExpiresAt = 0
  return {
    start(expiresAt) {
      deviceExpiresAt = expiresAt
      if (!terminalAbilities(io.env, io.stderrIsTTY).redraw) return
      countdown = setInterval(() => {
        const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000))
        io.stderr(`\r\x1b[KWaiting for you to approve… the code expires in ${formatDuration(left)}`)
      }, 1000)
      countdown.unref()
    },
    stop() {
      if (countdown) clearInterval(countdown)
      if (countdown && deviceExpiresAt) io.stderr('\r\x1b[K')
      countdown = undefined
    },
  }
}

function authorizationUrlText(
  email: string,
  url: string,
  info: { redirectUri: string; browserOpened: boolean },
): string {
  if (info.browserOpened)
    return `A browser window should have opened to sign in ${email}. If it did not, open:\n\n  ${url}\n\nWaiting for the sign-in to finish…\n`
  return (
    `To sign in ${email}, open this address in a browser (on any machine):\n\n  ${url}\n\n` +
    `After you approve, the browser is sent to ${info.redirectUri}… — if that page does not load,\n` +
    'copy the whole address from the address bar and paste it here.\n'
  )
}

function hostOf(url: string | undefined): string | undefined {
  try {
    return url ? new URL(url).host : undefined
  } catch {
    return undefined
  }
}

function intFlag(name: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${name} must be a whole number from ${min} to ${max}`)
  return n
}

async function devicePromptText(p: DevicePrompt, qr: boolean): Promise<string> {
  const target = p.verificationUriComplete ?? p.verificationUri
  // --graph: a device code covers one resource, so sending through Graph takes a second code
  const what =
    p.purpose === 'graph'
      ? `\nOne more code: to let mailkey send mail for ${p.account} through Microsoft Graph (Mail.Send), open`
      : `To sign in ${p.account}, open`
  let text = `${what}\n\n  ${p.verificationUri}\n\non any phone or computer and enter the code\n\n  ${p.userCode}\n\n`
  if (qr) {
    try {
      const { renderUnicodeCompact } = await import('uqr')
      text += `or scan:\n\n${renderUnicodeCompact(target, { border: 1 })}\n\n`
    } catch {
      /* no QR: the URL and code are enough */
    }
  }
  text += `The code expires in ${formatDuration(p.expiresIn)}.\n`
  return text
}

/**
 * `self`: how to run this mailkey (by full path when none is on PATH, as after `npx mailkey add`);
 * `server`: a custom provider's issuer (or token URL), named by its host instead of "custom"
 */
function signedInText(s: AccountStatus, self: SelfCommand, server?: string): string {
  // sign-in.ts refuses any identity but the account's own names and its --sign-in-as name
  const who =
    s.identity?.email && s.identity.email.toLowerCase() !== s.email.toLowerCase()
      ? ` (signed in as ${s.identity.email})`
      : ''
  const by = s.provider === 'custom' ? `the OAuth server at ${hostOf(server) ?? 'the issuer you named'}` : s.provider
  let t = `\nSigned in ${s.email}${who} with ${by}${s.tenant ? ` (tenant ${s.tenant})` : ''}.\n`
  if (who) {
    t += `Mail servers accept this token for ${s.email} only if ${s.identity?.email} may open that mailbox; "mailkey test ${shArg(s.email)}" checks it.\n`
  }
  if (!s.refreshToken.present) {
    t += 'Warning: the server issued no refresh token, so this sign-in lasts only until the access token expires.\n'
  }
  const mk = self.argv.map(shArg).join(' ')
  t +=
    `Next: "${mk} token ${shArg(s.email)}" prints a fresh access token for your mail client;\n` +
    `      "${mk} config msmtp ${shArg(s.email)}" (or mbsync, neomutt, aerc, …) writes its configuration;\n` +
    `      "${mk} status ${shArg(s.email)}" shows the servers and the token's state.\n`
  const note = self.found ? undefined : notOnPathNote(self, mk)
  if (note) t += `Note: ${note}\n`
  return t
}
