// A line client over a real socket for the proxy tests: send a line, wait for a pattern, see the
// connection close.
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A line client over a real socket: send a line, wait for a pattern, see the connection close. */
export class LineClient {
  text = ''
  closed = false
  readonly #sock: Socket
  private constructor(sock: Socket) {
    this.#sock = sock
    sock.setEncoding('utf8').on('data', (d: string) => (this.text += d))
    sock.on('close', () => (this.closed = true))
    sock.on('error', () => {})
  }

  static async open(port: number): Promise<LineClient> {
    const sock = connect(port, '127.0.0.1')
    await new Promise((r, j) => {
      sock.once('connect', r)
      sock.once('error', j)
    })
    return new LineClient(sock)
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

  close(): void {
    this.#sock.destroy()
  }
}
