// What a restarted agent makes of an evacuation its predecessor recorded. Pure: the record, what the
// agent now follows (the migrations it adopted from the ledger) and what libvirt shows of each VM
// that was being moved, in; the status the evacuation goes on from, out.
import type { EvacuationStatus, EvacuationVm } from '../api/evacuation.js';
import type { EvacuationRecord, StartIntent } from './record.js';

/** The migration the restarted agent knows for a VM (adopted from the ledger), if any. */
export interface FollowedMigration {
  migrationId: string;
  startedAtMs: number;
}

/** What libvirt shows of a VM on this host now. */
export type FoundHere = { present: false } | { present: true; migratedAway: boolean; jobActive: boolean };

export interface VmNow {
  followed: FollowedMigration | null;
  found: FoundHere;
}

export type ResumeDecision =
  /** nothing to look at: ended, or not started */
  | { kind: 'keep' }
  /** its migration was adopted: the evacuation follows it to its end */
  | { kind: 'follow'; migrationId: string; reason: string }
  /** the VM left this host while no agent followed it: moved */
  | { kind: 'left'; reason: string }
  /** its migration ended without it (aborted at shutdown, or never started): it goes again */
  | { kind: 'again'; reason: string }
  /** a migration job runs that this agent does not follow: not touched, reported */
  | { kind: 'stuck'; reason: string };

/** An attempt that ended because the agent stopped, not because the destination failed it: it
 *  excludes no destination and is not counted against the retry. */
export const INTERRUPTED = 'interrupted';

/** The VMs whose fate the record leaves open, and so need looking at (by vmId). */
export function vmsToLook(r: EvacuationRecord): string[] {
  const open = new Set(r.starting.map((i) => i.vmId));
  for (const v of r.status.vms) if (v.state === 'migrating') open.add(v.vmId);
  return [...open];
}

export function decideResume(v: EvacuationVm, intent: StartIntent | undefined, now: VmNow): ResumeDecision {
  const last = v.attempts[v.attempts.length - 1];
  const recorded = v.state === 'migrating' && last?.migrationId ? last.migrationId : null;
  if (recorded === null && intent === undefined) return { kind: 'keep' };
  const f = now.followed;
  if (recorded !== null && f?.migrationId === recorded) return { kind: 'follow', migrationId: recorded, reason: `its migration ${recorded} was taken over by the restarted agent` };
  // started just before the crash: the ledger has it, the evacuation's record not yet
  const known = new Set(v.attempts.map((a) => a.migrationId));
  if (intent && f && !known.has(f.migrationId) && f.startedAtMs >= intent.atMs) {
    return { kind: 'follow', migrationId: f.migrationId, reason: `the migration ${f.migrationId} it was starting when the agent stopped was taken over` };
  }
  const found = now.found;
  if (!found.present || found.migratedAway) return { kind: 'left', reason: 'it left this host while no agent followed its migration' };
  // only about to start: it did not (or its migration left no trace); it waits for its turn
  if (recorded === null) return { kind: 'keep' };
  if (found.jobActive) return { kind: 'stuck', reason: 'a migration job runs that the restarted agent does not follow (not taken over); left alone' };
  return { kind: 'again', reason: 'its migration ended while the agent stopped (the VM is still here): it goes again' };
}

/**
 * The status to go on from. `now` by vmId, for the VMs of vmsToLook(). A VM that goes again waits
 * for its turn as planned, or is cancelled when a cancel had been asked for.
 */
export function resumedStatus(r: EvacuationRecord, now: ReadonlyMap<string, VmNow>): { status: EvacuationStatus; decisions: Map<string, ResumeDecision> } {
  const status = structuredClone(r.status) as EvacuationStatus;
  const decisions = new Map<string, ResumeDecision>();
  for (const v of status.vms) {
    const intent = r.starting.find((i) => i.vmId === v.vmId);
    const found = now.get(v.vmId);
    const d = found ? decideResume(v, intent, found) : { kind: 'keep' as const };
    decisions.set(v.vmId, d);
    const last = v.attempts[v.attempts.length - 1];
    const current = v.state === 'migrating' ? last : undefined;
    switch (d.kind) {
      case 'keep':
        break;
      case 'follow':
        if (!current || current.migrationId !== d.migrationId) {
          v.attempts.push({ destination: intent?.destination ?? v.destination ?? '', migrationId: d.migrationId, state: 'running', error: null });
          v.destination = intent?.destination ?? v.destination;
        }
        v.state = 'migrating';
        break;
      case 'left':
        if (current) current.state = 'completed';
        v.state = 'done';
        v.placementReason = d.reason;
        break;
      case 'again':
        if (current) current.state = INTERRUPTED;
        v.state = r.cancelRequested ? 'cancelled' : 'waiting';
        v.placementReason = r.cancelRequested ? `evacuation cancelled; ${d.reason.replace(/: it goes again$/, '')}` : d.reason;
        break;
      case 'stuck':
        if (current) current.state = 'unfollowed';
        v.state = 'failed';
        v.error = { code: 1012, name: 'MIGRATION_FAILED', message: d.reason };
        break;
    }
  }
  return { status, decisions };
}

/** Destinations that failed each VM (a retry goes elsewhere); interrupted attempts exclude none. */
export function excludedByAttempts(vms: readonly EvacuationVm[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const v of vms) {
    const failed = v.attempts.filter((a) => a.state !== 'running' && a.state !== 'completed' && a.state !== INTERRUPTED).map((a) => a.destination);
    if (failed.length) out.set(v.vmId, new Set(failed));
  }
  return out;
}

/** Attempts that count against the retry. */
export const countedAttempts = (v: EvacuationVm): number => v.attempts.filter((a) => a.state !== INTERRUPTED).length;

/** Of several unfinished records (there should be one), the newest is resumed; the others are closed. */
export function pickResumable(records: readonly EvacuationRecord[]): { resume: EvacuationRecord | null; close: EvacuationRecord[] } {
  const open = records.filter((r) => r.status.state === 'planning' || r.status.state === 'running').sort((a, b) => Date.parse(a.status.startedAt) - Date.parse(b.status.startedAt));
  return { resume: open[open.length - 1] ?? null, close: open.slice(0, -1) };
}
