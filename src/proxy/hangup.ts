/**
 * Ending a client connection the proxy is done with: the last line goes out, and the socket is
 * destroyed after a short linger even if the client never closes its side. Without the linger a
 * refused or closed-by-protocol connection would keep its descriptor (and its session's memory)
 * until the pre-auth timeout, which is what a flood of such connections wants.
 *
 * Owns: the linger. Must not: choose what to say (protocols/ do) or count connections.
 */
import type { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'

/** how long a hung-up client has to read the last line and close; then it is cut off */
export const LINGER_MS = 2000

/**
 * Send `lastLine`, then close. `quick`: a plain-text socket is destroyed as soon as the line is
 * handed to the kernel (a refused connection must not hold its descriptor while a flood of new
 * ones arrives; the kernel still delivers the line). TLS sockets always linger: the line waits for
 * the handshake.
 */
export function hangUp(sock: Socket, lastLine = '', o: { quick?: boolean; lingerMs?: number } = {}): void {
  if (sock.destroyed) return
  // a refused implicit-TLS client may fail its handshake: that must not become an uncaught error
  sock.on('error', () => sock.destroy())
  sock.end(lastLine)
  if (o.quick && !(sock instanceof TLSSocket)) sock.once('finish', () => sock.destroy())
  const t = setTimeout(() => sock.destroy(), o.lingerMs ?? LINGER_MS)
  t.unref()
  sock.once('close', () => clearTimeout(t))
}
