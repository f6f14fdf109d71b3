/**
 * msmtp (~/.msmtprc). Direct: `auth xoauth2` (or oauthbearer) with `passwordeval` running
 * `mailkey token`, which msmtp calls for every message, so the token is always fresh. Via the
 * proxy: `auth plain` to 127.0.0.1 with the local password.
 *
 * msmtp(1) "Configuration files": passwordeval runs its command through the shell and reads
 * the first line it prints.
 */
/**
 * An msmtp argument: msmtp strips one pair of surrounding double quotes and takes the rest as it
 * is, with no escapes (checked with msmtp 1.8.23: `passwordeval "cat "$HOME/x""` runs
 * `cat "$HOME/x"`), so inner quotes need no escaping and cannot be escaped.
 */
function arg(s: string): string {
  if (/[\x00-\x1f\x7f]/.test(s)) throw new RangeError('an msmtp setting cannot hold control characters')
  return `"${s}"`
}

/** An msmtp account name: the address, which msmtp takes as it is, except ":" and "," (account inheritance). */
function accountName(email: string): string {
  if (/[\x00-\x1f\x7f:,]/.test(email))
    throw new RangeError('msmtp cannot take an address with ":" or "," as an account name')
  return email
}
import { configCommand, proxyPort, serverSavesSent } from './parts.js'
import type { ClientRecipe, Recipe, RecipeInput } from './types.js'

export const msmtp: ClientRecipe = {
  name: 'msmtp',
  summary: 'msmtp: a file for ~/.msmtprc (sending; also what git send-email and neomutt can call)',
  direct: true,
  make(i: RecipeInput): Recipe {
    const lines = [
      `# msmtp configuration for ${i.email}, written by "${configCommand('msmtp', i.email, i.proxy !== undefined)}".`,
      '# Save it as ~/.msmtprc with mode 600 (msmtp refuses a file others can read).',
      'defaults',
    ]
    if (i.proxy) {
      const port = proxyPort(i.proxy, 'smtp')
      lines.push(
        // the proxy listens on this machine only: no TLS on the loopback hop, TLS upstream
        'tls off',
        '',
        `account ${accountName(i.email)}`,
        `host ${i.proxy.host}`,
        `port ${port}`,
        'auth plain',
        `user ${arg(i.email)}`,
        `from ${arg(i.email)}`,
        `passwordeval ${arg(i.proxy.passwordCommand)}`,
      )
    } else {
      const smtp = i.smtp
      if (!smtp) throw new RangeError(`the account ${i.email} has no SMTP server`)
      lines.push(
        'tls on',
        ...(i.ca ? [`tls_trust_file ${arg(i.ca)}`] : []),
        '',
        `account ${accountName(i.email)}`,
        `host ${smtp.host}`,
        `port ${smtp.port}`,
        // msmtp: tls_starttls on = STARTTLS; off = TLS from the first byte (port 465)
        `tls_starttls ${smtp.tls === 'starttls' ? 'on' : 'off'}`,
        `auth ${i.sasl === 'OAUTHBEARER' ? 'oauthbearer' : 'xoauth2'}`,
        `user ${arg(i.user)}`,
        `from ${arg(i.email)}`,
        // a fresh token for every message: mailkey refreshes it when needed, once for all callers
        `passwordeval ${arg(i.tokenCommand)}`,
      )
    }
    lines.push('', `account default : ${accountName(i.email)}`, '')
    const usage = [
      `${configCommand('msmtp', i.email, i.proxy !== undefined)} > ~/.msmtprc && chmod 600 ~/.msmtprc`,
      'msmtp -t < message.eml        # or: git config sendemail.sendmailcmd "msmtp -a default"',
    ]
    if (i.proxy)
      usage.unshift(
        `needs the proxy's SMTP listener on port ${i.proxy.smtpPort} ("mailkey proxy --smtp-port ${i.proxy.smtpPort}"), and the local password printed by: ${i.proxy.passwordCommand}`,
      )
    const savesSent = serverSavesSent(i)
    if (savesSent) usage.push(`${savesSent}: do not also copy it there (no duplicate).`)
    return { text: lines.join('\n'), usage }
  },
}
