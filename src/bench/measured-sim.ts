// The simulator's verdict on steering from the dirty rate measured before the migration (issue 9,
// "measure the dirty rate"): per scenario and policy, stock auto-converge, the controller from the
// passes alone, and the controller given the page-sampled rate (1 s period). Pure simulation, no lab:
//   npm run build && node dist/src/bench/measured-sim.js [policy,...] > docs/bench/measured.md
import { resolvePolicy } from '../controller/policy.js';
import { HEAVY_LAB, labHeavyGuestShare, sampledDirtyMiBps, SCENARIOS, simulate, type Scenario, type SimResult } from '../simulator/index.js';

/** Guests that saturate their working set in a pass yet converge alone (the lab's Linux guest runs
 *  stress-ng, which rewrites its buffer in a burst and then sleeps), and a faster link. */
export const MEASURED_SCENARIOS: readonly Scenario[] = [
  { name: 'alone-512-128-35', description: '512 MiB, 128 MiB at 35 MiB/s, evenly', ramMiB: 512, workingSetMiB: 128, dirtyMiBps: 35, bandwidthMiBps: 100 },
  { name: 'bursty-512-128-35', description: '512 MiB, 128 MiB rewritten at 1 GiB/s, 35 MiB/s mean', ramMiB: 512, workingSetMiB: 128, dirtyMiBps: 35, burstMiBps: 1024, bandwidthMiBps: 100 },
  { name: 'bursty-512-128-60', description: '512 MiB, 128 MiB rewritten at 1 GiB/s, 60 MiB/s mean', ramMiB: 512, workingSetMiB: 128, dirtyMiBps: 60, burstMiBps: 1024, bandwidthMiBps: 100 },
  { name: 'bursty-1g-64-30', description: '1 GiB, 64 MiB rewritten at 1 GiB/s, 30 MiB/s mean', ramMiB: 1024, workingSetMiB: 64, dirtyMiBps: 30, burstMiBps: 1024, bandwidthMiBps: 100 },
  { name: 'bursty-512-256-30-l60', description: '512 MiB, 256 MiB rewritten at 1 GiB/s, 30 MiB/s mean, 60 MiB/s link', ramMiB: 512, workingSetMiB: 256, dirtyMiBps: 30, burstMiBps: 1024, bandwidthMiBps: 60 },
  { name: 'bursty-1g-128-60-l60', description: '1 GiB, 128 MiB rewritten at 1 GiB/s, 60 MiB/s mean, 60 MiB/s link', ramMiB: 1024, workingSetMiB: 128, dirtyMiBps: 60, burstMiBps: 1024, bandwidthMiBps: 60 },
  { name: 'bursty-heavy', description: '1 GiB, 512 MiB rewritten at 1 GiB/s, 200 MiB/s mean', ramMiB: 1024, workingSetMiB: 512, dirtyMiBps: 200, burstMiBps: 1024, bandwidthMiBps: 100 },
  { name: 'fast-link-heavy', description: '1 GiB, 512 MiB at 400 MiB/s over 400 MiB/s', ramMiB: 1024, workingSetMiB: 512, dirtyMiBps: 400, bandwidthMiBps: 400 },
];

const TIME_LIMIT_SEC = 400;

function cell(r: SimResult): string {
  const end = r.completed ? `${r.timeSec.toFixed(1)} s${r.postcopy ? ' pc' : ''}` : r.aborted ? `abort ${r.timeSec.toFixed(0)} s` : `not done ${r.timeSec.toFixed(0)} s`;
  return `${end}, thr ${r.peakThrottle}, lost ${r.guestWorkLostSec.toFixed(1)} s`;
}

export function measuredTable(policyNames: readonly string[]): string {
  const lines = ['| policy | scenario | sampled MiB/s | stock | controller, passes alone | controller, measured rate |', '|---|---|---|---|---|---|'];
  for (const name of policyNames) {
    const policy = resolvePolicy(name);
    const runs: [string, Scenario, number, ((p: number) => number) | undefined][] = [
      ...[...SCENARIOS, ...MEASURED_SCENARIOS].map((s): [string, Scenario, number, undefined] => [s.name, s, sampledDirtyMiBps(s), undefined]),
      ['heavy-lab, lab guest curve', HEAVY_LAB, sampledDirtyMiBps(HEAVY_LAB), labHeavyGuestShare],
    ];
    for (const [label, scn, sampled, shareAt] of runs) {
      const o = { timeLimitSec: TIME_LIMIT_SEC, ...(shareAt ? { shareAt } : {}) };
      const stock = simulate(scn, { ...o, mode: 'stock' });
      const before = simulate(scn, { ...o, mode: 'controller', policy });
      const after = simulate(scn, { ...o, mode: 'controller', policy, measuredDirtyMiBps: sampled });
      lines.push(`| ${name} | ${label} | ${sampled.toFixed(0)} | ${cell(stock)} | ${cell(before)} | ${cell(after)} |`);
    }
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(measuredTable((process.argv[2] ?? 'minimal-downtime,protect-workload,finish-at-any-cost').split(',')));
}
