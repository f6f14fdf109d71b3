/**
 * A self-signed certificate for the proxy's TLS towards local clients, for people who have no
 * certificate of their own: an ECDSA P-256 key made by node:crypto and an X.509 v3 certificate
 * (RFC 5280) written out in DER here, since Node can parse certificates but not issue them. The
 * names (subjectAltName) are localhost, 127.0.0.1, ::1, this machine's host name and any address
 * the proxy is told to listen on; clients pin the certificate (its file or its SHA-256
 * fingerprint, both printed). Why not a library: docs/adr/0006-proxy-certificate-and-hot-path.md.
 *
 * Owns: the key and certificate files in the state directory. Must not: log the key.
 */
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto'
import { isIP } from 'node:net'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { readStateFile, writeFileAtomic } from '../store/atomic-file.js'

/** how long a generated certificate is valid (a new one is made before it ends) */
export const VALIDITY_DAYS = 397
/** renew when fewer than this many days are left */
const RENEW_DAYS = 30

export interface ProxyCertificate {
  cert: string
  key: string
  certFile: string
  /** SHA-256 fingerprint, AA:BB:... (what clients that pin a certificate ask for) */
  fingerprint256: string
  /** DNS names and IP addresses it is valid for */
  names: string[]
  /** true when this call made a new one */
  created: boolean
}

/** The names a certificate must hold: loopback, this host, and the addresses listened on. */
export function certificateNames(listenHosts: string[] = []): string[] {
  const names = new Set(['localhost', '127.0.0.1', '::1'])
  const h = hostname()
  if (h && /^[A-Za-z0-9.-]+$/.test(h)) names.add(h.toLowerCase())
  for (const host of listenHosts) {
    // A wildcard listen address has no name of its own; clients use one of the others.
    if (host === '0.0.0.0' || host === '::' || host === '') continue
    names.add(isIP(host) ? host : host.toLowerCase())
  }
  return [...names]
}

/**
 * The proxy's certificate in `stateDir`: the existing one when it is readable, ours, valid for 30
 * more days and for every name in `names`; otherwise a new one (key 0600, written atomically).
 */
export async function ensureProxyCertificate(
  stateDir: string,
  names: string[],
  now: Date = new Date(),
): Promise<ProxyCertificate> {
  const certFile = join(stateDir, 'proxy-tls.pem')
  const keyFile = join(stateDir, 'proxy-tls.key')
  const existing = readExisting(certFile, keyFile)
  if (existing) {
    const x = new X509Certificate(existing.cert)
    const has = new Set(sanNames(x))
    const fresh = new Date(x.validTo).getTime() - now.getTime() > RENEW_DAYS * 86_400_000
    if (fresh && names.every((n) => has.has(n)) && x.checkPrivateKey(createPrivateKey(existing.key))) {
      return { ...existing, certFile, fingerprint256: x.fingerprint256, names: [...has], created: false }
    }
  }
  const made = makeSelfSigned(names, now)
  // The key first: a certificate on disk always has its key next to it.
  await writeFileAtomic(keyFile, made.key)
  await writeFileAtomic(certFile, made.cert)
  return { ...made, certFile, fingerprint256: new X509Certificate(made.cert).fingerprint256, names, created: true }
}

function readExisting(certFile: string, keyFile: string): { cert: string; key: string } | undefined {
  try {
    const cert = readStateFile(certFile)
    const key = readStateFile(keyFile)
    // Missing, not ours or not private: make a new pair rather than trust it.
    if (!cert || !key || cert.needsModeCheck || key.needsModeCheck) return undefined
    return { cert: cert.text, key: key.text }
  } catch {
    // a symlink, a FIFO, unreadable: the same
    return undefined
  }
}

function sanNames(x: X509Certificate): string[] {
  // "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"
  return (x.subjectAltName ?? '').split(', ').map((e) => {
    const [kind, value = ''] = e.split(/:(.*)/s)
    if (kind === 'IP Address') return value.includes(':') ? normaliseV6(value) : value
    return value.toLowerCase()
  })
}

function normaliseV6(v: string): string {
  const b = ipBytes(v)
  return b ? compressV6(b) : v
}

