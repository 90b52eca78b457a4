// What a restarted agent does with a migration its predecessor recorded. Pure: what libvirt shows of
// the VM and its job, and what the record allows, in; a decision with its reason out.
import type { Adoption } from '../api/results.js';

/** What libvirt shows of the recorded VM on this host now. */
export type FoundVm =
  | { present: false }
  | {
      present: true;
      jobActive: boolean;
      /** the job is an outgoing migration (or libvirt does not say what it is) */
      outgoing: boolean;
      postcopy: boolean;
      /** epoch ms the running job started (now - its time_elapsed); undefined when libvirt does not say */
      jobStartedAtMs?: number;
    };

/** The controller's side of the record. */
export type SteeringFound =
  | { kind: 'none' }
  | { kind: 'restored' }
  | { kind: 'lost'; why: string };

export type AdoptDecision =
  /** ours: go on following it (it may have ended already; the follower finds out how) */
  | { kind: 'follow'; steering: Adoption['steering']; reason: string }
  /** ours, but it may not go on: abort it, with this reason in the status */
  | { kind: 'abort'; steering: Adoption['steering']; reason: string }
  /** a job this agent did not start (virsh, another tool): never touched */
  | { kind: 'foreign'; reason: string };

/** A job that started this long before or after the record is not the recorded one. */
export const JOB_START_TOLERANCE_MS = 30_000;

export interface AdoptInput {
  vm: FoundVm;
  /** epoch ms the recorded migration started */
  recordedStartMs: number;
  steering: SteeringFound;
  policyName: string;
  /** the policy's choice when the controller's state is lost */
  onLostState: 'continue-unsteered' | 'abort';
}

export function decideAdoption(i: AdoptInput): AdoptDecision {
  if (i.vm.present && i.vm.jobActive) {
    if (!i.vm.outgoing) return { kind: 'foreign', reason: 'the VM runs a job that is not an outgoing migration' };
    const start = i.vm.jobStartedAtMs;
    if (start !== undefined && Math.abs(start - i.recordedStartMs) > JOB_START_TOLERANCE_MS) {
      return { kind: 'foreign', reason: `the running migration started at ${new Date(start).toISOString()}, not when the recorded one did (${new Date(i.recordedStartMs).toISOString()}): someone else started it` };
    }
  }
  const where = !i.vm.present ? 'the VM is gone from this host' : i.vm.jobActive ? (i.vm.postcopy ? 'the migration runs in post-copy' : 'the migration still runs') : 'the migration ended while no agent ran';
  switch (i.steering.kind) {
    case 'none':
      return { kind: 'follow', steering: 'stock', reason: `${where}; no controller steers it (policy ${i.policyName})` };
    case 'restored':
      return { kind: 'follow', steering: 'resumed', reason: `${where}; the controller resumes from its saved state` };
    case 'lost': {
      const running = i.vm.present && i.vm.jobActive;
      // post-copy cannot be aborted, and an ended job has nothing to abort
      if (running && !(i.vm.present && i.vm.postcopy) && i.onLostState === 'abort') {
        return { kind: 'abort', steering: 'unsteered', reason: `the controller's state was lost (${i.steering.why}) and policy ${i.policyName} aborts a migration it cannot steer` };
      }
      return { kind: 'follow', steering: 'unsteered', reason: `${where}; the controller's state was lost (${i.steering.why}): QEMU's auto-converge goes on as last set, under the completion timeout` };
    }
  }
}

/** libvirt's virDomainShutoffReason MIGRATED. */
const SHUTOFF_MIGRATED = 4;
const SHUTOFF = 5;

/** How a followed job ended, from what is left of the VM on this host and on the destination. */
export function followedOutcome(here: { present: false } | { present: true; state: number; reason: number }, onDestination: 'running' | 'not-running' | 'unknown'): { completed: true } | { completed: false; message: string } {
  const leftHere = !here.present || (here.state === SHUTOFF && here.reason === SHUTOFF_MIGRATED);
  if (!leftHere) return { completed: false, message: 'the migration ended without completing: the VM is still on this host' };
  if (onDestination === 'not-running') return { completed: false, message: 'the VM left this host but does not run on the destination' };
  return { completed: true };
}
