/**
 * An account defined entirely by environment variables, for containers and CI jobs that have no
 * config file and no interactive sign-in:
 *
 *   MAILKEY_EMAIL               the mailbox (required to define the account)
 *   MAILKEY_REFRESH_TOKEN       the refresh token, or
 *   MAILKEY_REFRESH_TOKEN_FILE  a file holding it (a Docker/Kubernetes secret mount)
 *   MAILKEY_PROVIDER MAILKEY_TENANT MAILKEY_CLIENT_ID MAILKEY_CLIENT_SECRET MAILKEY_SCOPE
 *   MAILKEY_ISSUER MAILKEY_TOKEN_URL MAILKEY_AUTHORIZE_URL MAILKEY_DEVICE_URL
 *   MAILKEY_IMAP_URL MAILKEY_POP_URL MAILKEY_SMTP_URL MAILKEY_SASL MAILKEY_MAILBOX (a shared mailbox)
 *
 * The environment seeds the store: rotated refresh tokens are kept in the state directory, and a
 * new value in the environment (a rotated secret) replaces the stored grant.
 *
 * Owns: reading MAILKEY_* account variables. Must not: do network I/O.
 */
import { readFile } from 'node:fs/promises'
import { ConfigError, ERR } from '../errors.js'
import { addressProblem, quoted } from '../core/address.js'
import type { Env } from './paths.js'
import type { AccountOptions } from '../providers/resolve.js'
import type { SaslMechanism } from '../providers/types.js'

export interface EnvAccount {
  options: AccountOptions
  /** the seed refresh token (read from the variable or the file) */
  refreshToken: string
  source: string
}

export function envAccountEmail(env: Env): string | undefined {
  const e = env.MAILKEY_EMAIL?.trim()
  return e ? e : undefined
}

export async function readEnvAccount(env: Env): Promise<EnvAccount | undefined> {
  const email = envAccountEmail(env)
  if (!email) return undefined
  for (const [name, value] of [
    ['MAILKEY_EMAIL', email],
    ['MAILKEY_MAILBOX', env.MAILKEY_MAILBOX?.trim()],
  ] as const) {
    const why = value ? addressProblem(value) : undefined
    if (why !== undefined) {
      throw new ConfigError(
        ERR.CONFIG_INVALID,
        `${name} is set to ${quoted(value as string)}, which is not an e-mail address: ${why}`,
        {
          hint: `Set ${name} to the mailbox address, for example ${name}=you@example.com.`,
        },
      )
    }
  }
  let refreshToken = env.MAILKEY_REFRESH_TOKEN?.trim()
  let source = 'MAILKEY_REFRESH_TOKEN'
  if (!refreshToken && env.MAILKEY_REFRESH_TOKEN_FILE) {
    source = `MAILKEY_REFRESH_TOKEN_FILE (${env.MAILKEY_REFRESH_TOKEN_FILE})`
    try {
      refreshToken = (await readFile(env.MAILKEY_REFRESH_TOKEN_FILE, 'utf8')).trim()
    } catch (e) {
      throw new ConfigError(
        ERR.CONFIG_INVALID,
        `cannot read MAILKEY_REFRESH_TOKEN_FILE "${env.MAILKEY_REFRESH_TOKEN_FILE}" (${(e as NodeJS.ErrnoException).code ?? e})`,
        { account: email, cause: e },
      )
    }
  }
  if (!refreshToken) {
    throw new ConfigError(
      ERR.CONFIG_INVALID,
      `MAILKEY_EMAIL is set to "${email}" but neither MAILKEY_REFRESH_TOKEN nor MAILKEY_REFRESH_TOKEN_FILE gives a refresh token`,
      {
        account: email,
        hint: 'Set MAILKEY_REFRESH_TOKEN (or MAILKEY_REFRESH_TOKEN_FILE), or unset MAILKEY_EMAIL.',
      },
    )
  }
  const o: AccountOptions = { email }
  const set = <K extends keyof AccountOptions>(k: K, v: AccountOptions[K] | undefined): void => {
    if (v !== undefined && v !== '') o[k] = v
  }
  set('provider', env.MAILKEY_PROVIDER)
  set('tenant', env.MAILKEY_TENANT)
  set('clientId', env.MAILKEY_CLIENT_ID)
  set('clientSecret', env.MAILKEY_CLIENT_SECRET)
  set('issuer', env.MAILKEY_ISSUER)
  set('tokenUrl', env.MAILKEY_TOKEN_URL)
  set('authorizeUrl', env.MAILKEY_AUTHORIZE_URL)
  set('deviceUrl', env.MAILKEY_DEVICE_URL)
  set('imapUrl', env.MAILKEY_IMAP_URL)
  set('popUrl', env.MAILKEY_POP_URL)
  set('smtpUrl', env.MAILKEY_SMTP_URL)
  set('mailbox', env.MAILKEY_MAILBOX?.trim())
  if (env.MAILKEY_SCOPE) o.scopes = env.MAILKEY_SCOPE.split(/\s+/).filter(Boolean)
  if (env.MAILKEY_SASL) {
    const m = env.MAILKEY_SASL.toUpperCase()
    if (m !== 'XOAUTH2' && m !== 'OAUTHBEARER') {
      throw new ConfigError(
        ERR.CONFIG_INVALID,
        `MAILKEY_SASL must be XOAUTH2 or OAUTHBEARER, not "${env.MAILKEY_SASL}"`,
        {
          account: email,
        },
      )
    }
    o.sasl = m as SaslMechanism
  }
  return { options: o, refreshToken, source }
}
