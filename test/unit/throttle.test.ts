// The guess throttle (per source and global token buckets), the bounded KDF gate, and the order
// LoginCheck applies them in, with an injected clock and a password verifier faked at the edge:
// guesses are counted, never timed (issue 11, items 3 and 6).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Secret } from '../../src/core/secret.js'
import { GuessThrottle, KdfAbandonedError, KdfBusyError, KdfGate, sourceOf } from '../../src/proxy/throttle.js'
import { LoginCheck, type PasswordVerifier } from '../../src/proxy/login-check.js'

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000
  return {
    now: () => t,
    advance: (ms) => {
      t += ms
    },
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

/** A verifier whose KDF runs finish only when the test says so; it knows one right password per account. */
function fakeVerifier(
  right: Record<string, string>,
): PasswordVerifier & { runs: string[]; finish: () => void; remember: (a: string, p: string) => void } {
  const known = new Set<string>()
  const pending: (() => void)[] = []
  const runs: string[] = []
  const key = (a: string, p: Secret): string => `${a}\0${p.reveal()}`
  return {
    runs,
    remembered: (a, p) => known.has(key(a, p)),
    pairKey: key,
    async verify(a, p) {
      runs.push(a)
      await new Promise<void>((r) => pending.push(r))
      const ok = right[a] === p.reveal()
      if (ok) known.add(key(a, p))
      return ok
    },
    finish: () => {
      for (const r of pending.splice(0)) r()
    },
    remember: (a, p) => known.add(`${a}\0${p}`),
  }
}

/** Let every KDF run finish, round after round, until all `checks` have their answer. */
async function settle<T>(v: { finish: () => void }, checks: Promise<T>[]): Promise<T[]> {
  let done = false
  const all = Promise.all(checks).finally(() => {
    done = true
  })
  for (let i = 0; i < 100 && !done; i++) {
    await tick()
    v.finish()
  }
  return all
}

const login = (username: string, password: string) => ({
  type: 'login' as const,
  username,
  password: new Secret(password),
})
const passthrough = (username: string, token: string) => ({
  type: 'passthrough' as const,
  username,
  mechanism: 'XOAUTH2' as const,
  response: new Secret('opaque'),
  token: new Secret(token),
})

describe('GuessThrottle', () => {
  it('one budget per source whatever the number of connections; refills with the clock', () => {
    const c = clock()
    const t = new GuessThrottle({
      now: c.now,
      perSourceBurst: 3,
      perSourcePerMin: 6,
      globalBurst: 100,
      globalPerMin: 100,
    })
    const got = Array.from({ length: 50 }, () => t.take('127.0.0.1').ok)
    assert.equal(got.filter(Boolean).length, 3)
    const refused = t.take('127.0.0.1')
    assert.ok(!refused.ok && refused.retryAfterMs === 10_000, JSON.stringify(refused))
    c.advance(10_000)
    assert.equal(t.take('127.0.0.1').ok, true, 'one guess every 10 s at 6 per minute')
    assert.equal(t.take('127.0.0.1').ok, false)
    assert.equal(t.take('192.0.2.7').ok, true, 'another source has its own budget')
  })

  it('the global budget bounds all sources together; a refund gives a guess back', () => {
    const c = clock()
    const t = new GuessThrottle({ now: c.now, perSourceBurst: 2, globalBurst: 5, globalPerMin: 1 })
    const ok = Array.from({ length: 20 }, (_, i) => t.take(`192.0.2.${i}`).ok).filter(Boolean).length
    assert.equal(ok, 5)
    t.refund('192.0.2.1')
    assert.equal(t.take('192.0.2.99').ok, true)
    assert.equal(t.take('192.0.2.98').ok, false)
  })

  it('keys IPv6 by /64 and IPv4-mapped addresses as IPv4', () => {
    assert.equal(sourceOf('::ffff:127.0.0.1'), '127.0.0.1')
    assert.equal(sourceOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64')
    assert.equal(sourceOf('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64')
    assert.equal(sourceOf('2001:db8::1'), '2001:db8:0:0::/64')
    assert.equal(sourceOf('::1'), '0:0:0:0::/64')
  })
})

describe('KdfGate', () => {
  it('runs at most `parallel` at once, queues at most `queued`, refuses the rest at once', async () => {
    const g = new KdfGate({ parallel: 2, queued: 3 })
    let running = 0
    let peak = 0
    const release: (() => void)[] = []
    const job = (): Promise<void> =>
      g.run(async () => {
        running++
        peak = Math.max(peak, running)
        await new Promise<void>((r) => release.push(r))
        running--
      })
    const results = Array.from({ length: 10 }, () =>
      job().then(
        () => 'done',
        (e: unknown) => (e instanceof KdfBusyError ? 'busy' : 'other'),
      ),
    )
    await tick()
    assert.deepEqual([g.running, g.queued], [2, 3])
    while (release.length) {
      release.shift()?.()
      await tick()
    }
    await tick()
    while (release.length) {
      release.shift()?.()
      await tick()
    }
    const r = await Promise.all(results)
    assert.equal(r.filter((x) => x === 'done').length, 5)
    assert.equal(r.filter((x) => x === 'busy').length, 5)
    assert.equal(peak, 2)
  })

  it("waiting runs start in turn by source: one source's burst does not stand in front of another", async () => {
    const g = new KdfGate({ parallel: 1, queued: 10, queuedPerSource: 3 })
    const order: string[] = []
    const release: (() => void)[] = []
    const job = (source: string, name: string): Promise<unknown> =>
      g
        .run(
          async () => {
            order.push(name)
            await new Promise<void>((r) => release.push(r))
          },
          undefined,
          source,
        )
        .catch((e: unknown) => (e instanceof KdfBusyError ? `${name} busy` : 'other'))
    const all = [
      job('attacker', 'a0'),
      job('attacker', 'a1'),
      job('attacker', 'a2'),
      job('attacker', 'a3'),
      job('attacker', 'a4'),
      job('owner', 'o1'),
    ]
    await tick()
    assert.deepEqual(g.queued, 4, "a1..a3 and o1 wait; a4 is over the attacker's share")
    for (let i = 0; i < 6; i++) {
      release.shift()?.()
      await tick()
    }
    const r = await Promise.all(all)
    assert.equal(r[4], 'a4 busy')
    assert.deepEqual(order, ['a0', 'a1', 'o1', 'a2', 'a3'])
  })

  it('a waiting run whose client has gone never runs', async () => {
    const g = new KdfGate({ parallel: 1, queued: 5 })
    let release = (): void => {}
    const first = g.run(
      () =>
        new Promise<void>((r) => {
          release = r
        }),
    )
    const ac = new AbortController()
    let ran = false
    const second = g.run(async () => {
      ran = true
    }, ac.signal)
    ac.abort()
    await assert.rejects(second, KdfAbandonedError)
    assert.equal(g.queued, 0)
    release()
    await first
    assert.equal(ran, false)
  })
})

describe('LoginCheck', () => {
  const opts = (c: ReturnType<typeof clock>) => ({
    throttle: { now: c.now, perSourceBurst: 5, perSourcePerMin: 6, globalBurst: 100, globalPerMin: 100 },
    kdf: { parallel: 2, queued: 8, queuedPerSource: 8 },
    penalty: { freePerUser: 1000, freePerAddress: 1000 },
  })
  const ctx = (signal = new AbortController().signal, allowed = true, exists = true) => ({
    source: '127.0.0.1',
    allowed,
    signal,
    hasAccount: async () => exists,
  })

  it('200 parallel wrong guesses from one address: 5 KDF runs, the rest refused at once as temporary', async () => {
    const c = clock()
    const v = fakeVerifier({ 'alice@example.test': 'right' })
    const lc = new LoginCheck(v, opts(c))
    const r = await settle(
      v,
      Array.from({ length: 200 }, (_, i) => lc.decide(login('alice@example.test', `guess ${i}`), ctx())),
    )
    assert.equal(v.runs.length, 5)
    assert.equal(r.filter((x) => x.kind === 'refused').length, 5)
    assert.equal(r.filter((x) => x.kind === 'busy' && x.why === 'throttled').length, 195)
    // 30 s later at 6 a minute: 3 more guesses, however many connections try
    c.advance(30_000)
    await settle(
      v,
      Array.from({ length: 50 }, (_, i) => lc.decide(login('alice@example.test', `later ${i}`), ctx())),
    )
    assert.equal(v.runs.length, 5 + 3)
  })

  it('a known-good password is accepted while the budget is spent and the queue is full, without a KDF run', async () => {
    const c = clock()
    const v = fakeVerifier({ 'alice@example.test': 'right' })
    const lc = new LoginCheck(v, { ...opts(c), kdf: { parallel: 1, queued: 1 } })
    v.remember('alice@example.test', 'right')
    const attack = Array.from({ length: 50 }, (_, i) => lc.decide(login('alice@example.test', `guess ${i}`), ctx()))
    await tick()
    assert.deepEqual(lc.load, { running: 1, queued: 1 })
    const runs = v.runs.length
    const owner = await lc.decide(login('alice@example.test', 'right'), ctx())
    assert.deepEqual(owner, { kind: 'signin', remembered: true, fromPassthrough: false })
    assert.equal(v.runs.length, runs)
    await settle(v, attack)
  })

  it('the first right login gives its guess back; the same credentials on many connections share one KDF run', async () => {
    const c = clock()
    const v = fakeVerifier({ 'alice@example.test': 'right' })
    const lc = new LoginCheck(v, opts(c))
    const r = await settle(
      v,
      Array.from({ length: 20 }, () => lc.decide(login('alice@example.test', 'right'), ctx())),
    )
    assert.equal(v.runs.length, 1)
    assert.ok(r.every((x) => x.kind === 'signin'))
    // the budget is whole: 5 wrong guesses still get checked
    const wrong = await settle(
      v,
      Array.from({ length: 5 }, (_, i) => lc.decide(login('alice@example.test', `w${i}`), ctx())),
    )
    assert.ok(wrong.every((x) => x.kind === 'refused'))
  })

  it('connections whose source is still being looked up join the check already started for the same pair', async () => {
    const c = clock()
    const v = fakeVerifier({ 'alice@example.test': 'right' })
    const lc = new LoginCheck(v, opts(c))
    const lookup = async (): Promise<string> => {
      await tick()
      return 'uid:1000'
    }
    const r = await settle(
      v,
      Array.from({ length: 50 }, () => lc.decide(login('alice@example.test', 'right'), { ...ctx(), source: lookup })),
    )
    assert.equal(v.runs.length, 1)
    assert.ok(
      r.every((x) => x.kind === 'signin'),
      JSON.stringify(r.filter((x) => x.kind !== 'signin')[0]),
    )
  })

  it('a password file that cannot be read for a passing reason is a temporary failure, not a wrong password, and costs no guess', async () => {
    const { TransientError, ERR } = await import('../../src/errors.js')
    const c = clock()
    let fail = true
    const v: PasswordVerifier = {
      remembered: () => false,
      pairKey: (a, p) => `${a}\0${p.reveal()}`,
      verify: async () => {
        if (fail) throw new TransientError(ERR.STORE_IO, 'EMFILE: too many open files')
        return false
      },
    }
    const lc = new LoginCheck(v, { ...opts(c), throttle: { ...opts(c).throttle, perSourceBurst: 1 } })
    const r = await lc.decide(login('alice@example.test', 'x'), ctx())
    assert.equal(r.kind, 'unavailable')
    fail = false
    assert.equal(
      (await lc.decide(login('alice@example.test', 'y'), ctx())).kind,
      'refused',
      'the one guess was given back',
    )
  })

  it('checks of clients that have gone are dropped from the queue and cost no guess', async () => {
    const c = clock()
    const v = fakeVerifier({})
    const lc = new LoginCheck(v, { ...opts(c), throttle: { ...opts(c).throttle, perSourceBurst: 50 } })
    const gone = Array.from({ length: 10 }, () => new AbortController())
    const checks = gone.map((ac, i) => lc.decide(login('alice@example.test', `g${i}`), ctx(ac.signal)))
    await tick()
    assert.deepEqual(lc.load, { running: 2, queued: 8 })
    for (const ac of gone) ac.abort()
    assert.ok((await Promise.all(checks)).every((x) => x.kind === 'gone'))
    assert.equal(lc.load.queued, 0)
    v.finish()
    await tick()
    assert.equal(v.runs.length, 2, 'only the two already running')
  })

  it('a pass-through token that is the local password is a password login, never forwarded', async () => {
    const c = clock()
    const v = fakeVerifier({ 'alice@example.test': 'local pw' })
    const lc = new LoginCheck(v, opts(c))
    const [p] = await settle(v, [lc.decide(passthrough('alice@example.test', 'local pw'), ctx())])
    assert.deepEqual(p, { kind: 'signin', remembered: false, fromPassthrough: true })
    const [real] = await settle(v, [lc.decide(passthrough('alice@example.test', 'ya29.real-token'), ctx())])
    assert.deepEqual(real, { kind: 'forward', charged: true })
  })

  it('a token the server accepts gives back only the guess its own connection spent', async () => {
    const c = clock()
    const v = fakeVerifier({ 'alice@example.test': 'local pw' })
    const lc = new LoginCheck(v, { ...opts(c), throttle: { ...opts(c).throttle, perSourceBurst: 3 } })
    // 3 wrong passwords spend the budget
    await settle(
      v,
      [0, 1, 2].map((i) => lc.decide(login('alice@example.test', `w${i}`), ctx())),
    )
    assert.equal((await lc.decide(login('alice@example.test', 'w3'), ctx())).kind, 'busy')
    c.advance(10_000) // one guess back
    // 20 connections with the same valid token: one check, joined by the rest; all forwarded and accepted
    const r = await settle(
      v,
      Array.from({ length: 20 }, () => lc.decide(passthrough('alice@example.test', 'ya29.valid'), ctx())),
    )
    for (const x of r) if (x.kind === 'forward') lc.forwarded('127.0.0.1', 'alice@example.test', false, x)
    assert.equal(r.filter((x) => x.kind === 'forward' && x.charged).length, 1)
    // the budget holds one guess again, not twenty
    const after = await settle(v, [
      lc.decide(login('alice@example.test', 'w4'), ctx()),
      lc.decide(login('alice@example.test', 'w5'), ctx()),
    ])
    assert.deepEqual(
      after.map((x) => x.kind),
      ['refused', 'busy'],
    )
  })

  it('an unknown account, a wrong password and a listener that does not allow the account get one answer after one KDF run each', async () => {
    const c = clock()
    const v = fakeVerifier({ 'alice@example.test': 'local pw' })
    const lc = new LoginCheck(v, opts(c))
    const cases = [
      lc.decide(passthrough('nobody@example.test', 'some token'), ctx(undefined, true, false)),
      lc.decide(login('nobody@example.test', 'x'), ctx(undefined, true, false)),
      lc.decide(login('alice@example.test', 'wrong'), ctx()),
      lc.decide(login('alice@example.test', 'local pw'), ctx(undefined, false)),
    ]
    const r = await settle(v, cases)
    assert.deepEqual(
      r.map((x) => x.kind),
      ['refused', 'refused', 'refused', 'refused'],
    )
    assert.equal(v.runs.length, 4)
  })
})

describe('peer-uid: who is on the other end of a loopback connection', () => {
  // Two rows as the kernel prints them: the client's socket 127.0.0.1:40262 -> 127.0.0.1:1143 of
  // uid 65534, and the server's side of it (uid 0).
  const TCP = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:9D46 0100007F:0477 01 00000000:00000000 00:00000000 00000000 65534        0 117060 1 0 20 4 30 10 -1',
    '   1: 0100007F:0477 0100007F:9D46 01 00000000:00000000 00:00000000 00000000     0        0 117061 1 0 20 4 30 10 -1',
  ].join('\n')

  it("encodes addresses as /proc/net/tcp{,6} does and finds the client socket's uid", async () => {
    const { encodeV4, encodeV6, loopbackPeerUid } = await import('../../src/proxy/peer-uid.js')
    assert.equal(encodeV4({ address: '127.0.0.1', port: 40262 }), '0100007F:9D46')
    assert.equal(encodeV4({ address: '::ffff:127.0.0.1', port: 1143 }), '0100007F:0477')
    assert.equal(encodeV6({ address: '::1', port: 1143 }), '00000000000000000000000001000000:0477')
    assert.equal(encodeV6({ address: '::ffff:127.0.0.1', port: 1 }), '0000000000000000FFFF00000100007F:0001')
    const read = async (f: string): Promise<string> => (f === '/proc/net/tcp' ? TCP : '')
    assert.equal(
      await loopbackPeerUid({ address: '127.0.0.1', port: 40262 }, { address: '127.0.0.1', port: 1143 }, { read }),
      65534,
    )
    assert.equal(
      await loopbackPeerUid({ address: '127.0.0.1', port: 40263 }, { address: '127.0.0.1', port: 1143 }, { read }),
      undefined,
    )
  })
})
