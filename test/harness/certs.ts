// A throw-away test CA and one server certificate for localhost / 127.0.0.1 / ::1, made with the
// openssl CLI in a directory the caller owns (and removes). Nothing here is trusted system-wide:
// clients get the CA explicitly (`ca: caPem`, `--cacert`, `cafile=`).
import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface TestCA {
  /** PEM file of the CA certificate (give it to clients). */
  caFile: string
  /** PEM file of the server certificate (SAN: DNS:localhost, IP:127.0.0.1, IP:::1). */
  certFile: string
  /** PEM file of the server's private key (unencrypted, 0600). */
  keyFile: string
  /** The CA certificate itself. */
  caPem: string
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd, timeout: 15_000 })
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`)
  }
}

/** Makes `ca.pem`, `server.pem` and `server.key` (P-256 keys, 2 days) in `dir`. */
export async function makeTestCA(dir: string): Promise<TestCA> {
  const caFile = join(dir, 'ca.pem')
  const caKey = join(dir, 'ca.key')
  const certFile = join(dir, 'server.pem')
  const keyFile = join(dir, 'server.key')
  const csr = join(dir, 'server.csr')
  const ext = join(dir, 'server.ext')
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

  await openssl(
    [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      caKey,
      '-out',
      caFile,
      '-days',
      '2',
      '-subj',
      '/CN=mailkey test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  )
  await openssl(['req', '-new', ...ec, '-keyout', keyFile, '-out', csr, '-subj', '/CN=localhost'], dir)
  await writeFile(
    ext,
    [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1',
      '',
    ].join('\n'),
  )
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      caFile,
      '-CAkey',
      caKey,
      '-set_serial',
      `0x${Date.now().toString(16)}`,
      '-days',
      '2',
      '-sha256',
      '-extfile',
      ext,
      '-out',
      certFile,
    ],
    dir,
  )
  return { caFile, certFile, keyFile, caPem: await readFile(caFile, 'utf8') }
}
