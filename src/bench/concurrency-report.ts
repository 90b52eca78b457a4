// The concurrency benchmark's report (pure): batches side by side against one at a time, and the
// agent's RPC latency and memory idle and under load, against the targets.
import type { BatchResult } from './batch.js';
import type { ProbeResult } from './agent-probe.js';

export const TARGET_P99_MS = 5;
export const TARGET_RSS_MIB = 120;

export interface ConcurrencyRun {
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
  const row = (label: string, p: ProbeResult): string =>
    `| ${label} | ${p.calls} in ${p.seconds} s | ${p.p50Ms} | ${p.p99Ms} | ${p.maxMs} | ${p.errors} | ${p.agentLoopDelayP99Ms ?? '–'} / ${p.agentLoopDelayMaxMs ?? '–'} | ${p.clientTimerLateP99Ms} | ${p.rssMedianMiB} | ${p.rssMaxMiB} | ${p.load[0]} → ${p.load[1]} |`;
  const worstP99 = Math.max(run.idle.p99Ms, run.loaded.p99Ms);
  const worstRss = Math.max(run.idle.rssMaxMiB, run.loaded.rssMaxMiB);
  return [
    '| agent | VM.migrateStatus calls | p50 (ms) | p99 (ms) | max (ms) | errors | agent event-loop delay p99 / max (ms) | client timer late p99 (ms) | RSS median (MiB) | RSS max (MiB) | load |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('idle', run.idle),
    row(`${run.loadedGuests} migrations in flight`, run.loaded),
    '',
    `Targets: p99 ≤ ${TARGET_P99_MS} ms: ${verdict(worstP99 <= TARGET_P99_MS)} (worst p99 ${worstP99} ms); RSS ≤ ${TARGET_RSS_MIB} MiB: ${verdict(worstRss <= TARGET_RSS_MIB)} (largest ${worstRss} MiB).`,
  ].join('\n');
}
