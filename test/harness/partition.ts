// A TCP hop between one host and its database, for partition tests (issue 13): `cut()` makes the
// link silent both ways (bytes are dropped, nothing is reset, so the host only notices by its own
// timeouts, as behind a dead switch), new connections hang; `heal()` forgets every connection that
// lived through the cut (as a NAT or firewall that lost its state would) and lets new ones through.
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

export interface Partition {
  host: '127.0.0.1'
  port: number
  cut(): void
  heal(): void
  close(): Promise<void>
}

export async function startPartition(target: { host: string; port: number }): Promise<Partition> {
  let isCut = false
  const pairs = new Set<{ client: Socket; upstream: Socket; cutThrough: boolean }>()
  const server: Server = createServer((client) => {
    const upstream = createConnection(target)
    const pair = { client, upstream, cutThrough: isCut }
    pairs.add(pair)
    const end = (): void => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    client.on('data', (d) => {
      if (!isCut && !pair.cutThrough) upstream.write(d)
    })
    upstream.on('data', (d) => {
      if (!isCut && !pair.cutThrough) client.write(d)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    cut() {
      isCut = true
      for (const p of pairs) p.cutThrough = true
    },
    heal() {
      isCut = false
      for (const p of [...pairs]) if (p.cutThrough) (p.client.destroy(), p.upstream.destroy(), pairs.delete(p))
    },
    async close() {
      for (const p of pairs) (p.client.destroy(), p.upstream.destroy())
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
