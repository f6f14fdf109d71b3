/**
 * "generic": the settings to type into any app that only knows a user name and a password (an old
 * desktop client, a scanner, a CRM), through `mailkey proxy`. Not a file: a short sheet.
 */
import { configCommand } from './parts.js'
import { shWord } from './shell.js'
import type { ClientRecipe, Recipe, RecipeInput } from './types.js'

export const generic: ClientRecipe = {
  name: 'generic',
  summary: 'any app that only knows a user name and password: the settings to type in (via the proxy)',
  direct: false,
  whyNotDirect: 'such apps cannot do OAuth at all; the proxy logs them in',
  make(i: RecipeInput): Recipe {
    const p = i.proxy
    if (!p) throw new RangeError('generic needs --via proxy')
    const row = (what: string, port: number | undefined): string[] =>
      port === undefined
        ? []
        : [
            `${what.padEnd(13)} server ${p.host}  port ${port}  security: none (the proxy runs on this machine)  authentication: normal password`,
          ]
    const text = [
      `# Mail settings for ${i.email} through "mailkey proxy", written by "${configCommand('generic', i.email, i.proxy !== undefined)}".`,
      ...row('incoming IMAP', p.imapPort),
      ...row('incoming POP3', p.popPort),
      ...row('outgoing SMTP', p.smtpPort),
      `user name     ${i.email}`,
      `password      the local proxy password (set with "mailkey proxy password ${shWord(i.email)}")`,
      '',
    ].join('\n')
    const flags = [
      ['--imap-port', p.imapPort],
      ['--pop-port', p.popPort],
      ['--smtp-port', p.smtpPort],
    ]
      .filter(([, v]) => v !== undefined)
      .map(([f, v]) => `${f} ${v}`)
      .join(' ')
    return {
      text,
      usage: [
        `start the proxy: mailkey proxy ${flags} (or with [[proxy.listeners]] in config.toml: mailkey proxy)`,
        `and set the local password once: mailkey proxy password ${shWord(i.email)}`,
      ],
    }
  },
}
