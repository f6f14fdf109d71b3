/**
 * The full CLI inside the single-file executable (ADR 0013): bundled by scripts/build-exe.mjs into
 * an SEA asset of its own, compiled only when the fast path (bin-exe.ts) does not answer, so that
 * `mailkey token` parses 100 kB rather than 2.4 MB, as with the npm install (bin-fast.ts).
 *
 * Owns: what the executable's entry may call. Must not: run anything when loaded.
 */
export { runMain } from './run-main.js'
export { runWorker } from '../broker/worker.js'
