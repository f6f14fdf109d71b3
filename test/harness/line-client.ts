// A line client over a real socket for the proxy tests: send a line, wait for a pattern, see the
// connection close, upgrade to TLS in place (STARTTLS). Its TLS trusts any certificate: these
// tests look at what a server does with a session, not at who it is.
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A line client over a real socket: send a line, wait for a pattern, see the connection close. */
export class LineClient {
  text = ''
  closed = false
  #sock: Socket
  private constructor(sock: Socket) {
    this.#sock = sock
    this.#listen(sock)
  }

  static async open(port: number): Promise<LineClient> {
    const sock = connect(port, '127.0.0.1')
    await new Promise((r, j) => {
      sock.once('connect', r)
      sock.once('error', j)
    })
    return new LineClient(sock)
  }

  #listen(s: Socket): void {
    s.setEncoding('utf8').on('data', (d: string) => (this.text += d))
    s.on('close', () => (this.closed = true))
    s.on('error', () => {})
  }

  async until(re: RegExp, timeoutMs = 30_000): Promise<string> {
    const end = Date.now() + timeoutMs
    for (;;) {
      const m = re.exec(this.text)
      if (m) return m[0]
      if (this.closed || Date.now() > end) throw new Error(`no ${re} in ${JSON.stringify(this.text.slice(-300))}`)
      await sleep(10)
    }
  }

  /** resolves once the other end has closed the connection */
  async untilClosed(timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs
    while (!this.closed && Date.now() < end) await sleep(10)
    assert.ok(this.closed, 'the connection was closed')
  }

  send(line: string): void {
    this.#sock.write(line + '\r\n')
  }

  /** TLS over the same connection (after the server's go-ahead); `text` starts again, empty */
  async starttls(): Promise<void> {
    this.#sock.removeAllListeners('data')
    const tls = tlsConnect({ socket: this.#sock, rejectUnauthorized: false, servername: 'localhost' })
    await new Promise((r, j) => {
      tls.once('secureConnect', r)
      tls.once('error', j)
    })
    this.#sock = tls
    this.text = ''
    this.#listen(tls)
  }

  close(): void {
    this.#sock.destroy()
  }
}
