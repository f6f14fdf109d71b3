// A tiny scripted "user agent" for the lab's HTML pages: fetch + a path-aware cookie jar + a form
// parser that understands exactly the pages the lab (and oidc-provider's device forms) render.

interface StoredCookie {
  name: string
  value: string
  host: string
  path: string
  expiresAt: number
}

export class CookieJar {
  readonly #cookies = new Map<string, StoredCookie>()

  store(url: URL, setCookies: string[]): void {
    for (const line of setCookies) {
      const [pair = '', ...attributes] = line.split(';')
      const eq = pair.indexOf('=')
      if (eq <= 0) continue
      const cookie: StoredCookie = {
        name: pair.slice(0, eq).trim(),
        value: pair.slice(eq + 1).trim(),
        host: url.hostname,
        path: defaultPath(url.pathname),
        expiresAt: Infinity,
      }
      for (const attribute of attributes) {
        const [rawKey = '', ...rest] = attribute.split('=')
        const key = rawKey.trim().toLowerCase()
        const value = rest.join('=').trim()
        if (key === 'path' && value.startsWith('/')) cookie.path = value
        else if (key === 'max-age') cookie.expiresAt = Date.now() + Number(value) * 1000
        else if (key === 'expires' && cookie.expiresAt === Infinity) cookie.expiresAt = Date.parse(value)
      }
      const key = `${cookie.host} ${cookie.path} ${cookie.name}`
      if (!(cookie.expiresAt > Date.now())) this.#cookies.delete(key)
      else this.#cookies.set(key, cookie)
    }
  }

  header(url: URL): string | undefined {
    const now = Date.now()
    const matching = [...this.#cookies.values()]
      .filter((c) => c.host === url.hostname && c.expiresAt > now && pathMatches(url.pathname, c.path))
      .sort((a, b) => b.path.length - a.path.length)
    return matching.length ? matching.map((c) => `${c.name}=${c.value}`).join('; ') : undefined
  }
}

function defaultPath(pathname: string): string {
  const slash = pathname.lastIndexOf('/')
  return slash <= 0 ? '/' : pathname.slice(0, slash)
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true
  if (!requestPath.startsWith(cookiePath)) return false
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/'
}

export interface DriverResponse {
  status: number
  url: URL
  location?: URL
  html: string
}

export class HttpDriver {
  readonly jar = new CookieJar()

  async request(url: URL, form?: Record<string, string>): Promise<DriverResponse> {
    const headers: Record<string, string> = { accept: 'text/html,application/json;q=0.9' }
    const cookie = this.jar.header(url)
    if (cookie) headers.cookie = cookie
    let body: string | undefined
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      body = new URLSearchParams(form).toString()
    }
    const res = await fetch(url, {
      method: form ? 'POST' : 'GET',
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
    })
    this.jar.store(url, res.headers.getSetCookie())
    const html = await res.text()
    const location = res.headers.get('location')
    const out: DriverResponse = { status: res.status, url, html }
    if (location && res.status >= 300 && res.status < 400) out.location = new URL(location, url)
    return out
  }
}

export interface ParsedForm {
  id: string
  action: string
  method: string
  fields: Record<string, string>
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'" }

export function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (whole, entity: string) => {
    const known = ENTITIES[entity.toLowerCase()]
    if (known !== undefined) return known
    if (/^#x/i.test(entity)) return String.fromCodePoint(parseInt(entity.slice(2), 16))
    if (entity.startsWith('#')) return String.fromCodePoint(Number(entity.slice(1)))
    return whole
  })
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const m of tag.matchAll(/([\w.:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    const name = m[1]
    if (name !== undefined) out[name.toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? '')
  }
  return out
}

/** Parses the <form> elements of a page (hidden/text inputs only, which is all the lab pages use). */
export function parseForms(html: string, base: URL): ParsedForm[] {
  const forms: ParsedForm[] = []
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(m[1] ?? '')
    const fields: Record<string, string> = {}
    for (const input of (m[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
      const a = attributes(input[1] ?? '')
      if (a.name !== undefined) fields[a.name] = a.value ?? ''
    }
    forms.push({
      id: attrs.id ?? '',
      action: new URL(attrs.action ?? base.href, base).href,
      method: (attrs.method ?? 'get').toLowerCase(),
      fields,
    })
  }
  return forms
}

/** The id of the page's first `<main id=...>` element: how the lab's own pages announce what they are. */
export function pageId(html: string): string | undefined {
  return /<main\b[^>]*\bid="([^"]+)"/i.exec(html)?.[1]
}

/** A short, token-free description of a page for error messages. */
export function describePage(res: DriverResponse): string {
  const where = `${res.url.origin}${res.url.pathname}`
  const error = /<main\b[^>]*id="lab-error"[^>]*>([\s\S]*?)<\/main>/i.exec(res.html)?.[1]
  let detail = error
    ? decodeEntities(error.replace(/<[^>]+>/g, ' '))
        .replace(/\s+/g, ' ')
        .trim()
    : ''
  if (!detail && res.html.trimStart().startsWith('{')) {
    try {
      const json = JSON.parse(res.html) as { error?: unknown; error_description?: unknown }
      detail = `${String(json.error)}: ${String(json.error_description)}`
    } catch {
      detail = ''
    }
  }
  if (!detail) detail = /<title>([^<]*)<\/title>/i.exec(res.html)?.[1] ?? ''
  return `HTTP ${res.status} at ${where}${detail ? ` (${detail.slice(0, 300)})` : ''}`
}
