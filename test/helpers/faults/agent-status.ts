// The agent's view of a migration, through the independent raw JSON-RPC client.
import { rawCall, type RawError } from '../raw-rpc.js';

/** VM.migrateStatus as the suite reads it (`vmLocation` and `postcopy-paused` come with issue 8). */
export interface FaultStatus {
  migrationId: string;
  state: string;
  progress: number;
  iteration: number;
  dataTotal: number;
  dataProcessed: number;
  dataRemaining: number;
  throttlePercent: number;
  postcopy: boolean;
  actions: { action: { type: string }; applied: boolean }[];
  error: { code: number; name: string; message: string } | null;
  vmLocation?: string;
}

export type StatusRead = { ok: true; status: FaultStatus } | { ok: false; error: string; name?: string };

/** Terminal states: the migration is over. */
export const isEnded = (state: string): boolean => state === 'completed' || state === 'failed' || state === 'cancelled';

export async function readStatus(agentUrl: string, vm: string, timeoutMs = 10_000): Promise<StatusRead> {
  try {
    const r = await rawCall(agentUrl, 'VM.migrateStatus', { vmId: vm }, timeoutMs);
    if (r.error) return { ok: false, error: `${r.error.data?.name ?? r.error.code}: ${r.error.message}`, ...nameOf(r.error) };
    return { ok: true, status: r.result as FaultStatus };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

const nameOf = (e: RawError): { name?: string } => (typeof e.data?.name === 'string' ? { name: e.data.name } : {});

export async function agentServes(agentUrl: string): Promise<boolean> {
  try {
    const r = await rawCall(agentUrl, 'Host.ping', {}, 5_000);
    return !r.error && (r.result as { ok?: boolean }).ok === true;
  } catch {
    return false;
  }
}

/** Records each new status state while it runs (the agent may be down in between: those reads are skipped). */
export function watchStates(agentUrl: string, vm: string, everyMs = 400): { seen: string[]; last: () => StatusRead | null; stop: () => Promise<void> } {
  const seen: string[] = [];
  let last: StatusRead | null = null;
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await readStatus(agentUrl, vm, 3_000);
      last = r;
      if (r.ok && seen[seen.length - 1] !== r.status.state) seen.push(r.status.state);
      await new Promise((res) => setTimeout(res, everyMs));
    }
  })();
  return {
    seen,
    last: () => last,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