/** A new key pair and a self-signed certificate for `names` (RFC 5280 §4.1). */
export function makeSelfSigned(names: string[], now: Date = new Date()): { cert: string; key: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2')) // RFC 5758 §3.2: no parameters
  const name = seq(set(seq(oid('2.5.4.3'), utf8('mailkey proxy')))) // CN
  const serial = randomBytes(16)
  serial[0] = (serial[0] as number) & 0x7f // RFC 5280 §4.1.2.2: positive, at most 20 octets
  const notBefore = new Date(now.getTime() - 60 * 60_000) // an hour of clock skew
  const notAfter = new Date(now.getTime() + VALIDITY_DAYS * 86_400_000)
  const san = seq(
    ...names.map((n) => {
      const ip = ipBytes(n)
      return ip ? tlv(0x87, ip) : tlv(0x82, Buffer.from(n, 'ascii')) // [7] iPAddress, [2] dNSName
    }),
  )
  const extensions = seq(
    ext('2.5.29.19', true, seq()), // basicConstraints: not a CA
    ext('2.5.29.15', true, tlv(0x03, Buffer.from([0x07, 0x80]))), // keyUsage: digitalSignature
    ext('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))), // extKeyUsage: serverAuth
    ext('2.5.29.17', false, san), // subjectAltName
  )
  const tbs = seq(
    tlv(0xa0, int(Buffer.from([2]))), // [0] version v3
    int(serial),
    ECDSA_SHA256,
    name,
    seq(time(notBefore), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, extensions), // [3] extensions
  )
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' })
  const der = seq(tbs, ECDSA_SHA256, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])))
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n')
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  }
}

// ------------------------------------------------------------------------------------- DER (X.690)

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  const n = body.length
  let len: Buffer
  if (n < 0x80) len = Buffer.from([n])
  else {
    const bytes: number[] = []
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
    len = Buffer.from([0x80 | bytes.length, ...bytes])
  }
  return Buffer.concat([Buffer.from([tag]), len, body])
}
const seq = (...c: Buffer[]): Buffer => tlv(0x30, ...c)
const set = (...c: Buffer[]): Buffer => tlv(0x31, ...c)
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'))

/** A non-negative INTEGER from big-endian bytes (X.690 §8.3: minimal, a 0 before a high bit). */
function int(bytes: Buffer): Buffer {
  let i = 0
  while (i < bytes.length - 1 && bytes[i] === 0 && ((bytes[i + 1] as number) & 0x80) === 0) i++
  const b = bytes.subarray(i)
  return tlv(0x02, ((b[0] as number) & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), b]) : b)
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number)
  const out = [40 * (parts[0] as number) + (parts[1] as number)]
  for (const p of parts.slice(2)) {
    const chunk = [p & 0x7f]
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f))
    out.push(...chunk)
  }
  return tlv(0x06, Buffer.from(out))
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always UTC, with seconds. */
function time(d: Date): Buffer {
  const iso = d.toISOString() // 2026-11-22T17:40:00.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z' // 20261122174000Z
  return d.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii'))
    : tlv(0x18, Buffer.from(digits, 'ascii'))
}

function ext(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [Buffer.from([0x01, 0x01, 0xff])] : []), tlv(0x04, value))
}

/** 4 or 16 bytes for an IP literal, undefined for a name. */
function ipBytes(s: string): Buffer | undefined {
  const v = isIP(s)
  if (v === 4) return Buffer.from(s.split('.').map(Number))
  if (v !== 6) return undefined
  const [head = '', tail] = s.split('::')
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  // an embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups
  const expand = (groups: string[]): number[] =>
    groups.flatMap((g) => {
      if (g.includes('.')) {
        const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number]
        return [(a << 8) | b, (c << 8) | d]
      }
      return [parseInt(g, 16)]
    })
  const hh = expand(h)
  const tt = expand(t)
  const groups = tail === undefined ? hh : [...hh, ...Array(8 - hh.length - tt.length).fill(0), ...tt]
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2))
  return out
}

function compressV6(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16))
  // the longest run of zero groups becomes "::" (RFC 5952 §4.2)
  let best = [-1, 0]
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > (best[1] as number) && j - i > 1) best = [i, j - i]
    i = j
  }
  const [at, n] = best as [number, number]
  if (at < 0) return groups.join(':')
  return `${groups.slice(0, at).join(':')}::${groups.slice(at + n).join(':')}`
}
