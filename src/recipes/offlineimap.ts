/**
 * OfflineIMAP (offlineimap3, an offlineimaprc). Direct: `auth_mechanisms = XOAUTH2` with
 * `oauth2_access_token_eval` running `mailkey token` (evaluated once per run, as offlineimap3 does
 * with its *_eval settings). Via the proxy: LOGIN to the loopback listener with `remotepasseval`.
 *
 * offlineimap.conf: *_eval values are Python expressions; the recipe's expression only runs the
 * command line through `sh -c` and returns what it prints.
 */
import { configCommand, localName, proxyPort } from './parts.js'
import type { ClientRecipe, Recipe, RecipeInput } from './types.js'

/**
 * An offlineimaprc value. offlineimap3 reads its file with Python's ConfigParser and the default
 * BasicInterpolation, where "%" starts a reference: a literal "%" is written "%%" (an address may
 * hold one: it is atext, RFC 5322 §3.2.3). A line break would start another setting: refused.
 */
function value(s: string): string {
  if (/[\x00-\x1f\x7f]/.test(s)) throw new RangeError('an offlineimap setting cannot hold control characters')
  return s.replace(/%/g, '%%')
}

/** A Python expression that runs `cmd` through sh and returns its output (JSON strings are Python strings). */
function runExpr(cmd: string): string {
  return value(
    `__import__("subprocess").run(["sh", "-c", ${JSON.stringify(cmd)}], capture_output=True, check=True, text=True).stdout.strip()`,
  )
}

export const offlineimap: ClientRecipe = {
  name: 'offlineimap',
  summary: 'OfflineIMAP (offlineimap3): an offlineimaprc syncing to a Maildir with XOAUTH2 (or --via proxy)',
  direct: true,
  make(i: RecipeInput): Recipe {
    const name = localName(i.email)
    const remote: string[] = [`[Repository ${name}-remote]`, 'type = IMAP']
    if (i.proxy) {
      const port = proxyPort(i.proxy, 'imap')
      remote.push(
        `remotehost = ${i.proxy.host}`,
        `remoteport = ${port}`,
        `remoteuser = ${value(i.email)}`,
        // the proxy is on this machine: no TLS on the loopback hop
        'ssl = no',
        'starttls = no',
        'auth_mechanisms = LOGIN',
        `remotepasseval = ${runExpr(i.proxy.passwordCommand)}`,
      )
    } else {
      const imap = i.imap
      if (!imap) throw new RangeError(`the account ${i.email} has no IMAP server`)
      remote.push(
        `remotehost = ${imap.host}`,
        `remoteport = ${imap.port}`,
        `remoteuser = ${value(i.user)}`,
        // offlineimap3: ssl = yes is TLS from the first byte; ssl = no + starttls = yes is STARTTLS
        `ssl = ${imap.tls === 'implicit' ? 'yes' : 'no'}`,
        `starttls = ${imap.tls === 'implicit' ? 'no' : 'yes'}`,
        `sslcacertfile = ${value(i.ca ?? 'OS-DEFAULT')}`,
        'auth_mechanisms = XOAUTH2',
        `oauth2_access_token_eval = ${runExpr(i.tokenCommand)}`,
      )
    }
    const text = [
      `# OfflineIMAP configuration for ${i.email}, written by "${configCommand('offlineimap', i.email, i.proxy !== undefined)}".`,
      '[general]',
      `accounts = ${name}`,
      '',
      `[Account ${name}]`,
      `localrepository = ${name}-local`,
      `remoterepository = ${name}-remote`,
      '',
      `[Repository ${name}-local]`,
      'type = Maildir',
      `localfolders = ~/Mail/${name}`,
      '',
      ...remote,
      '',
    ].join('\n')
    const usage = [
      `${configCommand('offlineimap', i.email, i.proxy !== undefined)} > ~/.offlineimaprc`,
      'offlineimap -o              # one sync; without -o it keeps syncing',
    ]
    if (i.proxy)
      usage.unshift(
        `needs the proxy's IMAP listener on port ${i.proxy.imapPort}, and the local password printed by: ${i.proxy.passwordCommand}`,
      )
    return { text, usage }
  },
}
