// Issue 11 item 9: how many token requests a hostile device-flow server gets when it answers the
// device authorization with `interval: 3e6` (which setTimeout once turned into 1 ms). One
// `mailkey add --device` runs for a fixed window (BENCH_WINDOW_SEC, default 10) against a scripted
// server that answers every poll with authorization_pending; the token requests that reach it
// after the code was shown are counted. Not a CI gate; the test (test/e2e/hostile-oauth.test.ts)
// holds the bound.
//
//   npm run build && node --import tsx bench/device-flood.ts
import { setTimeout as sleep } from 'node:timers/promises'
import { startHostileOAuth } from '../test/harness/hostile-oauth.js'
import { makeTmpHome } from '../test/harness/tmp-home.js'
import { spawnCli } from '../test/harness/cli.js'

const windowSec = Number(process.env.BENCH_WINDOW_SEC ?? 10)
const interval = Number(process.env.BENCH_INTERVAL ?? 3e6)
const server = await startHostileOAuth({
  device: () => ({
    body: {
      device_code: 'bench-device-code-0123456789',
      user_code: 'BENC-HMRK',
      verification_uri: 'https://login.example.test/device',
      expires_in: 900,
      interval,
    },
  }),
  token: () => ({ status: 400, body: { error: 'authorization_pending' } }),
})
const home = await makeTmpHome()
try {
  const cli = spawnCli(['add', 'flood@example.test', '--device', '--json', ...server.flags()], home.env)
  await cli.event('device_code')
  const start = server.counts.token
  await sleep(windowSec * 1000)
  const polls = server.counts.token - start
  cli.child.kill('SIGTERM')
  await cli.done
  console.log(`interval ${interval}: ${polls} token requests in ${windowSec} s (${(polls / windowSec).toFixed(1)}/s)`)
} finally {
  await server.close()
  await home.cleanup()
}
