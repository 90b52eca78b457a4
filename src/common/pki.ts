// A small private PKI made with Debian's openssl (never hand-written ASN.1): one CA, and
// certificates issued by it for agents (server + client: their API and agent-to-agent calls),
// managers and readers (clients), and libvirt/QEMU's migration stream. The agents take a caller's
// role from its subject's OU (src/api/roles.ts), so the OU is chosen per use.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

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
  /** subject O (default DEFAULT_ORG) */
  org?: string;
}

/** The subject's O of everything issued here, unless the caller names another. */
export const DEFAULT_ORG = 'vmigrate lab';
const DAYS = '825';

const execFileP = promisify(execFile);

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileP('openssl', args, { timeout: 60_000 });
  } catch (err) {
    const e = err as { code?: unknown; stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed (${String(e.code)}): ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Names go into openssl's -subj syntax, where '/', '=', ',' and '+' would change its meaning. */
function subject(o: { cn: string; ou?: string; org?: string }): string {
  for (const v of [o.cn, o.ou, o.org]) {
    if (v !== undefined && !/^[A-Za-z0-9 ._@-]+$/.test(v)) throw new Error(`certificate name "${v}": use letters, digits, space and . _ @ - only`);
  }
  return `/O=${o.org ?? DEFAULT_ORG}${o.ou ? `/OU=${o.ou}` : ''}/CN=${o.cn}`;
}

/** Creates the CA in `dir` (ca.pem, ca-key.pem) unless it exists; returns its paths. */
export async function ensureCa(dir: string, org?: string): Promise<KeyPair> {
  const ca = { cert: join(dir, 'ca.pem'), key: join(dir, 'ca-key.pem') };
  if (existsSync(ca.cert) && existsSync(ca.key)) return ca;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await openssl([
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', DAYS,
    '-keyout', ca.key, '-out', ca.cert, '-subj', subject({ cn: `${org ?? DEFAULT_ORG} CA`, ...(org ? { org } : {}) }),
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
