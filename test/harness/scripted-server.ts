// A tiny scripted TCP server for faults a real mail server will not produce: each connection
// replays a script (send bytes, expect a line, switch to TLS, hang up). It owns only its own
// sockets; it never prints what it receives (a client's SASL line carries a token), and the lines
// it keeps for assertions have everything after "AUTHENTICATE <mech>" and every SASL continuation
// replaced by "<redacted>".
import { createServer, type Server, type Socket } from 'node:net'
import { TLSSocket, createSecureContext } from 'node:tls'
import { readFileSync } from 'node:fs'

export type ScriptStep =
  /** write these bytes as one write (several lines in one write reach the peer in one segment) */
  | { send: string | ((m: RegExpMatchArray | null) => string) }
  /** read one line; it must match (else the connection is dropped); `send` steps after it see the match */
  | { expect: RegExp; secret?: boolean }
  /** upgrade to TLS as the server (STARTTLS); bytes already buffered are discarded */
  | { tls: true }
  /** hang up: 'end' (FIN) or 'destroy' (abrupt) */
  | { close: 'end' | 'destroy' }
  /** loop over the remaining steps until the peer hangs up */
  | { repeat: ScriptStep[] }

export interface ScriptedServerOptions {
  /** the script for connection number n (0-based) */
  script: (n: number) => ScriptStep[]
  /** certificate and key files (PEM) for `tls` steps and for implicit TLS */
  tls?: { certFile: string; keyFile: string; implicit?: boolean }
}

export interface ScriptedServer {
  port: number
  /** connections accepted so far */
  connections(): number
  /** per connection: the lines received (SASL data redacted) and how the script ended */
  sessions: { lines: string[]; outcome?: 'done' | 'peer-closed' | 'mismatch' | 'error' }[]
  close(): Promise<void>
}

export async function startScriptedServer(opts: ScriptedServerOptions): Promise<ScriptedServer> {
  const ctx = opts.tls
    ? createSecureContext({ cert: readFileSync(opts.tls.certFile), key: readFileSync(opts.tls.keyFile) })
    : undefined
  const sockets = new Set<Socket>()
  const sessions: ScriptedServer['sessions'] = []
  let n = 0
  const server: Server = createServer((raw) => {
    sockets.add(raw)
    raw.on('close', () => sockets.delete(raw))
    raw.on('error', () => {})
    const session: ScriptedServer['sessions'][number] = { lines: [] }
    sessions.push(session)
    const steps = opts.script(n++)
    const sock = opts.tls?.implicit && ctx ? new TLSSocket(raw, { isServer: true, secureContext: ctx }) : raw
    run(sock, steps, session).catch(() => {
      session.outcome ??= 'error'
      raw.destroy()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))

  async function run(initial: Socket, steps: ScriptStep[], session: ScriptedServer['sessions'][number]): Promise<void> {
    let sock = initial
    let buf = ''
    let closed = false
    let wake: (() => void) | undefined
    const attach = (s: Socket): void => {
      s.setEncoding('latin1')
      s.on('data', (d: string) => {
        buf += d
        wake?.()
      })
      s.on('close', () => {
        closed = true
        wake?.()
      })
      s.on('error', () => {})
    }
    attach(sock)
    const readLine = async (): Promise<string | undefined> => {
      for (;;) {
        const nl = buf.indexOf('\n')
        if (nl >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '')
          buf = buf.slice(nl + 1)
          return line
        }
        if (closed) return undefined
        await new Promise<void>((r) => (wake = r))
        wake = undefined
      }
    }
    let match: RegExpMatchArray | null = null
    const exec = async (list: ScriptStep[]): Promise<boolean> => {
      for (const step of list) {
        if ('send' in step) {
          sock.write(typeof step.send === 'function' ? step.send(match) : step.send)
        } else if ('expect' in step) {
          const line = await readLine()
          if (line === undefined) {
            session.outcome = 'peer-closed'
            return false
          }
          const authIdx = /^(\S+ AUTHENTICATE \S+)/i.exec(line)
          session.lines.push(step.secret ? '<redacted>' : authIdx ? `${authIdx[1]} <redacted>` : line)
          match = step.expect.exec(line)
          if (!match) {
            session.outcome = 'mismatch'
            sock.destroy()
            return false
          }
        } else if ('tls' in step) {
          if (!ctx) throw new Error('scripted server: a tls step needs opts.tls')
          buf = ''
          sock.removeAllListeners('data')
          sock.removeAllListeners('close')
          const plain = sock
          sock = new TLSSocket(plain, { isServer: true, secureContext: ctx })
          attach(sock)
        } else if ('close' in step) {
          if (step.close === 'end') sock.end()
          else sock.destroy()
          session.outcome = 'done'
          return false
        } else if ('repeat' in step) {
          while (!closed) if (!(await exec(step.repeat))) return false
          session.outcome = 'peer-closed'
          return false
        }
      }
      return true
    }
    if (await exec(steps)) session.outcome = 'done'
  }

  return {
    port: (server.address() as { port: number }).port,
    connections: () => n,
    sessions,
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}
