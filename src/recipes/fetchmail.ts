/**
 * fetchmail (~/.fetchmailrc). Debian 12's fetchmail 6.4.37 has no OAuth at all (OAUTHBEARER came
 * with fetchmail 7, not released), so only the proxy variant exists: fetchmail logs in with the
 * local password, which it reads from ~/.netrc (fetchmail(1) "The .netrc file"), since it has no
 * password command. Delivery is left to fetchmail's default (the local MTA) or an `mda` of the
 * user's choosing.
 */
import { configCommand } from './parts.js'
import { shWord } from './shell.js'
import type { ClientRecipe, Recipe, RecipeInput } from './types.js'

export const fetchmail: ClientRecipe = {
  name: 'fetchmail',
  summary: 'fetchmail: a ~/.fetchmailrc for the proxy (fetchmail 6.4 has no OAuth)',
  direct: false,
  whyNotDirect: 'fetchmail 6.4 has no OAuth mechanism; only fetchmail 7 (unreleased) has OAUTHBEARER',
  make(i: RecipeInput): Recipe {
    const p = i.proxy
    if (!p) throw new RangeError('fetchmail needs --via proxy')
    const [proto, port] =
      p.imapPort !== undefined ? ['IMAP', p.imapPort] : p.popPort !== undefined ? ['POP3', p.popPort] : []
    if (proto === undefined)
      throw new RangeError('config.toml has no plain IMAP or POP3 listener of the proxy for this account')
    if (/["\\\s]/.test(i.email)) throw new RangeError('fetchmail cannot take this address as a user name')
    const text = [
      `# fetchmail configuration for ${i.email} through "mailkey proxy", written by "${configCommand('fetchmail', i.email, i.proxy !== undefined)}".`,
      '# The local password comes from ~/.netrc (see the line printed with this file).',
      'set no syslog',
      `poll ${p.host} with proto ${proto} port ${port}`,
      // the proxy listens on this machine only: no TLS on the loopback hop (fetchmail 6.4 would
      // otherwise try STARTTLS and give up)
      `  user "${i.email}" there`,
      "  sslproto ''",
      // leave the mail on the server: deleting it is the user's call
      '  keep',
      '',
    ].join('\n')
    return {
      text,
      usage: [
        `${configCommand('fetchmail', i.email, i.proxy !== undefined)} > ~/.fetchmailrc && chmod 600 ~/.fetchmailrc`,
        // fetchmail's .netrc parser splits on blanks unless a value is double-quoted; the host and
        // the address are printf arguments (quoted for sh), never part of its format
        `printf 'machine %s login "%s" password "%s"\\n' ${shWord(p.host)} ${shWord(i.email)} "$(${p.passwordCommand})" >> ~/.netrc && chmod 600 ~/.netrc`,
        `needs the proxy's ${proto} listener on port ${port}; fetchmail delivers to the local MTA unless you add mda "..." to the poll line`,
        'fetchmail',
      ],
    }
  },
}
