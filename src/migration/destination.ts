// Source side of the handshake: reach the destination agent and have it admit the migration
// before libvirt copies anything. A destination given only as a libvirt URI skips the handshake.
import { AgentError } from '../api/errors.js';
import type { Destination } from '../api/params.js';
import type { AdmissionRequest } from '../api/admission.js';
import { AgentClient, RpcError } from '../client/client.js';

export interface ResolvedDestination {
  /** what status shows */
  display: string;
  dconnuri: string;
  migrationUri?: string;
  /** call when the migration has ended, to free the destination's slot */
  release(): Promise<void>;
}

const CONNECT_TIMEOUT_MS = 5000;

export async function resolveDestination(dst: Destination, request: AdmissionRequest): Promise<ResolvedDestination> {
  const agentUrl = typeof dst === 'string' ? dst : dst.agent;
  if (agentUrl === undefined) {
    if (typeof dst === 'string') throw new Error('unreachable');
    const resolved: ResolvedDestination = { display: dst.libvirtUri, dconnuri: dst.libvirtUri, release: async () => {} };
    if (dst.migrationUri !== undefined) resolved.migrationUri = dst.migrationUri;
    return resolved;
  }
  let client: AgentClient;
  try {
    client = await AgentClient.connect(agentUrl, { timeoutMs: CONNECT_TIMEOUT_MS, callTimeoutMs: 15_000 });
  } catch (err) {
    throw new AgentError('DESTINATION_UNREACHABLE', `destination agent ${agentUrl} is unreachable: ${(err as Error).message}`, { destination: agentUrl });
  }
  try {
    const admission = await client.migrationCreate(request);
    const resolved: ResolvedDestination = {
      display: `${admission.name} (${agentUrl})`,
      dconnuri: typeof dst === 'string' ? admission.libvirtUri : dst.libvirtUri,
      release: async () => {
        await client.migrationEnd({ admissionId: admission.admissionId }).catch(() => {});
        await client.close();
      },
    };
    const migrationUri = typeof dst === 'string' ? admission.migrationUri : (dst.migrationUri ?? admission.migrationUri);
    if (migrationUri !== undefined) resolved.migrationUri = migrationUri;
    return resolved;
  } catch (err) {
    await client.close();
    if (err instanceof RpcError) {
      const name = err.errorName === 'TOO_MANY_MIGRATIONS' || err.errorName === 'SAME_HOST' ? err.errorName : 'DESTINATION_REFUSED';
      throw new AgentError(name, `destination ${agentUrl} refused the migration: ${err.message}`, { destination: agentUrl, cause: err.errorName });
    }
    throw new AgentError('DESTINATION_UNREACHABLE', `destination agent ${agentUrl} did not answer: ${(err as Error).message}`, { destination: agentUrl });
  }
}
