/**
 * Which token service a host uses and with which key: MAILKEY_STORE_URL (https://, or http:// to a
 * loopback address), MAILKEY_API_KEY_FILE or MAILKEY_API_KEY, and MAILKEY_STORE_CA. Apart from the
 * HTTP client (service-client.ts) so that `mailkey token`'s fast path can read it without loading
 * the client.
 *
 * Owns: reading and checking those settings. Must not: connect.
 */
import { closeSync, constants as fsc, fstatSync, openSync, readFileSync } from 'node:fs'
import { ConfigError, ERR, MailkeyError } from '../errors.js'
import { Secret } from '../core/secret.js'
import { isLoopbackHost } from '../core/net.js'
import { shArg } from '../core/address.js'
import type { Env } from '../config/paths.js'
import { privateMode } from '../store/shared/private-file.js'

export interface ServiceTarget {
  /** the service's base URL (no credentials, no query) */
  base: URL
  /** the URL for messages */
  label: string
  key: Secret
  /** extra trusted certificates (MAILKEY_STORE_CA) */
  ca?: string
}

/** an access token as the service sends it: printable ASCII, no space, at most 16 KiB */
export const TOKEN = /^[\x21-\x7e]{1,16384}$/

export const KEY_HINT =
  'Put the API key ("mailkey serve key add NAME" on a host with the store prints it) in a file only you can read, and name it in MAILKEY_API_KEY_FILE.'

/** The service a host uses, from MAILKEY_STORE_URL and MAILKEY_API_KEY(_FILE). Throws ConfigError when unusable. */
export function serviceTarget(env: Env): ServiceTarget {
  const raw = (env.MAILKEY_STORE_URL ?? '').trim()
  let base: URL
  try {
    base = new URL(raw)
  } catch {
    throw bad('it is not a URL')
  }
  if (base.username || base.password)
    throw bad('it must not carry a user or password; the API key goes in MAILKEY_API_KEY_FILE')
  if (base.search || base.hash) throw bad('it must not have a query or fragment')
  if (base.protocol === 'http:' && !isLoopbackHost(base.hostname))
    throw bad('plain http is accepted only for 127.0.0.1, ::1 and localhost: use https')
  if (!base.pathname.endsWith('/')) base.pathname += '/'
  const label = `${base.protocol}//${base.host}${base.pathname === '/' ? '' : base.pathname}`
  const ca = env.MAILKEY_STORE_CA ? readText(env.MAILKEY_STORE_CA, 'MAILKEY_STORE_CA', false, env) : undefined
  return { base, label, key: new Secret(apiKey(env, label)), ...(ca ? { ca } : {}) }
}

function bad(why: string): ConfigError {
  return new ConfigError(ERR.CONFIG_INVALID, `the token service URL (MAILKEY_STORE_URL) cannot be used: ${why}`, {
    hint: 'Set MAILKEY_STORE_URL=https://HOST:PORT (the address "mailkey serve" listens on).',
  })
}

function apiKey(env: Env, label: string): string {
  const file = env.MAILKEY_API_KEY_FILE
  const key = file ? readText(file, 'MAILKEY_API_KEY_FILE', true, env).trim() : env.MAILKEY_API_KEY?.trim()
  if (!key)
    throw new ConfigError(ERR.CONFIG_INVALID, `the token service ${label} needs an API key, and none is set`, {
      hint: KEY_HINT,
    })
  // one visible-ASCII word (RFC 6750 b64token is narrower): anything else cannot go in a header
  if (!/^[\x21-\x7e]+$/.test(key))
    throw new ConfigError(ERR.CONFIG_INVALID, `the API key for the token service ${label} is not one word`, {
      hint: KEY_HINT,
    })
  return key
}

function readText(path: string, name: string, secret: boolean, env: Env): string {
  try {
    // followed on purpose (Kubernetes mounts secrets through symbolic links); never blocking on a
    // FIFO planted there, and only a regular file
    const fd = openSync(path, fsc.O_RDONLY | fsc.O_NONBLOCK)
    try {
      const st = fstatSync(fd)
      if (!st.isFile())
        throw new ConfigError(ERR.CONFIG_INVALID, `${name} "${path}" is not a regular file`, {
          hint: `Point ${name} at a file.`,
        })
      if (secret && !privateMode(st.mode, path, env))
        throw new ConfigError(ERR.STORE_PERMISSIONS, `the API key file "${path}" can be read by others`, {
          hint: `Run "chmod 600 ${shArg(path)}": the key lets its holder take the accounts' tokens.`,
        })
      return readFileSync(fd, 'utf8')
    } finally {
      closeSync(fd)
    }
  } catch (e) {
    if (e instanceof MailkeyError) throw e
    throw new ConfigError(
      ERR.CONFIG_INVALID,
      `cannot read ${name} "${path}": ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        hint: `Check that ${name} names a file this user can read.`,
      },
    )
  }
}
