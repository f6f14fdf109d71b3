// The proxy's connection caps and pre-auth byte budget (src/proxy/admission.ts), and the refusal
// lines (src/protocols/shared/refusals.ts): pure counting, no sockets, a fake clock.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  Admission,
  DEFAULT_MAX_CONNECTIONS,
  FD_RESERVE,
  MIN_CHUNK_COST,
  RefusalLog,
  chunkCost,
  defaultMaxConnections,
  descriptorsNeeded,
  resolveAdmission,
  type AdmissionTicket,
} from '../../src/proxy/admission.js'
import { refusalLine } from '../../src/protocols/shared/refusals.js'

const limits = {
  maxConnections: 4,
  maxConnectionsPerSource: 2,
  perSourceOnLoopback: true,
  maxPreAuthBytes: 100,
  preAuthBudgetBytes: 250,
  loginAllowanceBytes: 0,
}
const ticket = (a: Admission, source: string): AdmissionTicket => {
  const t = a.admit(source)
  assert.equal(typeof t, 'object', `${source} admitted`)
  return t as AdmissionTicket
}

describe('proxy admission', () => {
  it('caps connections per source and in total; a closed connection frees its place once', () => {
    const a = new Admission(limits)
    const a1 = ticket(a, '127.0.0.1')
    ticket(a, '127.0.0.1')
    assert.equal(a.admit('127.0.0.1'), 'source-busy')
    ticket(a, '127.0.0.2')
    const b2 = ticket(a, '127.0.0.2')
    assert.equal(a.admit('127.0.0.3'), 'busy', 'the total cap comes first')
    assert.equal(a.open, 4)
    a1.release()
    a1.release()
    assert.equal(a.open, 3, 'a second release changes nothing')
    ticket(a, '127.0.0.1')
    b2.release()
    ticket(a, '127.0.0.3')
    assert.equal(a.admit('127.0.0.4'), 'busy')
  })

  it('by default the per-source cap spares loopback: every local program is 127.0.0.1, and they share the total', () => {
    const a = new Admission({ ...limits, maxConnections: 10, perSourceOnLoopback: false })
    for (let i = 0; i < 5; i++) ticket(a, '127.0.0.1')
    ticket(a, '::ffff:127.0.0.1')
    ticket(a, '::1')
    ticket(a, '192.0.2.7')
    ticket(a, '192.0.2.7')
    assert.equal(a.admit('192.0.2.7'), 'source-busy')
    assert.equal(a.admit('::ffff:192.0.2.7'), 'source-busy', 'an IPv4 client on an IPv6 socket is the same source')
    ticket(a, '127.0.0.1')
    assert.equal(a.admit('127.0.0.1'), 'busy')
  })

  it('charges input before login per connection and against the shared budget; login and close give it back', () => {
    const a = new Admission(limits)
    const t1 = ticket(a, 's1')
    assert.equal(t1.take(60), undefined)
    assert.equal(t1.take(41), 'too-much-input', '101 bytes from one connection')
    assert.equal(t1.take(40), undefined, 'a refused chunk was not charged')
    const t2 = ticket(a, 's2')
    const t3 = ticket(a, 's3')
    assert.equal(t2.take(100), undefined)
    assert.equal(t3.take(60), 'budget', '100 + 100 + 60 > 250 together')
    assert.equal(a.preAuthBytes, 200)
    t1.loggedIn()
    assert.equal(a.preAuthBytes, 100, 'a logged-in connection no longer counts')
    assert.equal(t1.take(1000), undefined, 'after login nothing is charged: it is spliced')
    assert.equal(t3.take(60), undefined)
    t2.release()
    t3.release()
    t1.release()
    assert.equal(a.preAuthBytes, 0)
    assert.equal(a.open, 0)
  })

  it('over the shared budget a connection may still send what a login needs (the allowance), and no more', () => {
    const a = new Admission({ ...limits, maxPreAuthBytes: 1000, preAuthBudgetBytes: 250, loginAllowanceBytes: 30 })
    const hog = ticket(a, 's1')
    assert.equal(hog.take(250), undefined)
    const late = ticket(a, 's2')
    assert.equal(late.take(20), undefined, 'the budget is spent, but a login of 20 bytes gets through')
    assert.equal(late.take(10), undefined, '30 in all: still within the allowance')
    assert.equal(late.take(1), 'budget', 'past the allowance the budget holds')
    assert.equal(hog.take(1), 'budget', 'the connection that spent the budget gets nothing more')
    assert.equal(a.preAuthBytes, 280, 'what the allowance let past the budget is bounded by connections x allowance')
  })

  it('a chunk costs at least MIN_CHUNK_COST: trickling one byte per packet cannot hold more than its charge', () => {
    assert.equal(chunkCost(1), MIN_CHUNK_COST)
    assert.equal(chunkCost(MIN_CHUNK_COST + 1), MIN_CHUNK_COST + 1)
    const a = new Admission({ ...limits, maxPreAuthBytes: 64 * 1024, preAuthBudgetBytes: 1 << 30 })
    const t = ticket(a, 's1')
    let chunks = 0
    while (t.take(chunkCost(1)) === undefined) chunks++
    assert.equal(chunks, (64 * 1024) / MIN_CHUNK_COST, 'one-byte chunks: 256 of them reach the 64 KiB cap')
  })

  it('default caps: 1000, lowered so that two descriptors per client and the reserve fit the fd limit', () => {
    assert.equal(defaultMaxConnections(undefined), DEFAULT_MAX_CONNECTIONS)
    assert.equal(defaultMaxConnections(1_048_576), DEFAULT_MAX_CONNECTIONS)
    assert.equal(defaultMaxConnections(1024), 462)
    assert.equal(defaultMaxConnections(20_000), 1000)
    assert.equal(defaultMaxConnections(50), 1)
    for (const n of [300, 1024, 2200]) assert.ok(descriptorsNeeded(defaultMaxConnections(n)) <= n, `fits ${n}`)
    assert.equal(descriptorsNeeded(10), 20 + FD_RESERVE)
    const r = resolveAdmission(undefined, 1024)
    assert.deepEqual(r.limits, {
      maxConnections: 462,
      maxConnectionsPerSource: 100,
      perSourceOnLoopback: false,
      maxPreAuthBytes: 65536,
      preAuthBudgetBytes: 16 * 1024 * 1024,
    })
    assert.equal(
      resolveAdmission({ maxConnectionsPerSource: 3 }, 1024).limits.perSourceOnLoopback,
      true,
      'a cap set by hand applies to local clients too',
    )
    assert.equal(r.warning, undefined)
    assert.equal(resolveAdmission(undefined, 300).limits.maxConnectionsPerSource, 100)
    assert.equal(resolveAdmission(undefined, 250).limits.maxConnectionsPerSource, 75, 'never above the total')
  })

  it('a cap set by hand is kept, with a warning when the fd limit cannot carry it', () => {
    const r = resolveAdmission({ maxConnections: 5000 }, 1024)
    assert.equal(r.limits.maxConnections, 5000)
    assert.match(
      r.warning ?? '',
      /max_connections = 5000 may need 10100 file descriptors, but this process may open 1024.*Lower max_connections to 462/,
    )
    assert.throws(() => resolveAdmission({ maxConnections: 0 }, 1024), /positive integer/)
    assert.throws(() => resolveAdmission({ maxPreAuthBytes: 1.5 }, 1024), /positive integer/)
  })

  it('refusals are logged once per 10 s per reason, with the count since the last line', () => {
    let now = 0
    const log = new RefusalLog(() => now)
    assert.equal(log.note('busy'), 1)
    for (let i = 0; i < 500; i++) assert.equal(log.note('busy'), undefined)
    assert.equal(log.note('source-busy'), 1, 'each reason on its own')
    now = 10_000
    assert.equal(log.note('busy'), 501)
    assert.equal(log.note('busy'), undefined)
  })

  it('refusal lines: IMAP BYE, POP3 -ERR, SMTP 421, "try later" codes only where the client did nothing wrong', () => {
    assert.equal(
      refusalLine('imap', 'busy', 'localhost'),
      '* BYE [UNAVAILABLE] Too many connections, try again later\r\n',
    )
    assert.equal(refusalLine('imap', 'too-much-input', 'localhost'), '* BYE Too much input before login\r\n')
    assert.equal(
      refusalLine('pop3', 'source-busy', 'localhost'),
      '-ERR [SYS/TEMP] Too many connections from your address, try again later\r\n',
    )
    assert.equal(refusalLine('pop3', 'idle', 'localhost'), '-ERR No command received in time\r\n')
    assert.equal(refusalLine('smtp', 'budget', 'mx.local'), '421 4.7.0 mx.local Server busy, try again later\r\n')
    assert.equal(refusalLine('smtp', 'idle', 'mx.local'), '421 4.4.2 mx.local No command received in time\r\n')
  })
})
