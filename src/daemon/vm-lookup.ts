import { AgentError } from '../api/errors.js';
import { isNoDomain, libvirtCode } from '../libvirt/errors.js';
import type { Connection, Domain } from '../libvirt/types.js';
import type { LibvirtLink } from './libvirt-link.js';

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** Wrap a libvirt failure in the agent's error, keeping libvirt's code for the client. */
export function libvirtFailure(err: unknown, what: string): AgentError {
  const message = err instanceof Error ? err.message : String(err);
  return new AgentError('LIBVIRT_ERROR', `${what}: ${message}`, { libvirtCode: libvirtCode(err) });
}

/** The agent's libvirt connection, or LIBVIRT_ERROR naming the failure. */
export function libvirtConnection(link: LibvirtLink): Promise<Connection> {
  return link.get().catch((e: unknown) => Promise.reject(libvirtFailure(e, 'connecting to libvirt')));
}

/** Find a domain by UUID or name; VM_NOT_FOUND when libvirt has none. */
export async function findDomain(conn: Connection, vmId: string): Promise<Domain> {
  try {
    return UUID_RE.test(vmId) ? await conn.lookupByUuid(vmId) : await conn.lookupByName(vmId);
  } catch (err) {
    if (isNoDomain(err)) {
      throw new AgentError('VM_NOT_FOUND', `no VM named or with UUID "${vmId}" on this host`, { vmId });
    }
    throw libvirtFailure(err, `looking up VM "${vmId}"`);
  }
}
