/**
 * The systemd user unit that `mailkey proxy install-service` writes. systemd has its own syntax
 * (systemd.service(5), systemd.syntax(7)): "%" starts a specifier everywhere, "$" expands a
 * variable in a command's arguments (written "$$" for itself; in the program's own path it is
 * itself, and "$$" stays two), and a quoted word takes C escapes, so "\" and '"' are escaped inside
 * double quotes. A line break would start a new setting, so control
 * characters are refused.
 *
 * Owns: the unit's text. Must not: write files or look at the installation.
 */
import { UsageError } from '../errors.js'

export interface ServiceUnitInput {
  /** the words that start mailkey (Node and the script, or the single executable), absolute */
  start: string[]
  /** a file: URL of the README installed with this mailkey, when there is one */
  readme?: string
  /** XDG directories to pass on, when the user set them */
  env: { XDG_CONFIG_HOME?: string | undefined; XDG_STATE_HOME?: string | undefined }
}

/** one word of a unit setting; `argument`: a command's argument, where "$" expands */
export function unitWord(s: string, argument: boolean): string {
  if (/[\x00-\x1f\x7f]/.test(s))
    throw new UsageError('a systemd unit cannot hold a path with a control character (a line break, a tab)', {
      hint: 'Install mailkey, and set XDG_CONFIG_HOME/XDG_STATE_HOME, under paths without them.',
    })
  let t = s.replace(/%/g, '%%')
  if (argument) t = t.replace(/\$/g, '$$$$')
  return /^[\w@+=:,./-]+$/.test(t) ? t : `"${t.replace(/["\\]/g, (c) => `\\${c}`)}"`
}

export function proxyServiceUnit(i: ServiceUnitInput): string {
  // systemd refuses to start a program whose own path holds a quote or a backslash, however quoted
  const program = i.start[0] ?? ''
  if (/["'\\]/.test(program))
    throw new UsageError(`systemd cannot start a program whose path holds a quote or a backslash: ${program}`, {
      hint: 'Install Node and mailkey under paths without them, or write the unit yourself with a link to the program.',
    })
  const env = (name: 'XDG_CONFIG_HOME' | 'XDG_STATE_HOME'): string[] => {
    const v = i.env[name]
    return v ? [`Environment=${unitWord(`${name}=${v}`, false)}`] : []
  }
  return [
    '[Unit]',
    'Description=mailkey IMAP/POP3/SMTP OAuth proxy',
    ...(i.readme ? [`Documentation=${i.readme.replace(/%/g, '%%')}`] : []),
    'After=network-online.target',
    '',
    '[Service]',
    `ExecStart=${i.start.map((w, k) => unitWord(w, k > 0)).join(' ')} proxy`,
    'ExecReload=/bin/kill -HUP $MAINPID',
    'Restart=on-failure',
    'RestartSec=5',
    ...env('XDG_CONFIG_HOME'),
    ...env('XDG_STATE_HOME'),
    'NoNewPrivileges=yes',
    'PrivateTmp=yes',
    'UMask=0077',
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n')
}
