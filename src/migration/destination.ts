// Source side of the handshake: reach the destination agent and have it admit the migration
// before libvirt copies anything. A destination given only as a libvirt URI skips the handshake.
// Nothing the destination sends is trusted: its certificate must be a peer's, its answer must have
// the admission's shape, and the URIs it returns must pass the same allow-list as a client's.
import type { PeerCertificate } from 'node:tls';
import { AgentError } from '../api/errors.js';
import type { Destination } from '../api/params.js';
import type { AdmissionRequest } from '../api/admission.js';
import { AdmissionResultSchema, CapabilitiesSchema } from '../api/result-schemas.js';
import type { Capabilities } from '../api/results.js';
import { AgentClient, RpcError } from '../client/client.js';
import type { TlsPem } from '../client/tls.js';

export interface ResolvedDestination {
  /** what status shows */
  display: string;
  dconnuri: string;
  migrationUri?: string;
  /** call when the migration has ended, to free the destination's slot */
  release(): Promise<void>;
}

/** How this agent talks to destinations and which URIs it accepts (effects stay with the caller). */
export interface DestinationRules {
  /** own TLS material; null when TLS is off (then only ws:// agents can be reached) */
  tls: TlsPem | null;
  /** is this certificate a peer agent's? An Error says why not */
  checkPeer(cert: PeerCertificate): Error | undefined;
  /** throws naming the part of a libvirt URI that is not allowed */
  checkLibvirtUri(uri: string): void;
  /** throws naming what is wrong with a QEMU migration URI */
  checkMigrationUri(uri: string): void;
}

const CONNECT_TIMEOUT_MS = 5000;
/** A destination that accepts the connection but never answers fails the migration this soon. */
const CALL_TIMEOUT_MS = 15_000;
/** An admission answer is a few hundred bytes; anything much larger is hostile. */
const MAX_ANSWER_BYTES = 64 << 10;

function invalidParam(field: string, err: unknown): AgentError {
  const message = err instanceof Error ? err.message : String(err);
  return new AgentError('INVALID_PARAMS', `VM.migrate: invalid params: ${field}: ${message}`, { issues: [{ path: field.split('.'), message }] });
}

/** Checks the URIs a client gave, before anything is contacted. */
export function checkClientDestination(dst: Destination, rules: DestinationRules): void {
  if (typeof dst === 'string') {
    if (dst.startsWith('ws://') && rules.tls) throw invalidParam('dst', new Error(`${dst}: this agent uses TLS, so destination agents must be wss:// URLs`));
    return;
  }
  if (dst.agent?.startsWith('ws://') && rules.tls) throw invalidParam('dst.agent', new Error(`${dst.agent}: this agent uses TLS, so destination agents must be wss:// URLs`));
  try {
    rules.checkLibvirtUri(dst.libvirtUri);
  } catch (err) {
    throw invalidParam('dst.libvirtUri', err);
  }
  if (dst.migrationUri !== undefined) {
    try {
      rules.checkMigrationUri(dst.migrationUri);
    } catch (err) {
      throw invalidParam('dst.migrationUri', err);
    }
  }
}

/** A connection to another agent, its certificate checked as a peer's. */
async function connectPeer(agentUrl: string, rules: DestinationRules): Promise<AgentClient> {
  try {
    return await AgentClient.connect(agentUrl, {
      timeoutMs: CONNECT_TIMEOUT_MS,
      callTimeoutMs: CALL_TIMEOUT_MS,
      maxPayload: MAX_ANSWER_BYTES,
      ...(rules.tls ? { tls: rules.tls, checkServer: (cert: PeerCertificate) => rules.checkPeer(cert) } : {}),
    });
  } catch (err) {
    throw new AgentError('DESTINATION_UNREACHABLE', `destination agent ${agentUrl} is unreachable: ${(err as Error).message}`, { destination: agentUrl });
  }
}

/** How a destination is named in statuses: the agent URL, else the libvirt URI. */
export const destinationKey = (d: Destination): string => (typeof d === 'string' ? d : (d.agent ?? d.libvirtUri));

export async function resolveDestination(dst: Destination, request: AdmissionRequest, rules: DestinationRules): Promise<ResolvedDestination> {
  checkClientDestination(dst, rules);
  const agentUrl = typeof dst === 'string' ? dst : dst.agent;
  if (agentUrl === undefined) {
    if (typeof dst === 'string') throw new Error('unreachable');
    const resolved: ResolvedDestination = { display: dst.libvirtUri, dconnuri: dst.libvirtUri, release: async () => {} };
    if (dst.migrationUri !== undefined) resolved.migrationUri = dst.migrationUri;
    return resolved;
  }
  const client = await connectPeer(agentUrl, rules);
  try {
    const answer = await client.migrationCreate(request);
    const parsed = AdmissionResultSchema.safeParse(answer);
    if (!parsed.success) {
      // it may have admitted us all the same: closing the connection frees its slot
      throw new AgentError('DESTINATION_REFUSED', `destination agent ${agentUrl} answered VM.migrationCreate with something that is not an admission`, { destination: agentUrl });
    }
    const admission = parsed.data;
    const dconnuri = typeof dst === 'string' ? admission.libvirtUri : dst.libvirtUri;
    const migrationUri = typeof dst === 'string' ? admission.migrationUri : (dst.migrationUri ?? admission.migrationUri);
    try {
      rules.checkLibvirtUri(dconnuri);
      if (migrationUri !== undefined) rules.checkMigrationUri(migrationUri);
    } catch (err) {
      throw new AgentError('DESTINATION_REFUSED', `destination agent ${agentUrl} returned a URI this agent does not allow: ${(err as Error).message}`, { destination: agentUrl });
    }
    const resolved: ResolvedDestination = {
      display: `${admission.name} (${agentUrl})`,
      dconnuri,
      release: async () => {
        await client.migrationEnd({ admissionId: admission.admissionId }).catch(() => {});
        await client.close();
      },
    };
    if (migrationUri !== undefined) resolved.migrationUri = migrationUri;
    return resolved;
  } catch (err) {
    await client.close();
    if (err instanceof AgentError) throw err;
    if (err instanceof RpcError) {
      const name = err.errorName === 'TOO_MANY_MIGRATIONS' || err.errorName === 'SAME_HOST' ? err.errorName : 'DESTINATION_REFUSED';
      throw new AgentError(name, `destination ${agentUrl} refused the migration: ${err.message.slice(0, 500)}`, { destination: agentUrl, cause: err.errorName });
    }
    throw new AgentError('DESTINATION_UNREACHABLE', `destination agent ${agentUrl} did not answer: ${(err as Error).message}`, { destination: agentUrl });
  }
}

/** Asks a destination agent what it can take (Host.getCapabilities, allowed to peers). */
export async function destinationCapabilities(agentUrl: string, rules: DestinationRules): Promise<Capabilities> {
  const client = await connectPeer(agentUrl, rules);
  try {
    const parsed = CapabilitiesSchema.safeParse(await client.call('Host.getCapabilities'));
    if (!parsed.success) throw new AgentError('DESTINATION_REFUSED', `destination agent ${agentUrl} answered Host.getCapabilities without its capacity`, { destination: agentUrl });
    return parsed.data;
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw new AgentError(err instanceof RpcError ? 'DESTINATION_REFUSED' : 'DESTINATION_UNREACHABLE', `destination agent ${agentUrl}: ${(err as Error).message.slice(0, 500)}`, { destination: agentUrl });
  } finally {
    await client.close();
  }
}
