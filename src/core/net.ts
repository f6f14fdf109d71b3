/**
 * Address facts shared by the OAuth layer and the config parser.
 *
 * Owns: what counts as loopback. Must not: import anything from mailkey.
 */

/** 127.0.0.0/8, ::1 and localhost: where plain http is tolerated (test servers only). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h)
}

/** Why a URL is unacceptable as an OAuth endpoint, or undefined when it is fine. */
export function endpointProblem(url: string): string | undefined {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return 'is not a valid URL'
  }
  if (u.protocol === 'https:') return undefined
  if (u.protocol === 'http:' && isLoopbackHost(u.hostname)) return undefined
  return 'must use https (plain http is accepted only for 127.0.0.1, ::1 and localhost)'
}
