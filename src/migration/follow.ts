// Follows a migration job this process did not start (its predecessor's virDomainMigrateToURI3 call
// died with it; the job goes on in libvirtd). Resolves when the VM has left this host and runs on
// the destination, rejects when the job ended any other way: the same contract as the migrate call.
import { isNoDomain } from '../libvirt/errors.js';
import { openConnection } from '../libvirt/index.js';
import { DomainState, isJobActive, type Domain } from '../libvirt/types.js';
import { followedOutcome } from './adoption.js';

export interface FollowOptions {
  intervalMs: number;
  /** libvirt URI of the destination, to see the VM running there (best effort) */
  dconnuri: string;
  /** for a destination that cannot be asked */
  onUnverified?: (why: string) => void;
}

const DESTINATION_CHECK_MS = 5_000;

/** Is the VM running on the destination? 'unknown' when the destination cannot be asked. */
export async function runningOnDestination(dconnuri: string, vmUuid: string): Promise<{ answer: 'running' | 'not-running' | 'unknown'; why?: string }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${DESTINATION_CHECK_MS} ms`)), DESTINATION_CHECK_MS);
  });
  const ask = (async () => {
    const conn = await openConnection(dconnuri);
    try {
      const domain = await conn.lookupByUuid(vmUuid);
      const { state } = await domain.getState();
      return state === DomainState.RUNNING ? 'running' : 'not-running';
    } catch (err) {
      if (isNoDomain(err)) return 'not-running';
      throw err;
    } finally {
      await conn.close().catch(() => {});
    }
  })();
  try {
    return { answer: await Promise.race([ask, timeout]) };
  } catch (err) {
    ask.catch(() => {});
    return { answer: 'unknown', why: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

async function stateHere(domain: Domain): Promise<{ present: false } | { present: true; state: number; reason: number }> {
  try {
    return { present: true, ...(await domain.getState()) };
  } catch (err) {
    if (isNoDomain(err)) return { present: false };
    throw err;
  }
}

export async function followJob(domain: Domain, opts: FollowOptions): Promise<void> {
  for (;;) {
    let ended: boolean;
    try {
      ended = !isJobActive((await domain.getJobStats()).type);
    } catch (err) {
      if (!isNoDomain(err)) {
        // libvirt busy or reconnecting: look again
        await new Promise((r) => setTimeout(r, opts.intervalMs));
        continue;
      }
      ended = true; // a transient domain is gone once migrated
    }
    if (!ended) {
      await new Promise((r) => setTimeout(r, opts.intervalMs));
      continue;
    }
    const here = await stateHere(domain);
    const leftHere = !here.present || here.state === DomainState.SHUTOFF;
    const there = leftHere ? await runningOnDestination(opts.dconnuri, domain.uuid) : { answer: 'unknown' as const };
    if (leftHere && there.answer === 'unknown') opts.onUnverified?.(there.why ?? 'unknown');
    const outcome = followedOutcome(here, there.answer);
    if (outcome.completed) return;
    throw new Error(outcome.message);
  }
}
