/**
 * The key agent: a process that holds the store's unlocked data keys in memory and hands them to
 * the user's own mailkey processes over a Unix socket in a 0700 directory, like ssh-agent. With it,
 * `mailkey token` on an encrypted store stays a file read plus one local round trip.
 *
 * Wire format: one JSON line each way. {"op":"key","kid":K} -> {"key":base64} | {"error":text};
 * {"op":"ping"} -> {"kids":[...],"until":epochMs}; {"op":"stop"} -> {"stopped":true}.
 *
 * Invariants:
 * - A1 the socket lives in a directory only its owner can enter (0700, ours, not a symlink); the
 *   client refuses a socket whose directory is not like that, and the caller verifies every key
 *   against store.json's check value (protection.ts P2), so a rogue agent cannot plant a key.
 * - A2 requests are bounded: 4 KiB per line, 2 s to answer, and nothing but these three ops.
 * - A3 the agent forgets its keys and exits when its time is up or it is told to stop.
 *
 * Owns: the socket protocol. Must not: read or write records.
 */
import { createConnection, createServer, type Server } from 'node:net'
import { lstatSync, mkdirSync, unlinkSync } from 'node:fs'
import { dirname } from 'node:path'

const MAX_LINE = 4096

/** A1, client and server side: the socket's directory is ours and closed to everyone else. */
export function socketDirIsPrivate(sock: string): boolean {
  try {
    const st = lstatSync(dirname(sock))
    const mine = typeof process.getuid !== 'function' || st.uid === process.getuid()
    return st.isDirectory() && !st.isSymbolicLink() && mine && (st.mode & 0o077) === 0
  } catch {
    return false
  }
}

function ask(sock: string, req: object, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    if (!socketDirIsPrivate(sock)) {
      reject(new Error('no private agent socket'))
      return
    }
    const c = createConnection(sock)
    let buf = ''
    const timer = setTimeout(() => {
      c.destroy()
      reject(new Error('the agent did not answer'))
    }, timeoutMs)
    c.setEncoding('utf8')
    c.on('connect', () => c.write(JSON.stringify(req) + '\n'))
    c.on('data', (d: string) => {
      buf += d
      if (buf.length > MAX_LINE) c.destroy(new Error('the agent answered too much'))
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      clearTimeout(timer)
      c.end()
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>)
      } catch {
        reject(new Error('the agent answered something else than JSON'))
      }
    })
    c.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    c.on('close', () => {
      clearTimeout(timer)
      reject(new Error('the agent closed the connection'))
    })
  })
}

/** The key `kid` from a running agent; rejects when there is none (the caller goes on looking). */
export async function requestKey(sock: string, kid: string, timeoutMs = 2000): Promise<Buffer> {
  const r = await ask(sock, { op: 'key', kid }, timeoutMs)
  if (typeof r.key !== 'string') throw new Error(typeof r.error === 'string' ? r.error : 'the agent has no such key')
  return Buffer.from(r.key, 'base64')
}

export async function pingAgent(sock: string): Promise<{ kids: string[]; until: number } | undefined> {
  try {
    const r = await ask(sock, { op: 'ping' }, 2000)
    return Array.isArray(r.kids) && typeof r.until === 'number'
      ? { kids: r.kids as string[], until: r.until }
      : undefined
  } catch {
    return undefined
  }
}

export async function stopAgent(sock: string): Promise<boolean> {
  try {
    return (await ask(sock, { op: 'stop' }, 2000)).stopped === true
  } catch {
    return false
  }
}

export interface AgentHandle {
  server: Server
  /** when it will forget the keys and exit (epoch ms) */
  until: number
  /** resolves when it has stopped (told to, or its time is up) */
  stopped: Promise<void>
  stop(): void
}

/** One request line of the agent protocol and its answer: key, ping or stop. */
function agentAnswer(line: string, keys: Map<string, Buffer>, until: number, stop: () => void): object {
  let req: { op?: unknown; kid?: unknown }
  try {
    req = JSON.parse(line) as typeof req
  } catch {
    return { error: 'not JSON' }
  }
  if (req.op === 'key' && typeof req.kid === 'string') {
    const k = keys.get(req.kid)
    return k ? { key: k.toString('base64') } : { error: 'no such key' }
  }
  if (req.op === 'ping') return { kids: [...keys.keys()], until }
  if (req.op === 'stop') {
    setImmediate(stop)
    return { stopped: true }
  }
  return { error: 'unknown request' }
}

/**
 * Serve `keys` on `sock` for `lifetimeMs`. The socket's directory is created 0700 (A1); a stale
 * socket file from a dead agent is replaced, a live agent's is not.
 */
export async function serveKeys(sock: string, keys: Map<string, Buffer>, lifetimeMs: number): Promise<AgentHandle> {
  const dir = dirname(sock)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  if (!socketDirIsPrivate(sock))
    throw new Error(`the agent's directory "${dir}" is open to other users or not yours (chmod 700 it)`)
  if (await pingAgent(sock)) throw new Error(`an agent is already running on "${sock}" ("mailkey lock" stops it)`)
  try {
    unlinkSync(sock)
  } catch {
    /* none */
  }
  const until = Date.now() + lifetimeMs
  let done!: () => void
  const stopped = new Promise<void>((r) => (done = r))
  const server = createServer({ allowHalfOpen: false }, (c) => {
    c.setEncoding('utf8')
    let buf = ''
    const t = setTimeout(() => c.destroy(), 2000)
    c.on('error', () => {
      /* a client that went away */
    })
    c.on('close', () => clearTimeout(t))
    c.on('data', (d: string) => {
      buf += d
      if (buf.length > MAX_LINE) {
        c.destroy()
        return
      }
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      c.removeAllListeners('data')
      c.end(JSON.stringify(answer(buf.slice(0, nl))) + '\n')
    })
  })
  const answer = (line: string): object => agentAnswer(line, keys, until, () => handle.stop())
  const old = process.umask(0o077)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(sock, () => resolve())
    })
  } finally {
    process.umask(old)
  }
  const life = setTimeout(() => handle.stop(), Math.min(lifetimeMs, 2 ** 31 - 1))
  let isStopped = false
  const handle: AgentHandle = {
    server,
    until,
    stopped,
    stop() {
      if (isStopped) return
      isStopped = true
      clearTimeout(life)
      for (const k of keys.values()) k.fill(0) // A3
      keys.clear()
      server.close(() => done())
      try {
        unlinkSync(sock)
      } catch {
        /* gone */
      }
    },
  }
  return handle
}
