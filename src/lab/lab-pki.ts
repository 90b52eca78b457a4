// The lab's certificates, under <lab>/pki: the CA, one agent certificate per host (its API's server
// certificate and its client certificate towards other agents: role peer), and the operator's
// (manager) and a reader's client certificates. Kept across `lab up`s like the hosts' identities.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultRoleOu } from '../api/roles.js';
import { ensureCa, ensureCert, type KeyPair, type TlsMaterial } from '../common/pki.js';

export const pkiDir = (labDir: string): string => join(labDir, 'pki');

const pair = (dir: string, name: string): KeyPair => ({ cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) });

/** The agent of lab host `host`: server for its API on 127.0.0.1, client towards its peers. */
export async function labAgentTls(labDir: string, host: string): Promise<TlsMaterial> {
  const dir = pkiDir(labDir);
  const ca = await ensureCa(dir);
  const own = await ensureCert(ca, pair(dir, `agent-${host}`), {
    cn: host,
    ou: defaultRoleOu('peer'),
    san: ['IP:127.0.0.1', 'DNS:localhost', `DNS:${host}`],
    usage: ['serverAuth', 'clientAuth'],
  });
  return { ca: ca.cert, ...own };
}

const clientName = (role: 'manager' | 'reader'): string => (role === 'manager' ? 'operator' : 'reader');

/** Where the client certificate of `role` is (whether or not it has been made yet). */
export function labClientTlsPaths(labDir: string, role: 'manager' | 'reader'): TlsMaterial {
  const dir = pkiDir(labDir);
  return { ca: join(dir, 'ca.pem'), ...pair(dir, clientName(role)) };
}

/** A client certificate with role `manager` (operator) or `reader`, made when missing. */
export async function labClientTls(labDir: string, role: 'manager' | 'reader'): Promise<TlsMaterial> {
  const dir = pkiDir(labDir);
  const ca = await ensureCa(dir);
  const name = clientName(role);
  const own = await ensureCert(ca, pair(dir, name), { cn: name, ou: defaultRoleOu(role), usage: ['clientAuth'] });
  return { ca: ca.cert, ...own };
}

// --- libvirt/QEMU migration TLS (qemu.conf migrate_tls_x509_cert_dir), one directory per host ---

/** The directory qemu.conf's migrate_tls_x509_cert_dir names for lab host `host`. */
export const migrationTlsDir = (labDir: string, host: string): string => join(pkiDir(labDir), `migration-${host}`);

/**
 * Lab host `host`'s migration TLS directory, with the file names libvirt hands to QEMU's
 * tls-creds-x509 (ca-cert.pem, server-*.pem as destination, client-*.pem as source). QEMU checks
 * the destination's certificate against the host of the migration URI, here the host's migration
 * address (an IP), so that is a SAN. Reissued when the lab's CA is not the one that signed it.
 */
export async function labMigrationTls(labDir: string, host: { name: string; migrationAddress: string }): Promise<string> {
  const ca = await ensureCa(pkiDir(labDir));
  const dir = migrationTlsDir(labDir, host.name);
  const caCopy = join(dir, 'ca-cert.pem');
  if (existsSync(caCopy) && (await readFile(caCopy, 'utf8')) !== (await readFile(ca.cert, 'utf8'))) {
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await copyFile(ca.cert, caCopy);
  const cn = `${host.name} migration`;
  await ensureCert(ca, { cert: join(dir, 'server-cert.pem'), key: join(dir, 'server-key.pem') }, {
    cn,
    san: [`IP:${host.migrationAddress}`, `DNS:${host.name}`],
    usage: ['serverAuth'],
  });
  await ensureCert(ca, { cert: join(dir, 'client-cert.pem'), key: join(dir, 'client-key.pem') }, { cn, usage: ['clientAuth'] });
  return dir;
}
