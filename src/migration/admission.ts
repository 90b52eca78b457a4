// Destination side: admits incoming migrations up to a limit. An admission ends when the source
// says so, or expires, so a source that died cannot hold a slot for ever.
import { randomUUID } from 'node:crypto';
import { AgentError } from '../api/errors.js';
import type { AdmissionRequest, AdmissionResult } from '../api/admission.js';

export interface LocalHost {
  name: string;
  hostUuid: string;
  libvirtUri: string;
  migrationUri?: string;
}

interface Admission {
  id: string;
  vmUuid: string;
  expiresAt: number;
}

export class AdmissionDesk {
  private readonly admitted = new Map<string, Admission>();

  constructor(
    private readonly maxIncoming: number,
    private readonly ttlMs = 6 * 3600_000,
  ) {}

  /** the most incoming migrations admitted at once */
  get limit(): number {
    return this.maxIncoming;
  }

  get incoming(): number {
    this.expire();
    return this.admitted.size;
  }

  /** runningHere: whether a domain with this UUID already runs on this host */
  admit(req: AdmissionRequest, local: LocalHost, runningHere: boolean): AdmissionResult {
    this.expire();
    if (req.sourceHostUuid === local.hostUuid) {
      throw new AgentError('SAME_HOST', `destination ${local.name} is the source host itself (host UUID ${local.hostUuid})`);
    }
    if (runningHere) {
      throw new AgentError('DESTINATION_REFUSED', `VM ${req.vmName} (${req.vmUuid}) is already running on ${local.name}`);
    }
    for (const a of this.admitted.values()) {
      if (a.vmUuid === req.vmUuid) {
        throw new AgentError('DESTINATION_REFUSED', `VM ${req.vmName} is already being migrated to ${local.name}`);
      }
    }
    if (this.admitted.size >= this.maxIncoming) {
      throw new AgentError('TOO_MANY_MIGRATIONS', `${local.name} already takes ${this.admitted.size} incoming migrations (limit ${this.maxIncoming})`, { limit: this.maxIncoming, direction: 'incoming' });
    }
    const id = randomUUID();
    this.admitted.set(id, { id, vmUuid: req.vmUuid, expiresAt: Date.now() + this.ttlMs });
    const result: AdmissionResult = { admissionId: id, libvirtUri: local.libvirtUri, hostUuid: local.hostUuid, name: local.name };
    if (local.migrationUri !== undefined) result.migrationUri = local.migrationUri;
    return result;
  }

  end(admissionId: string): void {
    this.admitted.delete(admissionId);
  }

  private expire(): void {
    const now = Date.now();
    for (const [id, a] of this.admitted) if (a.expiresAt <= now) this.admitted.delete(id);
  }
}
