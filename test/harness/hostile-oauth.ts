// A scripted, hostile OAuth server on 127.0.0.1: it answers the device authorization, token and
// revocation endpoints with whatever the test says (terminal escapes, echoed secrets, absurd
// intervals, empty 401s) and counts the requests that reach it. For what the real lab server
// (oauth-server.ts) will not say. It never prints what it receives.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Answer {
  status?: number
  /** an object is sent as JSON; a string as-is with `contentType` (default text/plain) */
  body?: string | object
  contentType?: string
}

export interface HostileOAuthOptions {
  /** the device authorization answer (RFC 8628 §3.2) to request number n, with the request's form */
  device?: (n: number, form: URLSearchParams) => Answer
  /** the token endpoint's answer to request number n (0-based), with the request's form */
  token?: (n: number, form: URLSearchParams) => Answer
  /** the revocation endpoint's answer */
  revoke?: (n: number) => Answer
}

export interface HostileOAuth {
  /** http://127.0.0.1:<port> */
  url: string
  /** provider flags for `mailkey add` / `import`: this server's endpoints, a client id, a scope */
  flags(scope?: string): string[]
  counts: { device: number; token: number; revoke: number }
  /** every request: its path and the client_id of its form (nothing secret is kept) */
  requests: { path: string; clientId: string }[]
  close(): Promise<void>
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
}

function send(res: ServerResponse, a: Answer): void {
  const body = a.body === undefined ? '' : typeof a.body === 'string' ? a.body : JSON.stringify(a.body)
  const type =
    a.body === undefined ? undefined : typeof a.body === 'string' ? (a.contentType ?? 'text/plain') : 'application/json'
  res.writeHead(a.status ?? 200, {
    ...(type ? { 'content-type': type } : {}),
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  })
  res.end(body)
}

export async function startHostileOAuth(opts: HostileOAuthOptions): Promise<HostileOAuth> {
  const counts = { device: 0, token: 0, revoke: 0 }
  const requests: HostileOAuth['requests'] = []
  const server = createServer((req, res) => {
    void (async () => {
      const form = await readForm(req)
      const path = new URL(req.url ?? '/', 'http://x').pathname
      requests.push({ path, clientId: form.get('client_id') ?? '' })
      if (path === '/device' && opts.device) return send(res, opts.device(counts.device++, form))
      if (path === '/token' && opts.token) return send(res, opts.token(counts.token++, form))
      if (path === '/revoke' && opts.revoke) return send(res, opts.revoke(counts.revoke++))
      send(res, { status: 404, body: { error: 'invalid_request' } })
    })().catch(() => res.destroy())
  })
  server.keepAliveTimeout = 500
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    flags: (scope = 'mail offline_access') => [
      '--device-url',
      `${url}/device`,
      '--token-url',
      `${url}/token`,
      '--revocation-url',
      `${url}/revoke`,
      '--client-id',
      'hostile-client',
      '--scope',
      scope,
    ],
    counts,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
