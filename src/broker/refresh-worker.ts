/**
 * The detached refresh worker's process entry (broker/worker.ts, B3). Started by a process that
 * holds an account lock; adopts the lock, refreshes, writes the record, releases. Prints nothing:
 * the outcome is in the record, where every waiting process reads it.
 */
import { runWorker } from './worker.js'

// exit at once when the work is done: a connection to a shared store that was cut off must not
// keep the worker (and the host's view of the account) waiting for the network to time it out
process.exit(await runWorker(process.argv.slice(2)).catch(() => 1))
