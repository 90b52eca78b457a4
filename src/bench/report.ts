// The convergence benchmark's results: record type, markdown report, one SVG chart per scenario.
import { writeFileSync } from 'node:fs';
import { chartSvg, type Series } from './chart.js';

export interface Point {
  t: number;
  throttle: number;
  remainingMiB: number;
}

export interface RunResult {
  scenario: string;
  mode: 'none' | 'stock' | 'controller';
  completed: boolean;
  state: string;
  seconds: number;
  iterations: number;
  peakThrottle: number;
  throttleSeconds: number;
  /** guest work done during the migration / work it would have done unthrottled, same span */
  guestWork: number;
  /** seconds of unthrottled guest work lost: span x (1 - guestWork). Compares runs of different
   *  lengths, which the share alone does not (a short run at a high throttle can lose less). */
  workLostSec: number;
  /** the guest's unthrottled dirtying rate measured just before the migration, MiB/s */
  baselineMiBps: number;
  /** the same measured again after the migration ended (sanity check of the baseline), MiB/s */
  afterMiBps: number;
  downtimeMs: number | null;
  /** the migration stream was encrypted (the status' tls) */
  tls?: boolean;
  /** the migration's error, when it failed */
  error?: string;
  sentMiB: number;
  actions: number;
  timeline: Point[];
}

function ratio(x: number, y: number): string {
  if (y > 0) return `${(x / y).toFixed(2)}x`;
  return x === 0 ? 'same' : 'n/a';
}

export function report(results: RunResult[]): string {
  const lines = [
    'Guest work = pages the guest wrote between a reading just before the migration and one just after it ended, divided by ' +
      '(its unthrottled rate measured just before, once it had touched its working set once) x (the time between the readings). ' +
      'Work lost (s) = that time x (1 - guest work). The rate measured again after the end is shown as a check of the baseline.',
    '',
    '| scenario | mode | completed | time (s) | iterations | peak throttle % | throttle·s | guest work | work lost (s) | guest MiB/s before / after | downtime (ms) | sent (MiB) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    lines.push(`| ${r.scenario} | ${r.mode} | ${r.completed ? 'yes' : `no (${r.state})`} | ${r.seconds} | ${r.iterations} | ${r.peakThrottle} | ${r.throttleSeconds} | ${(r.guestWork * 100).toFixed(0)} % | ${r.workLostSec ?? '-'} | ${r.baselineMiBps ?? '-'} / ${r.afterMiBps ?? '-'} | ${r.downtimeMs ?? '-'} | ${r.sentMiB} |`);
  }
  lines.push('', 'Controller against stock, per scenario (time ratio, and ratio of guest work lost in seconds; lower is better):', '');
  for (const sc of new Set(results.map((r) => r.scenario))) {
    const st = results.find((r) => r.scenario === sc && r.mode === 'stock');
    const ct = results.find((r) => r.scenario === sc && r.mode === 'controller');
    if (!st || !ct) continue;
    const lostSt = Math.max(0, st.workLostSec);
    const lostCt = Math.max(0, ct.workLostSec);
    lines.push(`- ${sc}: stock ${st.completed ? 'completed' : 'did not complete'}, controller ${ct.completed ? 'completed' : 'did not complete'}; time ${ratio(ct.seconds, st.seconds)} (${ct.seconds} s vs ${st.seconds} s); work lost ${ratio(lostCt, lostSt)} (${lostCt} s vs ${lostSt} s)`);
  }
  return lines.join('\n');
}

export function charts(results: RunResult[], dir: string): void {
  for (const sc of new Set(results.map((r) => r.scenario))) {
    const runs = results.filter((r) => r.scenario === sc && r.mode !== 'none');
    const color = (m: string): string => (m === 'stock' ? '#d62728' : '#1f77b4');
    const throttle: Series[] = runs.map((r) => ({ label: r.mode, color: color(r.mode), points: r.timeline.map((p) => [p.t, p.throttle]) }));
    const remaining: Series[] = runs.map((r) => ({ label: r.mode, color: color(r.mode), points: r.timeline.map((p) => [p.t, p.remainingMiB]) }));
    writeFileSync(`${dir}/converge-${sc}.svg`, chartSvg(`${sc}: stock auto-converge vs vmigrate controller`, [
      { title: 'CPU throttle', yLabel: '%', series: throttle },
      { title: 'data remaining', yLabel: 'MiB', series: remaining },
    ]));
  }
}
