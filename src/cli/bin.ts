#!/usr/bin/env node
/** The `mailkey` executable: wires process streams and signals to cli/main.ts. */
import { main } from './main.js'
import { processIO } from './io.js'

const ac = new AbortController()
let interrupted = false
process.on('SIGINT', () => {
  if (interrupted) process.exit(130) // second ^C: leave now
  interrupted = true
  ac.abort(new DOMException('interrupted', 'AbortError'))
})
process.exitCode = await main(process.argv.slice(2), processIO(ac.signal))
