// The first steps of a scripted HTTP fault, shared by the lab OAuth server and the Graph emulator:
// wait (ending early, with the connection dropped, when the server closes), then drop the
// connection instead of answering when the fault says so.
import type { IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'

/** True when the request is done with (its connection dropped); false: answer it (or pass it on). */
export async function delayOrDrop(
  req: IncomingMessage,
  fault: { delayMs?: number; destroySocket?: boolean },
  closing: AbortSignal,
): Promise<boolean> {
  if (fault.delayMs) {
    try {
      await sleep(fault.delayMs, undefined, { signal: closing })
    } catch {
      req.socket.destroy()
      return true
    }
  }
  if (fault.destroySocket) {
    req.socket.destroy()
    return true
  }
  return false
}
