// One case of the table: a guest, a migration brought to a phase, a fault, then every invariant.
import { defineGuest, readGuestProgress, type LabHostInfo } from '../../../src/lab/index.js';
import { rawCall } from '../raw-rpc.js';
import { migrateParameters } from '../lab-facts.js';
import { virsh } from '../virsh-facts.js';
import { isEnded, readStatus, watchStates, type FaultStatus } from './agent-status.js';
import { INJECTORS } from './injectors.js';
import {
  agentsServe, expectedPlace, noSlotHeld, observedLocation, oneCopy, paramsRestored, pausedReported, placesOf, truthfulStatus,
} from './invariants.js';
import { expectationFor, type CaseId, type CaseResult, type InvariantResult } from './model.js';
import { counterChanges, linesSince, markLogs, readCounters } from './operator-view.js';
import { MIGRATE_AGAIN, PHASE_DRIVERS } from './phases.js';

export interface CaseLab {
  dir: string;
  portBase: number;
  src: LabHostInfo;
  dst: LabHostInfo;
  log: (line: string) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How long a case waits for its migration to end once the fault is over. */
const END_TIMEOUT_MS = 90_000;
/** The same in post-copy: after a long cut the destination sees the paused stream break only when
 *  TCP retransmits across the restored link, and its backoff reaches 120 s (TCP_RTO_MAX). */
const POSTCOPY_END_TIMEOUT_MS = 240_000;
/** A status the agent cannot give for this long after the fault counts as lost. */
const STATUS_LOST_MS = 15_000;

class HarnessError extends Error {}

async function waitGuestWorking(uri: string, vm: string): Promise<void> {
  const end = Date.now() + 30_000;
  while ((await readGuestProgress(uri, vm).catch(() => 0n)) === 0n) {
    if (Date.now() > end) throw new HarnessError(`guest ${vm} did not start working`);
    await sleep(250);
  }
}

async function reachPhase(c: CaseId, lab: CaseLab, vm: string): Promise<FaultStatus> {
  const phase = PHASE_DRIVERS[c.phase];
  const end = Date.now() + phase.reachTimeoutMs;
  let last = '';
  for (;;) {
    const r = await readStatus(lab.src.agentUrl!, vm);
    if (r.ok) {
      if (phase.reached(r.status)) return r.status;
      if (isEnded(r.status.state)) throw new HarnessError(`migration ended (${r.status.state}) before reaching ${c.phase}`);
      last = `${r.status.state} iteration ${r.status.iteration}, ${r.status.dataRemaining >> 20} MiB left, throttle ${r.status.throttlePercent}%, postcopy ${r.status.postcopy}`;
    } else last = r.error;
    if (Date.now() > end) throw new HarnessError(`${c.phase} not reached within ${phase.reachTimeoutMs} ms (last: ${last})`);
    await sleep(250);
  }
}

/** Follows the status to its end; gives up when it stays unreadable (e.g. NO_MIGRATION) for long. */
async function waitEnd(url: string, vm: string, timeoutMs: number): Promise<{ final: FaultStatus | null; error: string | null }> {
  const end = Date.now() + timeoutMs;
  let unreadableSince: number | null = null;
  for (;;) {
    const r = await readStatus(url, vm);
    if (r.ok) {
      unreadableSince = null;
      if (isEnded(r.status.state)) return { final: r.status, error: null };
    } else {
      unreadableSince ??= Date.now();
      if (Date.now() - unreadableSince > STATUS_LOST_MS) return { final: null, error: r.error };
    }
    if (Date.now() > end) return { final: r.ok ? r.status : null, error: r.ok ? `still ${r.status.state} after ${timeoutMs} ms` : r.error };
    await sleep(500);
  }
}

/** The agent where the VM runs migrates it to the other host, and it arrives. */
async function migratesAgain(lab: CaseLab, vm: string, from: 'source' | 'destination'): Promise<InvariantResult> {
  const [src, dst] = from === 'source' ? [lab.src, lab.dst] : [lab.dst, lab.src];
  const started = await rawCall(src.agentUrl!, 'VM.migrate', { vmId: vm, dst: dst.agentUrl, ...MIGRATE_AGAIN }, 15_000).catch((e: Error) => ({ error: { code: 0, message: e.message } }));
  if (started.error) return { name: 'migrates-again', ok: false, detail: `VM.migrate from ${src.name} refused: ${started.error.code} ${started.error.message}` };
  const { final, error } = await waitEnd(src.agentUrl!, vm, 60_000);
  const places = await placesOf([lab.src, lab.dst], vm);
  const ok = final?.state === 'completed' && places.length === 1 && places[0]!.host === dst.name && places[0]!.state.startsWith('running');
  return { name: 'migrates-again', ok, detail: `${src.name} -> ${dst.name}: ${final?.state ?? error}; VM at ${places.map((p) => `${p.host} ${p.state}`).join(', ') || 'nowhere'}` };
}

export async function runCase(c: CaseId, lab: CaseLab, vm: string): Promise<CaseResult> {
  const t0 = Date.now();
  const phase = PHASE_DRIVERS[c.phase];
  const expectation = expectationFor(c.fault, c.phase);
  const hosts = [lab.src, lab.dst];
  const result: CaseResult = {
    ...c, expectation, survived: false, invariants: [], harnessError: null, statesSeen: [], final: null, logLines: [], metricChanges: [], durationMs: 0,
  };
  const marks = await markLogs(hosts.map((h) => ({ host: h.name, path: `${lab.dir}/${h.name}/agent.log` })));
  const countersBefore = await Promise.all(hosts.map((h) => readCounters(h.metricsUrl!)));
  try {
    await defineGuest({ dir: lab.dir, host: 'a', name: vm, ...phase.guest });
    await waitGuestWorking(lab.src.libvirtUri, vm);
    const paramsBefore = await migrateParameters(lab.src.libvirtUri, vm);
    const started = await rawCall(lab.src.agentUrl!, 'VM.migrate', { vmId: vm, dst: lab.dst.agentUrl, ...phase.migrate });
    if (started.error) throw new HarnessError(`VM.migrate refused: ${started.error.code} ${started.error.message}`);
    const migrationId = (started.result as { migrationId: string }).migrationId;
    if (phase.postcopyBandwidthMiB) {
      await sleep(300);
      await virsh(lab.src.libvirtUri, ['migrate-setspeed', '--postcopy', vm, String(phase.postcopyBandwidthMiB)]);
    }
    const at = await reachPhase(c, lab, vm);
    lab.log(`  ${c.phase} reached after ${Date.now() - t0} ms: iteration ${at.iteration}, ${at.dataRemaining >> 20} MiB left, throttle ${at.throttlePercent}%, postcopy ${at.postcopy}`);

    const watch = watchStates(lab.src.agentUrl!, vm);
    const fault = await INJECTORS[c.fault].inject({
      dir: lab.dir, portBase: lab.portBase, src: lab.src, dst: lab.dst, vm,
      defineProbe: async (name) => {
        await defineGuest({ dir: lab.dir, host: 'a', name, ramMiB: 64, wsMiB: 4, rateMiB: 2 });
      },
    });
    for (const n of fault.notes) lab.log(`  ${n}`);
    // a migration held in its phase is let go once the fault is over
    if (phase.release) {
      // a restarted agent may not listen yet: wait for an answer (an agent error is an answer)
      let s = await readStatus(lab.src.agentUrl!, vm);
      for (const until = Date.now() + 30_000; !s.ok && s.name === undefined && Date.now() < until; ) {
        await sleep(500);
        s = await readStatus(lab.src.agentUrl!, vm);
      }
      if (s.ok && !isEnded(s.status.state) && !s.status.postcopy) {
        await rawCall(lab.src.agentUrl!, 'VM.migrateChangeParams', { vmId: vm, ...phase.release }).catch(() => undefined);
      }
    }
    const { final, error } = await waitEnd(lab.src.agentUrl!, vm, c.phase === 'post-copy' ? POSTCOPY_END_TIMEOUT_MS : END_TIMEOUT_MS);
    await watch.stop();
    result.statesSeen = watch.seen;
    result.final = final ? { state: final.state, vmLocation: final.vmLocation ?? null, error: final.error ? `${final.error.name}: ${final.error.message}` : null } : null;

    const places = await placesOf(hosts, vm);
    const observed = observedLocation(places, lab.src.name, lab.dst.name);
    const checks: (InvariantResult | null)[] = [
      oneCopy(places, expectation),
      expectedPlace(observed, expectation),
      truthfulStatus(final, error, migrationId, observed, expectation),
      pausedReported(watch.seen, expectation),
      await paramsRestored(hosts, places[0], vm, paramsBefore),
      await noSlotHeld(lab.src.metricsUrl!, lab.dst.metricsUrl!),
      await agentsServe(hosts.map((h) => h.agentUrl!)),
      ...fault.checks,
    ];
    // the agent can migrate the VM again (a guest lost in post-copy is replaced by a new one)
    if (observed === 'source' || observed === 'destination') {
      checks.push(await migratesAgain(lab, vm, observed));
    } else {
      const fresh = `${vm}-n`;
      await defineGuest({ dir: lab.dir, host: 'a', name: fresh, ramMiB: 64, wsMiB: 4, rateMiB: 2 });
      await waitGuestWorking(lab.src.libvirtUri, fresh);
      const again = await migratesAgain(lab, fresh, 'source');
      checks.push({ ...again, detail: `(a new guest; the VM is at ${observed}) ${again.detail}` });
    }
    result.invariants = checks.filter((x): x is InvariantResult => x !== null);
    result.survived = result.invariants.every((i) => i.ok);
  } catch (e) {
    result.harnessError = e instanceof HarnessError ? e.message : `${(e as Error).message}`;
    if (!(e instanceof HarnessError)) lab.log(`  unexpected: ${(e as Error).stack ?? String(e)}`);
  }
  result.logLines = await linesSince(marks);
  const countersAfter = await Promise.all(hosts.map((h) => readCounters(h.metricsUrl!)));
  result.metricChanges = hosts.flatMap((h, i) => counterChanges(h.name, countersBefore[i]!, countersAfter[i]!));
  result.durationMs = Date.now() - t0;
  return result;
}
