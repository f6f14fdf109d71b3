/**
 * git send-email: a git config file to include (`git config --global include.path FILE`).
 * Direct: git hands each message to msmtp (`sendemail.sendmailcmd`, git >= 2.33), which does
 * XOAUTH2 with `mailkey token` (its file comes from `mailkey config msmtp`); git's own SMTP code
 * (Net::SMTP + Authen::SASL) has no XOAUTH2 in the versions Debian ships. Via the proxy: git's own
 * SMTP with AUTH PLAIN/LOGIN to the loopback listener, the local password from a credential helper.
 *
 * git-config(1) "Syntax": a value in double quotes keeps \" and \\ escapes; a helper starting
 * with "!" runs through the shell (gitcredentials(7)).
 */
import { dquote, shWord } from './shell.js'
import { configCommand, proxyPort, serverSavesSent } from './parts.js'
import type { ClientRecipe, Recipe, RecipeInput } from './types.js'

export const gitSendEmail: ClientRecipe = {
  name: 'git-send-email',
  summary: 'git send-email: a git config file to include (direct: through msmtp; or --via proxy)',
  direct: true,
  make(i: RecipeInput): Recipe {
    const head = `# git send-email for ${i.email}, written by "${configCommand('git-send-email', i.email, i.proxy !== undefined)}".`
    let lines: string[]
    const usage = [
      `${configCommand('git-send-email', i.email, i.proxy !== undefined)} > ~/.config/mailkey/git-send-email.gitconfig`,
      'git config --global include.path ~/.config/mailkey/git-send-email.gitconfig',
      'git send-email --to=someone@example.com HEAD^',
    ]
    if (i.proxy) {
      const port = proxyPort(i.proxy, 'smtp')
      // git asks its credential helpers for smtp://127.0.0.1:PORT; this one prints the local password
      const helper = `!f() { test "$1" = get && printf 'password=%s\\n' "$(${i.proxy.passwordCommand})"; }; f`
      lines = [
        head,
        '[sendemail]',
        `\tfrom = ${dquote(i.email)}`,
        `\tsmtpServer = ${i.proxy.host}`,
        `\tsmtpServerPort = ${port}`,
        // the proxy is on this machine: no TLS on the loopback hop (any value but ssl/tls is plain)
        '\tsmtpEncryption = none',
        `\tsmtpUser = ${dquote(i.email)}`,
        '\tsmtpAuth = PLAIN LOGIN',
        `[credential "smtp://${i.proxy.host}:${port}"]`,
        `\thelper = ${dquote(helper)}`,
        '',
      ]
      usage.unshift(
        `needs the proxy's SMTP listener on port ${port}, and the local password printed by: ${i.proxy.passwordCommand}`,
      )
    } else {
      if (!i.smtp) throw new RangeError(`the account ${i.email} has no SMTP server`)
      lines = [
        head,
        `# Sends through msmtp's account "${i.email}": first run "${configCommand('msmtp', i.email, false)} > ~/.msmtprc".`,
        '[sendemail]',
        `\tfrom = ${dquote(i.email)}`,
        // git runs it with sh -c: the account name is one quoted sh word inside the git config string
        `\tsendmailcmd = ${dquote(`msmtp -a ${shWord(i.email)}`)}`,
        '',
      ]
      usage.unshift(`first: ${configCommand('msmtp', i.email, false)} > ~/.msmtprc && chmod 600 ~/.msmtprc`)
    }
    // git send-email keeps no copy of its own; say where the server (Exchange, Graph) files one
    const savesSent = serverSavesSent(i)
    if (savesSent) usage.push(`${savesSent}: the patches you send are there too.`)
    return { text: lines.join('\n'), usage }
  },
}
