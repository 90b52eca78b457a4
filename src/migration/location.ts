// Where a VM stands once a migration ended, from what each host's libvirt reports. Pure: the
// effects that ask the hosts live in probe.ts. Used at the end of every migration, and by whoever
// re-attaches to a migration (an agent restart, a lost libvirt connection).
import type { VmLocation } from '../api/results.js';
import { DomainState, PausedReason, RunningReason, type DomainStateCode } from '../libvirt/types.js';

/** One host's view of the VM. */
export type HostView =
  | { kind: 'present'; state: DomainStateCode; reason: number }
  /** libvirt answered: no such domain (or not active) on this host */
  | { kind: 'absent' }
  /** libvirt could not be asked */
  | { kind: 'unreachable' };

const present = (v: HostView): v is Extract<HostView, { kind: 'present' }> => v.kind === 'present';

/** Running normally: the guest executes here and nowhere else needs it. */
function runsHere(v: HostView): boolean {
  return present(v) && v.state === DomainState.RUNNING && v.reason !== RunningReason.POSTCOPY_FAILED;
}

/** The guest's CPU state is here (post-copy switched over) but its memory is split and it cannot run. */
function postcopyStuck(v: HostView): boolean {
  if (!present(v)) return false;
  if (v.state === DomainState.RUNNING) return v.reason === RunningReason.POSTCOPY_FAILED;
  return v.state === DomainState.PAUSED && (v.reason === PausedReason.POSTCOPY || v.reason === PausedReason.POSTCOPY_FAILED);
}

/** The source handed the guest over to post-copy: it no longer holds the guest's live state. */
function handedOver(v: HostView): boolean {
  return present(v) && v.state === DomainState.PAUSED && (v.reason === PausedReason.POSTCOPY || v.reason === PausedReason.POSTCOPY_FAILED);
}

/** A destination copy that is not (yet) a guest: libvirt's incoming domain waits paused for the stream. */
function inactiveHere(v: HostView): boolean {
  if (v.kind === 'absent') return true;
  if (!present(v)) return false;
  return v.state === DomainState.SHUTOFF || v.state === DomainState.SHUTDOWN || v.state === DomainState.CRASHED ||
    (v.state === DomainState.PAUSED && v.reason === PausedReason.MIGRATION);
}

export function vmLocation(source: HostView, destination: HostView): VmLocation {
  const srcRuns = runsHere(source);
  const dstRuns = runsHere(destination);
  if (srcRuns && dstRuns) return 'unknown'; // two running copies: never guess which is the guest
  if (srcRuns) return inactiveHere(destination) || destination.kind === 'unreachable' ? 'source' : 'unknown';
  if (handedOver(source) || postcopyStuck(destination)) {
    if (dstRuns) return 'destination';
    if (postcopyStuck(destination)) return 'paused-destination';
    // the destination QEMU (which held the running guest) is gone: what is left is the stale, paused
    // copy on the source, which must never be resumed; the status's error says so
    return handedOver(source) && inactiveHere(destination) ? 'paused-source' : 'unknown';
  }
  if (dstRuns) return inactiveHere(source) ? 'destination' : 'unknown';
  if (present(source) && source.state === DomainState.PAUSED && (inactiveHere(destination) || destination.kind === 'unreachable')) {
    return 'paused-source';
  }
  return 'unknown';
}

/** The post-copy phase the source domain shows: not in post-copy, running it, or broken (paused). */
export type PostcopyPhase = 'none' | 'active' | 'paused';

export function postcopyPhase(source: HostView): PostcopyPhase {
  if (!present(source) || source.state !== DomainState.PAUSED) return 'none';
  if (source.reason === PausedReason.POSTCOPY_FAILED) return 'paused';
  if (source.reason === PausedReason.POSTCOPY) return 'active';
  return 'none';
}

/** The destination answered, and holds no copy of the guest: a broken post-copy cannot be resumed. */
export function destinationLost(destination: HostView): boolean {
  return destination.kind === 'absent' || (present(destination) && (destination.state === DomainState.SHUTOFF || destination.state === DomainState.CRASHED));
}
