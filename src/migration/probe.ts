// Asking a host's libvirt what became of a VM (effects; the decision is location.ts).
import { isNoDomain } from '../libvirt/errors.js';
import { openConnection } from '../libvirt/index.js';
import type { Domain } from '../libvirt/types.js';
import type { HostView } from './location.js';

function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** The VM as a domain handle sees it. */
export async function viewOf(domain: () => Promise<Domain>, timeoutMs = 5_000): Promise<HostView> {
  const ask = (async (): Promise<HostView> => {
    try {
      const { state, reason } = await (await domain()).getState();
      return { kind: 'present', state, reason };
    } catch (err) {
      return isNoDomain(err) ? { kind: 'absent' } : { kind: 'unreachable' };
    }
  })();
  return within(ask, timeoutMs, { kind: 'unreachable' });
}

/** The VM as another host's libvirt (e.g. the destination's, the URI the migration used) sees it. */
export async function viewOnHost(libvirtUri: string, vmUuid: string, timeoutMs = 5_000): Promise<HostView> {
  const ask = (async (): Promise<HostView> => {
    let conn;
    try {
      conn = await openConnection(libvirtUri);
    } catch {
      return { kind: 'unreachable' };
    }
    try {
      return await viewOf(() => conn.lookupByUuid(vmUuid), timeoutMs);
    } finally {
      void conn.close().catch(() => {});
    }
  })();
  return within(ask, timeoutMs, { kind: 'unreachable' });
}

/** What a migration asks of its destination host's libvirt, by the URI the migration used. */
export function destinationProbe(libvirtUri: string, vmUuid: string): { viewDestination: () => Promise<HostView> } {
  return { viewDestination: () => viewOnHost(libvirtUri, vmUuid) };
}
