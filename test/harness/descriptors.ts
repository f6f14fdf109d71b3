// This process's descriptor table, really filled: open the null device until EMFILE. For the tests
// of issue 11 item 5 (running out of file descriptors is an outage, not a dead account).
import { closeSync, openSync } from 'node:fs'
import { devNull } from 'node:os'

/**
 * Open the null device until the table is full, then close `leave` of them again; returns a
 * function that closes the rest. Any other error than EMFILE closes everything and is thrown.
 */
export function exhaustDescriptors(leave = 0): () => void {
  const fds: number[] = []
  try {
    for (;;) fds.push(openSync(devNull, 'r'))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EMFILE') {
      for (const fd of fds) closeSync(fd)
      throw e
    }
  }
  for (const fd of fds.splice(fds.length - leave)) closeSync(fd)
  return () => {
    for (const fd of fds.splice(0)) closeSync(fd)
  }
}

/** run `f` with no descriptor left; the table is freed again whatever happens */
export async function withoutDescriptors<T>(f: () => Promise<T>): Promise<T> {
  const free = exhaustDescriptors()
  try {
    return await f()
  } finally {
    free()
  }
}
