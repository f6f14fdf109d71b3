/**
 * Transcripts for the sans-I/O pre-auth sessions (protocols/*): feed client bytes or a login
 * verdict, render what the session answers as one string, and compare it with the expected one.
 * `[login user password]`, `[passthrough user MECH]`, `[starttls]`, `[close]`, `[done]` and
 * `[leftover ...]` stand for the non-reply actions. Everything the server would have sent is kept
 * in `serverOutput` for the suites' "no password in any reply" checks.
 */
import assert from 'node:assert/strict'
import type { ClientAction, LoginOutcome, PreAuthSession } from '../../src/protocols/shared/session.js'

export type Step = [input: string | Buffer | { result: LoginOutcome; text?: string }, expected: string]

export interface Transcripts {
  /** every reply and close text rendered so far */
  serverOutput: string[]
  render(actions: ClientAction[]): string
  transcript(session: PreAuthSession, steps: Step[]): void
  /**
   * Feed `chunks` as the proxy would: stop at a login action, answer it with 'ok', then send the
   * leftover and every later byte upstream. Returns what the client saw and what went upstream.
   */
  drive(session: PreAuthSession, chunks: Buffer[]): { client: string; upstream: string }
}

export function transcripts(): Transcripts {
  const serverOutput: string[] = []
  function render(actions: ClientAction[]): string {
    let out = ''
    for (const a of actions) {
      if (a.type === 'reply') {
        serverOutput.push(a.data)
        out += a.data
      } else if (a.type === 'close') {
        serverOutput.push(a.data ?? '')
        out += `${a.data ?? ''}[close]`
      } else if (a.type === 'starttls') {
        out += '[starttls]'
      } else if (a.type === 'login') {
        out += `[login ${a.username} ${a.password.reveal()}]`
      } else {
        out += `[passthrough ${a.username} ${a.mechanism}]`
      }
    }
    return out
  }
  function transcript(session: PreAuthSession, steps: Step[]): void {
    for (const [i, [input, expected]] of steps.entries()) {
      let got: string
      if (typeof input === 'string' || Buffer.isBuffer(input)) {
        got = render(session.feed(typeof input === 'string' ? Buffer.from(input, 'utf8') : input))
      } else {
        const r = session.loginResult(input.result, input.text === undefined ? undefined : { text: input.text })
        got =
          render(r.actions) + (r.done ? '[done]' : '') + (r.leftover ? `[leftover ${r.leftover.toString('utf8')}]` : '')
      }
      assert.equal(got, expected, `step ${i}: ${JSON.stringify(input)}`)
    }
  }
  function drive(s: PreAuthSession, chunks: Buffer[]): { client: string; upstream: string } {
    let client = render(s.start())
    const upstream: Buffer[] = []
    let done = false
    for (const chunk of chunks) {
      if (done) {
        upstream.push(chunk)
        continue
      }
      const actions = s.feed(chunk)
      client += render(actions)
      if (actions.some((a) => a.type === 'login')) {
        const r = s.loginResult('ok')
        client += render(r.actions)
        done = r.done
        if (r.leftover) upstream.push(r.leftover)
      }
    }
    return { client, upstream: Buffer.concat(upstream).toString('utf8') }
  }
  return { serverOutput, render, transcript, drive }
}
