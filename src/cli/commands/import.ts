/**
 * `mailkey import <email> --refresh-token-file F`: adopt a refresh token obtained elsewhere
 * (another mail client, a script). It is checked with one refresh before it is stored.
 */
import { EXIT, UsageError } from '../../errors.js'
import { Secret } from '../../core/secret.js'
import { createMailkey } from '../../mailkey.js'
import type { CliIO } from '../io.js'
import { passphrasePrompt } from '../io.js'
import { COMMON_FLAGS, PROVIDER_FLAGS, accountOptions, needEmail, parse, readSmallFile } from '../flags.js'
import { shArg } from '../../core/address.js'
import { accountStatusJson, jsonLine } from '../json.js'

const HELP = `Usage: mailkey import <email> --refresh-token-file F [provider flags]

Stores a refresh token you already have, after one refresh proves it works (the rotated token,
if the server sends one, is what gets stored). Use "-" to read the token from stdin. The token
is never accepted on the command line, where other users could see it in the process list.
Give the same --client-id (and --client-secret-file F) the token was issued to. With
--refresh-token-file -, the secret must come from a file (stdin carries the token); the flag
--client-secret S works too, but other users can read it in the process list.
`

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse(
    'import',
    args,
    { ...COMMON_FLAGS, ...PROVIDER_FLAGS, 'refresh-token-file': { type: 'string' } },
    1,
  )
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const email = needEmail('import', positionals)
  const file = values['refresh-token-file']
  if (typeof file !== 'string')
    throw new UsageError('import needs --refresh-token-file F (or - for stdin)', {
      hint: `Run "mailkey import ${shArg(email)} --refresh-token-file token.txt".`,
    })
  if (file === '-' && values['client-secret-file'] === '-')
    throw new UsageError('--client-secret-file - and --refresh-token-file - both read stdin: put one of them in a file')
  let raw: string | undefined
  if (file === '-') {
    raw = await io.readLine(io.stdinIsTTY ? 'Refresh token: ' : '', io.signal)
  } else {
    raw = readSmallFile(file, '--refresh-token-file')
  }
  const rt = raw?.trim()
  if (!rt) throw new UsageError(`no refresh token in ${file === '-' ? 'stdin' : `"${file}"`}`)
  if (/\s/.test(rt))
    throw new UsageError(
      `the refresh token in ${file === '-' ? 'stdin' : `"${file}"`} contains spaces or several lines; put only the token in it`,
    )
  const mk = createMailkey({ env: io.env, ...passphrasePrompt(io) })
  const status = await mk.importRefreshToken({
    ...accountOptions(email, values),
    refreshToken: new Secret(rt),
    signal: io.signal,
    onPlan: (p) => {
      if (p.plainHttp)
        io.stderr('mailkey: warning: this server is reached over plain http (accepted only for loopback addresses)\n')
    },
    onClientRejected: (r) =>
      io.stderr(`mailkey: the ${r.label} client id ${r.clientId} was refused${r.next ? `; trying ${r.next}` : ''}\n`),
  })
  if (values.json)
    io.stdout(
      jsonLine('imported', {
        account: status.email,
        status: accountStatusJson(status),
        next: `mailkey token ${shArg(status.email)}`,
      }),
    )
  io.stderr(
    `Imported the grant for ${status.email} (${status.provider}); the refresh token works.\n` +
      `Next: "mailkey token ${shArg(status.email)}" prints an access token.\n`,
  )
  return EXIT.OK
}
