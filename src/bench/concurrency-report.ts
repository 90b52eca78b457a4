// The concurrency benchmark's report (pure): batches side by side against one at a time, and the
// agent's RPC latency and memory idle and under load, against the targets.
import type { BatchResult } from './batch.js';
import type { ProbeResult } from './agent-probe.js';
import type { Scenario } from './run-migration.js';

export const TARGET_P99_MS = 5;
export const TARGET_RSS_MIB = 120;

/** prom-client samples the agent's event loop with a 10 ms timer; its histogram holds whole periods */
const LOOP_SAMPLE_MS = 10;

export interface ConcurrencyRun {
  started: string;
  ended: string;
  /** what-if: nice value of the agent's and the probe's event-loop threads; null: as started */
  nice: number | null;
  /** the agents' outgoing and incoming limits */
  limit: number;
  /** probe calls per second */
  rate: number;
  scenario: Scenario;
  batches: BatchResult[];
  idle: ProbeResult;
  /** while every guest of the largest concurrent batch was still migrating */
  loaded: ProbeResult;
  loadedGuests: number;
}

const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : '–');

export function batchTable(batches: BatchResult[]): string {
  const lines = [
    '| guests | way | total time (s) | guest work lost, summed (s) | completed | time vs one at a time | work lost vs one at a time |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const b of batches) {
    const seq = batches.find((x) => x.guests === b.guests && x.mode === 'sequential');
    const vs = b.mode === 'concurrent' && seq ? [ratio(b.totalSec, seq.totalSec), ratio(b.workLostSec, seq.workLostSec)] : ['1.00×', '1.00×'];
    lines.push(`| ${b.guests} | ${b.mode === 'concurrent' ? 'all at once' : 'one at a time'} | ${b.totalSec} | ${b.workLostSec} | ${b.completed}/${b.guests} | ${vs[0]} | ${vs[1]} |`);
  }
  return lines.join('\n');
}

export function perGuestTable(batches: BatchResult[]): string {
  const lines = ['| guests | way | guest | state | time (s) | work lost (s) | downtime (ms) |', '| ---: | --- | --- | --- | ---: | ---: | ---: |'];
  for (const b of batches) {
    for (const r of b.runs) lines.push(`| ${b.guests} | ${b.mode} | ${r.vm} | ${r.state} | ${r.seconds} | ${r.workLostSec} | ${r.downtimeMs ?? '–'} |`);
  }
  return lines.join('\n');
}

const verdict = (ok: boolean): string => (ok ? 'met' : '**not met**');

export function agentTable(run: ConcurrencyRun): string {
  const late = (ms: number | null): string => (ms === null ? '–' : Math.max(0, ms - LOOP_SAMPLE_MS).toFixed(1));
  const row = (label: string, p: ProbeResult): string =>
    `| ${label} | ${p.calls} in ${p.seconds} s | ${p.p50Ms} | ${p.p99Ms} | ${p.maxMs} | ${p.errors} | ${late(p.agentLoopDelayP99Ms)} / ${late(p.agentLoopDelayMaxMs)} | ${p.clientTimerLateP99Ms} | ${p.rssMedianMiB} | ${p.rssMaxMiB} | ${p.load[0]} → ${p.load[1]} |`;
  const worstP99 = Math.max(run.idle.p99Ms, run.loaded.p99Ms);
  const worstRss = Math.max(run.idle.rssMaxMiB, run.loaded.rssMaxMiB);
  return [
    '| agent | VM.migrateStatus calls | p50 (ms) | p99 (ms) | max (ms) | errors | agent event loop late p99 / max (ms) | client timer late p99 (ms) | RSS median (MiB) | RSS max (MiB) | load |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('idle', run.idle),
    row(`${run.loadedGuests} migrations in flight`, run.loaded),
    '',
    `Targets: p99 ≤ ${TARGET_P99_MS} ms: ${verdict(worstP99 <= TARGET_P99_MS)} (worst p99 ${worstP99} ms); RSS ≤ ${TARGET_RSS_MIB} MiB: ${verdict(worstRss <= TARGET_RSS_MIB)} (largest ${worstRss} MiB).`,
  ].join('\n');
}

export function concurrencyReport(run: ConcurrencyRun): string {
  const sc = run.scenario;
  return [
    '# Concurrent migrations from one host',
    '',
    `Run ${run.started} to ${run.ended} (\`npm run bench:concurrency\`). Lab: two libvirt hosts on one 2-core machine (shared with other work), TCG, ` +
      `1-vCPU guests; the agents allow ${run.limit} outgoing and incoming migrations at once. Each guest: ${sc.ramMiB} MiB, ` +
      `${sc.wsMiB} MiB working set dirtied at ${sc.rateMiB} MiB/s, bandwidth cap ${sc.bandwidth} MiB/s, the agent's controller (default policy).`,
    ...(run.nice !== null
      ? ['', `**What-if run:** the source agent's and the probing client's event-loop threads ran at nice ${run.nice} (the guests, QEMU and libvirtd at 0), as a deployment giving the agent a higher CPU weight than the guests would.`]
      : []),
    '',
    'All guests of a batch are booted before it starts and run throughout, so they compete for the same CPU either way. ' +
      "A guest's work lost = (its migration's span) × (1 − work done ÷ work at its own rate measured just before the batch, with the others running); " +
      'summed over the guests. Total time: from the first VM.migrate to the last end.',
    '',
    batchTable(run.batches),
    '',
    '## The agent under load',
    '',
    `VM.migrateStatus round trips on one mutual-TLS WebSocket connection at ${run.rate} calls/s (open loop), measured by a client on the same machine; ` +
      "RSS of the source agent from /proc every 500 ms; load = the machine's 1-minute load average at the window's start and end (2 cores). " +
      "To tell the agent's delay from the machine's: how late the agent's own event loop ran over the window (p99/max, from its /metrics: " +
      `prom-client's ${LOOP_SAMPLE_MS} ms sampling timer, its period taken off), and how late the probing client's own timer fired (p99), which no agent can cause. ` +
      'Idle: nothing in flight, after the first batches (their statuses kept). ' +
      `Loaded: from the moment all ${run.loadedGuests} migrations of the concurrent batch were asked for until the first of them ended.`,
    '',
    agentTable(run),
    '',
    '## Per guest',
    '',
    perGuestTable(run.batches),
    '',
  ].join('\n');
}
