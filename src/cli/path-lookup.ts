/**
 * Finding a program on PATH as the shell would: the first directory of env.PATH holding an
 * executable file of that name.
 *
 * Owns: the PATH walk. Must not: run what it finds.
 */
import { accessSync, constants as fsc, statSync } from 'node:fs'
import { delimiter, join } from 'node:path'

/** the first executable file `name` in env.PATH, skipping directories `skip` rejects */
export function findOnPath(name: string, env: NodeJS.ProcessEnv, skip?: (dir: string) => boolean): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (skip?.(dir)) continue
    const p = join(dir, name)
    try {
      accessSync(p, fsc.X_OK)
      if (statSync(p).isFile()) return p
    } catch {
      /* not here */
    }
  }
  return undefined
}
