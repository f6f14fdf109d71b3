/**
 * getmail6 (a getmailrc). Direct: SimpleIMAPSSLRetriever with `use_xoauth2 = True` and
 * `password_command` running `mailkey token` (getmail6 sends XOAUTH2 with what it prints).
 * getmail6's IMAP retrievers have no STARTTLS, so an account whose IMAP server is STARTTLS-only
 * goes through the proxy. Via the proxy: SimpleIMAPRetriever with LOGIN to the loopback listener.
 *
 * getmail6 documentation, "password_command (tuple of quoted strings)": the program and its
 * arguments, run without a shell, so the recipe runs `sh -c` with the command line. getmail6
 * refuses to deliver into a Maildir as root: run it as the mailbox's user.
 */
import { configCommand, localName, proxyPort } from './parts.js'
import type { ClientRecipe, Recipe, RecipeInput } from './types.js'

/** A getmail quoted string (read like a Python literal: JSON's escapes are valid there). */
const str = (s: string): string => JSON.stringify(s)

export const getmail: ClientRecipe = {
  name: 'getmail',
  summary: 'getmail6: a getmailrc that retrieves INBOX into a Maildir (IMAP over TLS, or --via proxy)',
  direct: true,
  make(i: RecipeInput): Recipe {
    const name = localName(i.email)
    const maildir = `~/Mail/${name}/INBOX`
    const retriever: string[] = ['[retriever]']
    if (i.proxy) {
      const port = proxyPort(i.proxy, 'imap')
      retriever.push(
        'type = SimpleIMAPRetriever',
        `server = ${i.proxy.host}`,
        `port = ${port}`,
        `username = ${i.email}`,
        `password_command = ("sh", "-c", ${str(i.proxy.passwordCommand)})`,
      )
    } else {
      const imap = i.imap
      if (!imap) throw new RangeError(`the account ${i.email} has no IMAP server`)
      if (imap.tls !== 'implicit')
        throw new RangeError(
          `getmail6 has no STARTTLS for IMAP and ${imap.host}:${imap.port} is a STARTTLS port; use --via proxy`,
        )
      retriever.push(
        'type = SimpleIMAPSSLRetriever',
        `server = ${imap.host}`,
        `port = ${imap.port}`,
        `username = ${i.user}`,
        // getmail6 sends "user=<username>\x01auth=Bearer <what the command prints>\x01\x01"
        'use_xoauth2 = True',
        `password_command = ("sh", "-c", ${str(i.tokenCommand)})`,
        ...(i.ca ? [`ca_certs = ${i.ca}`] : []),
      )
    }
    const text = [
      `# getmail6 configuration for ${i.email}, written by "${configCommand('getmail', i.email, i.proxy !== undefined)}".`,
      ...retriever,
      'mailboxes = ("INBOX",)',
      '',
      '[destination]',
      'type = Maildir',
      `path = ${maildir}/`,
      '',
      '[options]',
      // only new messages, and nothing deleted on the server unless the user says so
      'read_all = false',
      'delete = false',
      '',
    ].join('\n')
    const usage = [
      `${configCommand('getmail', i.email, i.proxy !== undefined)} > ~/.getmail/getmailrc && mkdir -p ${maildir}/cur ${maildir}/new ${maildir}/tmp`,
      "getmail                     # as the mailbox's user: getmail6 refuses to deliver as root",
    ]
    if (i.proxy)
      usage.unshift(
        `needs the proxy's IMAP listener on port ${i.proxy.imapPort}, and the local password printed by: ${i.proxy.passwordCommand}`,
      )
    return { text, usage }
  },
}
