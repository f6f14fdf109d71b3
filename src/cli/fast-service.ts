/**
 * `mailkey token <email>`'s fast path on a host that uses a token service: one GET of
 * /v1/accounts/{email}/token, and the token printed, without loading the full CLI (which would
 * more than double the process's time and CPU; bench/README.md "Token service").
 *
 * Anything but a clean 200 with a plain token for that very account (an error answer, a service
 * that cannot be reached, settings that do not work) returns undefined: the full CLI then asks
 * again and reports what is wrong, with its exit code. So this path never prints an error.
 *
 * Owns: that shortcut. Must not: print, or accept anything it would not accept in the full CLI.
 */
import type { Env } from '../config/paths.js'
import { TOKEN, serviceTarget } from '../remote/service-target.js'

const TIMEOUT_MS = 60_000
const MAX_BODY = 64 * 1024

export async function fastServiceToken(email: string, env: Env): Promise<string | undefined> {
  let target: ReturnType<typeof serviceTarget>
  try {
    target = serviceTarget(env)
  } catch {
    return undefined
  }
  const url = new URL(`v1/accounts/${encodeURIComponent(email)}/token`, target.base)
  const https = url.protocol === 'https:'
  const { request } = https ? await import('node:https') : await import('node:http')
  const ca = https && target.ca ? [...(await import('node:tls')).rootCertificates, target.ca] : undefined
  const body = await new Promise<string | undefined>((resolve) => {
    const req = request(
      url,
      {
        headers: { authorization: `Bearer ${target.key.reveal()}`, accept: 'application/json' },
        ...(ca ? { ca } : {}),
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume()
          return resolve(undefined)
        }
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => {
          text += d
          if (text.length > MAX_BODY) req.destroy()
        })
        res.on('end', () => resolve(text))
        res.on('error', () => resolve(undefined))
      },
    )
    const timer = setTimeout(() => req.destroy(), TIMEOUT_MS)
    req.on('error', () => resolve(undefined))
    req.on('close', () => clearTimeout(timer))
    req.end()
  })
  if (body === undefined) return undefined
  try {
    const b = JSON.parse(body) as { access_token?: unknown; account?: unknown }
    const same = typeof b.account === 'string' && b.account.toLowerCase() === email.toLowerCase()
    return typeof b.access_token === 'string' && TOKEN.test(b.access_token) && same ? b.access_token : undefined
  } catch {
    return undefined
  }
}
