// The lab's private PKI, made with Debian's openssl (never hand-written ASN.1): one CA, and
// certificates issued by it for the agents (server + client: their API and agent-to-agent calls),
// for the operator and readers (clients), and for libvirt/QEMU's migration stream.
// Roles come from the subject's OU (see src/daemon/auth/), so the OU is chosen per use.
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.js';

export interface KeyPair {
  cert: string;
  key: string;
}

/** What a TLS client or server needs: the CA bundle plus its own certificate and key (paths). */
export interface TlsMaterial extends KeyPair {
  ca: string;
}

export interface CertRequest {
  /** subject common name */
  cn: string;
  /** subject organisational unit: the role the agents grant (vmigrate-peer, vmigrate-manager, ...) */
  ou?: string;
  /** subjectAltName entries, e.g. ['IP:127.0.0.1', 'DNS:localhost'] */
  san?: string[];
  usage: ReadonlyArray<'serverAuth' | 'clientAuth'>;
}

const ORG = 'vmigrate lab';
const DAYS = '825';

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args, 60_000);
  if (r.code !== 0) throw new Error(`openssl ${args[0]} failed (${r.code}): ${r.stderr.trim()}`);
}

function subject(o: { cn: string; ou?: string }): string {
  // openssl -subj syntax; names here are ours (no '/' or '=' inside values).
  return `/O=${ORG}${o.ou ? `/OU=${o.ou}` : ''}/CN=${o.cn}`;
}

/** Creates the CA in `dir` (ca.pem, ca-key.pem) unless it exists; returns its paths. */
export async function ensureCa(dir: string): Promise<KeyPair> {
  const ca = { cert: join(dir, 'ca.pem'), key: join(dir, 'ca-key.pem') };
  if (existsSync(ca.cert) && existsSync(ca.key)) return ca;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await openssl([
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', DAYS,
    '-keyout', ca.key, '-out', ca.cert, '-subj', subject({ cn: 'vmigrate lab CA' }),
    // libvirt and QEMU (GnuTLS) insist on these on a CA certificate
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return ca;
}

/** Issues a certificate signed by `ca`, written to `out.cert` / `out.key` (key mode 0600). */
export async function issueCert(ca: KeyPair, out: KeyPair, req: CertRequest): Promise<KeyPair> {
  const csr = `${out.cert}.csr`;
  const ext = `${out.cert}.ext`;
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-keyout', out.key, '-out', csr, '-subj', subject(req)]);
  const lines = [
    'basicConstraints=critical,CA:FALSE',
    // GnuTLS (libvirt, QEMU) checks both bits on a leaf certificate
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${req.usage.join(',')}`,
    ...(req.san?.length ? [`subjectAltName=${req.san.join(',')}`] : []),
  ];
  await writeFile(ext, lines.join('\n') + '\n');
  try {
    await openssl([
      'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial',
      '-days', DAYS, '-sha256', '-extfile', ext, '-out', out.cert,
    ]);
  } finally {
    await rm(csr, { force: true });
    await rm(ext, { force: true });
  }
  return out;
}

/** Issues `out` only when it is missing, so a lab that comes up again keeps its identities. */
export async function ensureCert(ca: KeyPair, out: KeyPair, req: CertRequest): Promise<KeyPair> {
  if (existsSync(out.cert) && existsSync(out.key)) return out;
  return issueCert(ca, out, req);
}
