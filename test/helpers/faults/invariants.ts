// The invariants every case checks, each a small function: pure ones judge facts already read,
// effectful ones read what they need (libvirt through virsh, the agent through raw JSON-RPC, metrics).
import { domainPlaces, migrateParameters, scrapeMetric, type DomainPlace, type HostRef } from '../lab-facts.js';
import { agentServes, type FaultStatus } from './agent-status.js';
import type { Expectation, InvariantResult } from './model.js';

/** Where the VM is, from libvirt's own lists: 'source', 'destination', 'paused-source',
 *  'paused-destination', 'none', or 'several' (more than one host has it). */
export function observedLocation(places: readonly DomainPlace[], src: string, dst: string): string {
  if (places.length === 0) return 'none';
  if (places.length > 1) return 'several';
  const p = places[0]!;
  const side = p.host === src ? 'source' : p.host === dst ? 'destination' : 'elsewhere';
  return p.state.startsWith('running') ? side : `paused-${side}`;
}

/** Exactly one running copy (or, for a guest lost in post-copy, one paused copy and none running). */
export function oneCopy(places: readonly DomainPlace[], e: Expectation): InvariantResult {
  const running = places.filter((p) => p.state.startsWith('running'));
  const ok = e.end === 'lost' ? running.length === 0 && places.length === 1 : running.length === 1 && places.length === 1;
  return { name: 'one-copy', ok, detail: places.map((p) => `${p.host}: ${p.state}`).join('; ') || 'on no host' };
}

/** The VM is where the case must leave it. */
export function expectedPlace(observed: string, e: Expectation): InvariantResult {
  const want = e.end === 'lost' ? 'paused-source' : e.end;
  return { name: 'expected-place', ok: observed === want, detail: `VM is at ${observed}; expected ${want} (${e.why})` };
}

/** The final status is over, says what happened, keeps the migration's id and reports where the VM is. */
export function truthfulStatus(final: FaultStatus | null, readError: string | null, migrationId: string, observed: string, e: Expectation): InvariantResult {
  if (!final) return { name: 'truthful-status', ok: false, detail: `no final status: ${readError ?? 'never ended'}` };
  const problems: string[] = [];
  if (final.migrationId !== migrationId) problems.push(`migrationId ${final.migrationId}, started as ${migrationId}`);
  if (final.state !== e.state) problems.push(`state ${final.state}, expected ${e.state}`);
  if (final.state === 'completed' && observed !== 'destination') problems.push(`says completed but the VM is at ${observed}`);
  if (final.state === 'failed' && !final.error) problems.push('failed without an error');
  if (final.vmLocation !== observed) problems.push(`vmLocation ${final.vmLocation ?? '(absent)'}, VM is at ${observed}`);
  const got = `state ${final.state}, vmLocation ${final.vmLocation ?? '(absent)'}${final.error ? `, error ${final.error.name}: ${final.error.message}` : ''}`;
  return { name: 'truthful-status', ok: problems.length === 0, detail: problems.length ? `${problems.join('; ')} (${got})` : got };
}

/** The status said postcopy-paused while the link was down, when the case requires it. */
export function pausedReported(statesSeen: readonly string[], e: Expectation): InvariantResult | null {
  if (!e.postcopyPaused) return null;
  return { name: 'postcopy-paused-reported', ok: statesSeen.includes('postcopy-paused'), detail: `states seen: ${statesSeen.join(' -> ')}` };
}

/** The QEMU migration parameters the agent may change (throttle knobs, downtime limit, bandwidth). */
export const STEERED_PARAMS = [
  'cpu-throttle-initial', 'cpu-throttle-increment', 'max-cpu-throttle', 'cpu-throttle-tailslow',
  'throttle-trigger-threshold', 'downtime-limit', 'max-bandwidth',
] as const;

/** Parameters on the copy that remains equal those of a fresh guest read before the migration. */
export function paramsMatch(before: Record<string, unknown>, after: Record<string, unknown>): InvariantResult {
  const diffs = STEERED_PARAMS.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k])).map((k) => `${k}: ${String(before[k])} -> ${String(after[k])}`);
  return { name: 'params-restored', ok: diffs.length === 0, detail: diffs.length ? diffs.join('; ') : 'as before the migration' };
}

export async function paramsRestored(hosts: readonly HostRef[], place: DomainPlace | undefined, vm: string, before: Record<string, unknown>): Promise<InvariantResult> {
  const host = hosts.find((h) => h.name === place?.host);
  if (!host) return { name: 'params-restored', ok: false, detail: 'no copy of the VM to read parameters from' };
  try {
    return paramsMatch(before, await migrateParameters(host.libvirtUri, vm));
  } catch (e) {
    return { name: 'params-restored', ok: false, detail: `query-migrate-parameters failed: ${(e as Error).message}` };
  }
}

/** No admission slot left held, within 10 s: the destination's vmigrate_migrations_incoming and the
 *  source's vmigrate_migrations_running are back to 0. */
export async function noSlotHeld(srcMetricsUrl: string, dstMetricsUrl: string): Promise<InvariantResult> {
  const read = async () => ({
    incoming: await scrapeMetric(dstMetricsUrl, 'vmigrate_migrations_incoming').catch(() => null),
    outgoing: await scrapeMetric(srcMetricsUrl, 'vmigrate_migrations_running').catch(() => null),
  });
  let v = await read();
  const end = Date.now() + 10_000;
  while (!(v.incoming === 0 && v.outgoing === 0) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 500));
    v = await read();
  }
  return {
    name: 'no-slot-held',
    ok: v.incoming === 0 && v.outgoing === 0,
    detail: `destination vmigrate_migrations_incoming = ${v.incoming ?? 'unreadable'}, source vmigrate_migrations_running = ${v.outgoing ?? 'unreadable'}`,
  };
}

export async function agentsServe(urls: readonly string[]): Promise<InvariantResult> {
  const down: string[] = [];
  for (const u of urls) if (!(await agentServes(u))) down.push(u);
  return { name: 'agents-serve', ok: down.length === 0, detail: down.length ? `no answer from ${down.join(', ')}` : 'Host.ping answered by both agents' };
}

export async function placesOf(hosts: readonly HostRef[], vm: string): Promise<DomainPlace[]> {
  return domainPlaces(hosts, vm);
}
