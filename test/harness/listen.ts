// A test server on 127.0.0.1 and a free port; a failure to listen rejects instead of throwing later.
import type { Server } from 'node:net'
import type { AddressInfo } from 'node:net'

export function listenLoopback(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}
