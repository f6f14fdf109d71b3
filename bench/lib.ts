// What several benchmarks share: timing one command, and the median of a sample.
import { spawn } from 'node:child_process'

/** run argv to its end; resolves with the wall time in ms, rejects when it exits non-zero */
export function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const c = spawn(argv[0] as string, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'inherit'] })
    c.once('error', reject)
    c.once('exit', (code) => {
      if (code !== 0) reject(new Error(`${argv.join(' ')} exited ${code}`))
      else resolve(Number(process.hrtime.bigint() - t0) / 1e6)
    })
  })
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}
