/**
 * NeoMutt (a muttrc). Direct: XOAUTH2/OAUTHBEARER for IMAP and SMTP with
 * `imap_oauth_refresh_command` / `smtp_oauth_refresh_command` running `mailkey token` (NeoMutt runs
 * them for every login). Via the proxy: plain IMAP and SMTP to the loopback listeners with
 * `imap_pass`/`smtp_pass` read from the password command at start-up (backticks).
 *
 * neomuttrc(5): a double-quoted value keeps \" and \\ escapes; backticks run a shell command.
 */
import { configCommand, proxyListeners, urlUser, serverSavesSent } from './parts.js'
import { dquote } from './shell.js'
import type { ClientRecipe, Recipe, RecipeInput } from './types.js'

/** A muttrc value: double-quoted; \ " and ` and $ escaped so nothing is expanded. */
function val(s: string): string {
  if (/[\x00-\x1f\x7f]/.test(s)) throw new RangeError('a neomutt setting cannot hold control characters')
  return `"${s.replace(/[\\"`$]/g, (c) => `\\${c}`)}"`
}

export const neomutt: ClientRecipe = {
  name: 'neomutt',
  summary: 'NeoMutt: a muttrc for IMAP and SMTP with XOAUTH2/OAUTHBEARER (or --via proxy)',
  direct: true,
  make(i: RecipeInput): Recipe {
    const lines = [
      `# NeoMutt configuration for ${i.email}, written by "${configCommand('neomutt', i.email, i.proxy !== undefined)}".`,
    ]
    lines.push(`set from = ${val(i.email)}`, 'set use_from = yes')
    if (i.proxy) {
      const { host, imapPort, smtpPort } = proxyListeners(i.proxy)
      // the password command runs once, when NeoMutt starts: backticks, which a double-quoted value expands
      const pass = dquote(`\`${i.proxy.passwordCommand}\``)
      if (imapPort !== undefined) {
        lines.push(
          `set folder = ${val(`imap://${urlUser(i.email)}@${host}:${imapPort}/`)}`,
          'set spoolfile = "+INBOX"',
          `set imap_pass = ${pass}`,
          'set imap_authenticators = "login"',
        )
      }
      if (smtpPort !== undefined) {
        lines.push(
          `set smtp_url = ${val(`smtp://${urlUser(i.email)}@${host}:${smtpPort}/`)}`,
          `set smtp_pass = ${pass}`,
          'set smtp_authenticators = "plain:login"',
        )
      }
      // the proxy is on this machine: no TLS on the loopback hop
      lines.push('set ssl_starttls = no', 'set ssl_force_tls = no')
    } else {
      const mech = i.sasl === 'OAUTHBEARER' ? 'oauthbearer' : 'xoauth2'
      if (i.imap) {
        const scheme = i.imap.tls === 'implicit' ? 'imaps' : 'imap'
        lines.push(
          `set folder = ${val(`${scheme}://${urlUser(i.user)}@${i.imap.host}:${i.imap.port}/`)}`,
          'set spoolfile = "+INBOX"',
          `set imap_authenticators = "${mech}"`,
          `set imap_oauth_refresh_command = ${val(i.tokenCommand)}`,
        )
      }
      if (i.smtp) {
        const scheme = i.smtp.tls === 'implicit' ? 'smtps' : 'smtp'
        lines.push(
          `set smtp_url = ${val(`${scheme}://${urlUser(i.user)}@${i.smtp.host}:${i.smtp.port}/`)}`,
          `set smtp_authenticators = "${mech}"`,
          `set smtp_oauth_refresh_command = ${val(i.tokenCommand)}`,
        )
      }
      if (!i.imap && !i.smtp) throw new RangeError(`the account ${i.email} has no IMAP or SMTP server`)
      // TLS always: STARTTLS where the server offers it, and never a plain-text fallback
      lines.push('set ssl_starttls = yes', 'set ssl_force_tls = yes')
      if (i.ca) lines.push(`set ssl_ca_certificates_file = ${val(i.ca)}`)
    }
    const savesSent = serverSavesSent(i)
    if (savesSent) lines.push(`# ${savesSent}:`, 'set record = ""')
    lines.push('')
    const usage = [
      `${configCommand('neomutt', i.email, i.proxy !== undefined)} > ~/.config/neomutt/neomuttrc`,
      'neomutt                     # or, to send from a script: neomutt -s "subject" -- someone@example.com < body.txt',
    ]
    if (i.proxy)
      usage.unshift(
        `needs the proxy's listeners (${[
          ['IMAP', i.proxy.imapPort],
          ['SMTP', i.proxy.smtpPort],
        ]
          .filter(([, p]) => p !== undefined)
          .map(([n, p]) => `${n} ${p}`)
          .join(', ')}), and the local password printed by: ${i.proxy.passwordCommand}`,
      )
    return { text: lines.join('\n'), usage }
  },
}
