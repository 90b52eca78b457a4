// The evacuations of this host as the agent keeps them: the one running (at most one), and the last
// ended ones for their status, some of them read back from a previous agent process's records.
import { EventEmitter } from 'node:events';
import { AgentError } from '../api/errors.js';
import type { EvacuationStatus } from '../api/evacuation.js';
import { Evacuation, type EvacuationHooks, type EvacuationOptions, type EvacuationPorts } from './runner.js';

/** An evacuation as the registry keeps it: a running one, or one a predecessor ended (read from its record). */
export interface KeptEvacuation {
  readonly active: boolean;
  snapshot(): EvacuationStatus;
  cancel(abortRunning: boolean): Promise<void>;
  halt?(): void;
}

class EndedEvacuation implements KeptEvacuation {
  readonly active = false;
  constructor(private readonly status: EvacuationStatus) {}
  snapshot(): EvacuationStatus {
    return structuredClone(this.status);
  }
  async cancel(): Promise<void> {
    throw new AgentError('NOT_CANCELLABLE', `evacuation ${this.status.evacuationId} already ended (${this.status.state})`);
  }
}

/** How many ended evacuations are kept for their status (in memory and, with a state directory, on disk). */
export const KEPT_EVACUATIONS = 20;

/** The evacuations of this host: one running at a time, the last few kept for their status.
 *  `forget`: called for each one dropped (its record goes too). */
export class EvacuationRegistry extends EventEmitter<{ change: [EvacuationStatus] }> {
  private readonly all = new Map<string, KeptEvacuation>();

  constructor(private readonly forget: (evacuationId: string) => void = () => {}) {
    super();
  }

  start(opts: EvacuationOptions, ports: EvacuationPorts, hooks: EvacuationHooks = {}): Evacuation {
    const running = [...this.all.entries()].find(([, e]) => e.active);
    if (running) throw new AgentError('EVACUATION_IN_PROGRESS', `evacuation ${running[0]} of this host is still running`, { evacuationId: running[0] });
    const e = new Evacuation(opts, ports, hooks);
    e.on('change', (s) => this.emit('change', s));
    this.keep(opts.evacuationId, e);
    return e;
  }

  /** An evacuation that ended under a previous agent process, kept for its status. */
  restore(status: EvacuationStatus): void {
    this.keep(status.evacuationId, new EndedEvacuation(status));
  }

  get(evacuationId: string): KeptEvacuation {
    const e = this.all.get(evacuationId);
    if (!e) throw new AgentError('NO_EVACUATION', `no evacuation ${evacuationId} on this host`, { evacuationId });
    return e;
  }

  /** The agent stops: running evacuations stop where they are, recorded for the next agent. */
  halt(): void {
    for (const e of this.all.values()) e.halt?.();
  }

  private keep(evacuationId: string, e: KeptEvacuation): void {
    this.all.set(evacuationId, e);
    for (const [id, old] of this.all) {
      if (this.all.size <= KEPT_EVACUATIONS) break;
      if (old.active) continue;
      this.all.delete(id);
      this.forget(id);
    }
  }
}
