// A TCP proxy in front of the test OAuth server that misbehaves on cue: the faults an HTTP-level
// injection cannot make (the lab's injectTokenFault answers with a status and a body): a reset
// before or in the middle of the answer, a server that never answers, a body cut short, bytes that
// are not HTTP, a body far too large. One fault per connection, taken from a queue; no fault: the
// bytes pass through untouched.
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

export type Fault =
  | { kind: 'reset-before' } // the request arrives, the connection is reset
  | { kind: 'reset-mid'; afterBytes: number } // the answer starts, then a reset
  | { kind: 'stall' } // the request arrives, nothing ever comes back
  | { kind: 'truncate'; afterBytes: number } // the answer starts, then a clean close (FIN)
  | { kind: 'raw'; bytes: string | Buffer } // this answer instead of the server's, then close
  | { kind: 'huge'; contentType: string; bytes: number } // 200 with a body of that many bytes

export interface FaultProxy {
  /** http://127.0.0.1:<port> */
  url: string
  /** queue faults for the next connections */
  push(...faults: Fault[]): void
  clear(): void
  /** faults used so far, by kind */
  readonly used: Record<string, number>
  close(): Promise<void>
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const queue: Fault[] = []
  const used: Record<string, number> = {}
  const open = new Set<Socket>()
  const server: Server = createServer((client) => {
    open.add(client)
    client.on('close', () => open.delete(client))
    client.on('error', () => {
      /* the client went away */
    })
    const fault = queue.shift()
    if (fault) used[fault.kind] = (used[fault.kind] ?? 0) + 1
    // wait for the request (headers at least) before misbehaving, as a real server would
    const onRequest = (first: Buffer): void => {
      if (!fault) return
      switch (fault.kind) {
        case 'reset-before':
          client.resetAndDestroy()
          return
        case 'stall':
          client.pause() // never answer; the client's own timeout ends it
          return
        case 'raw':
          client.end(fault.bytes)
          return
        case 'huge': {
          client.write(
            `HTTP/1.1 200 OK\r\ncontent-type: ${fault.contentType}\r\ncontent-length: ${fault.bytes}\r\nconnection: close\r\n\r\n`,
          )
          const chunk = Buffer.alloc(64 * 1024, 0x61)
          let left = fault.bytes
          const pump = (): void => {
            while (left > 0 && !client.destroyed) {
              const n = Math.min(left, chunk.length)
              left -= n
              if (!client.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
                client.once('drain', pump)
                return
              }
            }
            client.end()
          }
          pump()
          return
        }
        default:
          void first
      }
    }
    if (!fault || fault.kind === 'reset-mid' || fault.kind === 'truncate') {
      const upstream = createConnection(target)
      upstream.on('error', () => client.destroy())
      client.on('close', () => upstream.destroy())
      client.pipe(upstream)
      if (!fault) {
        upstream.pipe(client)
        return
      }
      let sent = 0
      const limit = fault.afterBytes
      upstream.on('data', (d: Buffer) => {
        if (sent >= limit) return
        const part = d.subarray(0, limit - sent)
        sent += part.length
        client.write(part)
        if (sent >= limit) {
          upstream.destroy()
          if (fault.kind === 'reset-mid') client.resetAndDestroy()
          else client.end()
        }
      })
      upstream.on('end', () => client.end())
      return
    }
    client.once('data', onRequest)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    push: (...f) => void queue.push(...f),
    clear: () => void queue.splice(0),
    used,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy()
        server.close(() => resolve())
      }),
  }
}
