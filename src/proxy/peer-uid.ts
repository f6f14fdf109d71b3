/**
 * Which local user is on the other end of a loopback TCP connection (Linux: the kernel's socket
 * table in /proc/net/tcp and /proc/net/tcp6 names the owner of the client's socket). Every local
 * client comes from 127.0.0.1, so by address alone another user guessing passwords and the owner
 * logging in are one source and share one guess budget (throttle.ts); by user they do not.
 *
 * Best effort: undefined when the platform has no such table, the entry is gone, or anything
 * fails; the caller then keys by address.
 *
 * Owns: reading and matching the socket table. Must not: throw, or be used for anything but
 * throttling (it is not authentication: the password still decides).
 */
import { readFile } from 'node:fs/promises'
import { isLoopbackHost } from '../core/net.js'
import { sourceOf } from './throttle.js'

export interface Endpoint {
  address: string
  port: number
}

/**
 * The socket tables, read at most every `minIntervalMs` and shared by all lookups meanwhile: under
 * a flood of connections, reading them per connection (thousands of rows, TIME_WAIT included)
 * would cost more than the throttle saves. A connection not in the last reading waits for the next.
 */
export class PeerUidTable {
  readonly #minIntervalMs: number
  readonly #read: (file: string) => Promise<string>
  readonly #now: () => number
  #rows = new Map<string, number>()
  #at = -Infinity
  #refreshing: Promise<void> | undefined

  constructor(o: { minIntervalMs?: number; read?: (file: string) => Promise<string>; now?: () => number } = {}) {
    this.#minIntervalMs = o.minIntervalMs ?? 250
    this.#read = o.read ?? ((f: string) => readFile(f, 'latin1'))
    this.#now = o.now ?? Date.now
  }

  /** The uid owning the client's end of the connection from `peer` to `local`, or undefined. */
  async lookup(peer: Endpoint, local: Endpoint): Promise<number | undefined> {
    const keys = [encodeV4, encodeV6]
      .map((enc) => {
        const p = enc(peer)
        const l = enc(local)
        return p && l ? `${p} ${l}` : undefined
      })
      .filter((k): k is string => k !== undefined)
    const find = (): number | undefined => keys.map((k) => this.#rows.get(k)).find((u) => u !== undefined)
    const cached = find()
    if (cached !== undefined) return cached
    // A reading already under way may have started before this connection existed: then one more.
    for (let i = 0; i < 2; i++) {
      await this.#refresh()
      const uid = find()
      if (uid !== undefined) return uid
    }
    return undefined
  }

  #refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      const wait = this.#at + this.#minIntervalMs - this.#now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      const rows = new Map<string, number>()
      for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
        const text = await this.#read(file).catch(() => '')
        for (const line of text.split('\n')) {
          // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
          const f = line.trim().split(/\s+/)
          const uid = Number(f[7])
          if (f[1] && f[2] && f[7] && Number.isSafeInteger(uid)) rows.set(`${f[1]} ${f[2]}`, uid)
        }
      }
      this.#rows = rows
      this.#at = this.#now()
    })()
      .catch(() => {})
      .finally(() => {
        this.#refreshing = undefined
      })
    return this.#refreshing
  }
}

const shared = new PeerUidTable()

/**
 * The throttle's source for a connection: `uid:<n>` for a loopback client whose user is known,
 * else its address (throttle.ts sourceOf: IPv4, or the IPv6 /64).
 */
export async function throttleSource(
  remote: Partial<Endpoint>,
  local: Partial<Endpoint>,
  table: PeerUidTable = shared,
): Promise<string> {
  const address = remote.address ?? '?'
  if (
    process.platform === 'linux' &&
    isLoopbackHost(address.replace(/^::ffff:/i, '')) &&
    remote.port !== undefined &&
    local.address !== undefined &&
    local.port !== undefined
  ) {
    const uid = await table
      .lookup({ address, port: remote.port }, { address: local.address, port: local.port })
      .catch(() => undefined)
    if (uid !== undefined) return `uid:${uid}`
  }
  return sourceOf(address)
}

/** One lookup, reading the tables afresh (tests and tools; the proxy uses PeerUidTable). */
export async function loopbackPeerUid(
  peer: Endpoint,
  local: Endpoint,
  o: { read?: (file: string) => Promise<string> } = {},
): Promise<number | undefined> {
  if (process.platform !== 'linux' && !o.read) return undefined
  return new PeerUidTable({ minIntervalMs: 0, ...(o.read ? { read: o.read } : {}) }).lookup(peer, local)
}

const port = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0')

/** "127.0.0.1":port as the kernel prints it: the 32-bit address in host order (little-endian). */
export function encodeV4(e: Endpoint): string | undefined {
  const a = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(e.address)
  if (!a) return undefined
  const bytes = a.slice(1, 5).map(Number)
  if (bytes.some((b) => b > 255)) return undefined
  return (
    bytes
      .reverse()
      .map((b) => b.toString(16).toUpperCase().padStart(2, '0'))
      .join('') +
    ':' +
    port(e.port)
  )
}

/** An IPv6 address (IPv4-mapped included) as the kernel prints it: four 32-bit words, each little-endian. */
export function encodeV6(e: Endpoint): string | undefined {
  const bytes = ipv6Bytes(e.address)
  if (!bytes) return undefined
  let out = ''
  for (let w = 0; w < 4; w++) {
    for (let i = 3; i >= 0; i--) out += (bytes[w * 4 + i] as number).toString(16).toUpperCase().padStart(2, '0')
  }
  return out + ':' + port(e.port)
}

function ipv6Bytes(address: string): number[] | undefined {
  let a = address.toLowerCase().replace(/%.*$/, '')
  const v4 = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a)
  let tail: number[] = []
  if (v4) {
    tail = v4.slice(2, 6).map(Number)
    a = (v4[1] as string) + '0:0'
  }
  if (!a.includes(':')) return undefined
  const [head = '', rest = ''] = a.split('::')
  const left = head ? head.split(':') : []
  const right = a.includes('::') ? (rest ? rest.split(':') : []) : []
  const groups = a.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined
  const bytes = groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff])
  if (v4) bytes.splice(12, 4, ...tail)
  return bytes
}
