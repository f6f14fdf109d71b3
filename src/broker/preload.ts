/**
 * Load now the modules a refresh loads on first use. A long-running process (the proxy) calls
 * this at start: a module that first has to be read when the process is out of file descriptors
 * fails with EMFILE, and Node remembers a failed import for the life of the process (measured on
 * Node 20: import() of the same file fails again after descriptors are free), so every refresh
 * would fail until a restart (issue 11, item 5).
 *
 * Owns: the list of lazily loaded refresh modules. Must not: run them.
 */
import type { Env } from '../config/paths.js'

export async function preloadRefreshModules(env: Env): Promise<void> {
  await Promise.all([
    import('../oauth/grants.js'),
    import('../providers/registry.js'),
    import('../providers/resolve.js'),
    import('../config/config.js'),
    import('./keep-alive.js'),
    ...(env.MAILKEY_EMAIL ? [import('../config/env-account.js'), import('../oauth/discovery.js')] : []),
  ])
}
