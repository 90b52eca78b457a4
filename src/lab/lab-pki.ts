// The lab's certificates, under <lab>/pki: the CA, one agent certificate per host (its API's server
// certificate and its client certificate towards other agents: role peer), and the operator's
// (manager) and a reader's client certificates. Kept across `lab up`s like the hosts' identities.
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

/** A client certificate with role `manager` (operator) or `reader`. */
export async function labClientTls(labDir: string, role: 'manager' | 'reader'): Promise<TlsMaterial> {
  const dir = pkiDir(labDir);
  const ca = await ensureCa(dir);
  const name = role === 'manager' ? 'operator' : 'reader';
  const own = await ensureCert(ca, pair(dir, name), { cn: name, ou: defaultRoleOu(role), usage: ['clientAuth'] });
  return { ca: ca.cert, ...own };
}
