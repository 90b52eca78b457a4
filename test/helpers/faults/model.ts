// The fault suite's table (pure): faults, phases, and what each case must end in, from issue 8's text.

export const FAULTS = [
  'kill-src-agent',
  'kill-dst-agent',
  'kill-src-libvirtd',
  'kill-dst-libvirtd',
  'kill-dst-qemu',
  'cut-5s',
  'cut-120s',
  'full-statedir',
  'second-agent',
] as const;
export type FaultName = (typeof FAULTS)[number];

export const PHASES = ['first-pass', 'throttling', 'near-switchover', 'post-copy'] as const;
export type PhaseName = (typeof PHASES)[number];

/** Where the VM must be when the case is over. */
export type EndPlace = 'destination' | 'source' | 'lost';

export interface Expectation {
  /** destination: the migration completes (or its post-copy is recovered); source: it fails and the VM
   *  runs on the source; lost: the guest's only up-to-date state died with the destination QEMU in
   *  post-copy, and the agent says so (paused on the source, never resumed there) */
  end: EndPlace;
  /** the final VM.migrateStatus state */
  state: 'completed' | 'failed';
  /** vmLocation the final status must report */
  vmLocation: 'destination' | 'source' | 'paused-source';
  /** the status must have said `postcopy-paused` while the link was down */
  postcopyPaused: boolean;
  /** the words this expectation comes from */
  why: string;
}

const completes = (why: string): Expectation => ({ end: 'destination', state: 'completed', vmLocation: 'destination', postcopyPaused: false, why });
const staysOnSource = (why: string): Expectation => ({ end: 'source', state: 'failed', vmLocation: 'source', postcopyPaused: false, why });

/** What a case must end in. */
export function expectationFor(fault: FaultName, phase: PhaseName): Expectation {
  const postcopy = phase === 'post-copy';
  switch (fault) {
    case 'kill-src-agent':
      return completes(postcopy
        ? 'post-copy cannot be aborted; the restarted agent reports it to its end'
        : 'a restarted agent adopts the pre-copy migrations its predecessor recorded, and they go on to complete');
    case 'kill-dst-agent':
      return completes('the stream is QEMU to QEMU and the source agent drives it: the destination agent is not needed to finish');
    case 'kill-src-libvirtd':
    case 'kill-dst-libvirtd':
      return postcopy
        ? completes('post-copy: report postcopy-paused and recover it when the link returns (VIR_MIGRATE_POSTCOPY_RESUME)')
        : staysOnSource('libvirt cancels a pre-copy migration whose peer or controlling daemon went away; the VM keeps running on the source, parameters restored');
    case 'kill-dst-qemu':
      return postcopy
        ? { end: 'lost', state: 'failed', vmLocation: 'paused-source', postcopyPaused: false, why: 'in post-copy the running guest was the destination QEMU: nothing can recover it; the status must say exactly where the VM stands' }
        : staysOnSource('the stream breaks; the VM stays on the source');
    case 'cut-5s':
      return completes('a 5 s silence is below the 30 s stall limit: the migration resumes and completes');
    case 'cut-120s':
      return postcopy
        ? { ...completes('post-copy: report postcopy-paused while the link is down, recover it when the link returns'), postcopyPaused: true }
        : staysOnSource('a stream that moves no data for 30 s is aborted cleanly; the VM stays running on the source, unthrottled');
    case 'full-statedir':
      return completes('a failed stateDir write fails the request cleanly and leaves nothing pending; a running migration is not harmed');
    case 'second-agent':
      return completes('a lock makes a second agent on the same stateDir refuse to start; it aborts nothing');
  }
}

export interface CaseId {
  fault: FaultName;
  phase: PhaseName;
}

export const caseKey = (c: CaseId): string => `${c.fault}:${c.phase}`;

/** Every cell of the table, row by row. */
export function allCases(): CaseId[] {
  return FAULTS.flatMap((fault) => PHASES.map((phase) => ({ fault, phase })));
}

/** The cases named in a filter like "cut-5s,kill-src-agent:throttling" (empty: all). */
export function selectCases(filter: string | undefined): CaseId[] {
  const all = allCases();
  const terms = (filter ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (terms.length === 0) return all;
  for (const t of terms) {
    if (!all.some((c) => c.fault === t || c.phase === t || caseKey(c) === t)) throw new Error(`unknown fault, phase or case in filter: ${t}`);
  }
  return all.filter((c) => terms.some((t) => t === c.fault || t === c.phase || t === caseKey(c)));
}

export interface InvariantResult {
  name: string;
  ok: boolean;
  detail: string;
}

/** What one case measured and concluded. */
export interface CaseResult extends CaseId {
  expectation: Expectation;
  /** every invariant held */
  survived: boolean;
  invariants: InvariantResult[];
  /** the harness could not set the case up (e.g. the phase was never reached) */
  harnessError: string | null;
  /** status states seen from the fault to the end, in order, without repeats */
  statesSeen: string[];
  final: { state: string; vmLocation: string | null; error: string | null } | null;
  /** what the operator saw: warning-or-worse log lines of both agents, and metric changes */
  logLines: { host: string; priority: number; event: string; msg: string }[];
  metricChanges: { host: string; metric: string; delta: number }[];
  durationMs: number;
}
