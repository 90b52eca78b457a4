// Convergence benchmark on the lab (`npm run bench:converge`): for each scenario, side by side in one
// run, (a) plain pre-copy without auto-converge, (b) QEMU's stock auto-converge (20/10), (c) the agent's
// controller. Writes bench-out/converge.{md,json} and one SVG chart per scenario.
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AgentClient } from '../client/client.js';
import type { MigrateParams } from '../api/params.js';
import type { MigrationStatus } from '../api/results.js';
import { defineGuest, destroyGuest, labDown, labUp, readGuestProgress, readGuestStatus, type LabHostInfo } from '../lab/index.js';
import { chartSvg, type Series } from './chart.js';

interface Scenario {
  name: string;
  ramMiB: number;
  wsMiB: number;
  rateMiB: number;
  bandwidth: number;
}

interface Mode {
  name: 'none' | 'stock' | 'controller';
  label: string;
  params: Partial<MigrateParams>;
}

export const SCENARIOS: Scenario[] = [
  { name: 'light', ramMiB: 512, wsMiB: 64, rateMiB: 20, bandwidth: 100 },
  { name: 'moderate', ramMiB: 1024, wsMiB: 256, rateMiB: 150, bandwidth: 100 },
  { name: 'heavy', ramMiB: 1024, wsMiB: 512, rateMiB: 400, bandwidth: 100 },
  { name: 'extreme', ramMiB: 1024, wsMiB: 768, rateMiB: 800, bandwidth: 50 },
];

const MODES: Mode[] = [
  { name: 'none', label: 'no auto-converge', params: { autoConverge: false, policy: 'stock' } },
  { name: 'stock', label: 'stock auto-converge 20/10', params: { policy: 'stock' } },
  { name: 'controller', label: 'vmigrate controller', params: {} },
];

interface Point {
  t: number;
  throttle: number;
  remainingMiB: number;
}

export interface RunResult {
  scenario: string;
  mode: Mode['name'];
  completed: boolean;
  state: string;
  seconds: number;
  iterations: number;
  peakThrottle: number;
  throttleSeconds: number;
  /** guest work done during the migration / work it would have done unthrottled, same duration */
  guestWork: number;
  /** the guest's unthrottled dirtying rate measured just before the migration, MiB/s */
  baselineMiBps: number;
  /** the same measured again after the migration ended (sanity check of the baseline), MiB/s */
  afterMiBps: number;
  downtimeMs: number | null;
  sentMiB: number;
  actions: number;
  timeline: Point[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A progress reading timed at the middle of its monitor round trip. */
interface Reading {
  pages: bigint;
  t: number;
}

async function reading(uri: string, name: string): Promise<Reading> {
  const a = performance.now();
  const pages = await readGuestProgress(uri, name);
  return { pages, t: (a + performance.now()) / 2 };
}

/** Pages per second the guest writes when nothing slows it, measured over `ms` once it runs and has
 *  touched its whole working set once (first writes fault host memory in and run slower). */
async function baselineRate(uri: string, name: string, ms: number): Promise<number> {
  const deadline = performance.now() + 60_000;
  // the progress block appears once the kernel is up: read errors before that are expected
  for (;;) {
    const st = await readGuestStatus(uri, name).catch(() => null);
    if (st?.state === 'running' && st.passes >= 1) break;
    if (performance.now() > deadline) throw new Error(`${name}: guest never completed a pass over its working set`);
    await sleep(250);
  }
  const r0 = await reading(uri, name);
  await sleep(ms);
  const r1 = await reading(uri, name);
  return Number(r1.pages - r0.pages) / ((r1.t - r0.t) / 1000);
}

async function runOne(a: LabHostInfo, b: LabHostInfo, sc: Scenario, mode: Mode, limitS: number): Promise<RunResult> {
  const name = `bench-${sc.name}-${mode.name}`;
  await defineGuest({ host: 'a', name, ramMiB: sc.ramMiB, wsMiB: sc.wsMiB, rateMiB: sc.rateMiB });
  const rate = await baselineRate(a.libvirtUri, name, 3000);
  const client = await AgentClient.connect(a.agentUrl!);
  const timeline: Point[] = [];
  try {
    await client.subscribe({ topics: ['migration.progress'] });
    client.on('notification', (n) => {
      const s = n.params as MigrationStatus;
      if (s.vmName === name) timeline.push({ t: s.elapsedMs / 1000, throttle: s.throttlePercent, remainingMiB: s.dataRemaining / 1048576 });
    });
    const r0 = await reading(a.libvirtUri, name);
    const t0 = performance.now();
    await client.migrate({ vmId: name, dst: b.agentUrl!, bandwidth: sc.bandwidth, ...mode.params });
    let s = await client.migrateStatus({ vmId: name });
    while (s.state === 'pending' || s.state === 'running') {
      if (performance.now() - t0 > limitS * 1000) {
        s = await client.migrateCancel({ vmId: name });
        break;
      }
      await sleep(500);
      s = await client.migrateStatus({ vmId: name });
    }
    const elapsed = (performance.now() - t0) / 1000;
    const where = s.state === 'completed' ? b : a;
    // work over exactly the span between the two readings (the guest runs unthrottled after the end)
    const r1 = await reading(where.libvirtUri, name);
    const after = await baselineRate(where.libvirtUri, name, 3000);
    let throttleSeconds = 0;
    for (let i = 1; i < timeline.length; i += 1) {
      throttleSeconds += (timeline[i - 1]!.throttle / 100) * (timeline[i]!.t - timeline[i - 1]!.t);
    }
    await destroyGuest(where.libvirtUri, name);
    return {
      scenario: sc.name,
      mode: mode.name,
      completed: s.state === 'completed',
      state: s.state,
      seconds: Number(elapsed.toFixed(1)),
      iterations: s.iteration,
      peakThrottle: Math.max(0, ...timeline.map((p) => p.throttle)),
      throttleSeconds: Number(throttleSeconds.toFixed(1)),
      guestWork: Number((Number(r1.pages - r0.pages) / (rate * ((r1.t - r0.t) / 1000))).toFixed(3)),
      baselineMiBps: Math.round(rate / 256),
      afterMiBps: Math.round(after / 256),
      downtimeMs: s.downtimeMs,
      sentMiB: Math.round(s.dataProcessed / 1048576),
      actions: s.actions.length,
      timeline,
    };
  } finally {
    await client.close();
  }
}

function ratio(x: number, y: number): string {
  return y > 0 ? (x / y).toFixed(2) : 'n/a';
}

function report(results: RunResult[]): string {
  const lines = [
    '| scenario | mode | completed | time (s) | iterations | peak throttle % | throttle·s | guest work | guest MiB/s before / after | downtime (ms) | sent (MiB) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    lines.push(`| ${r.scenario} | ${r.mode} | ${r.completed ? 'yes' : `no (${r.state})`} | ${r.seconds} | ${r.iterations} | ${r.peakThrottle} | ${r.throttleSeconds} | ${(r.guestWork * 100).toFixed(0)} % | ${r.baselineMiBps} / ${r.afterMiBps} | ${r.downtimeMs ?? '-'} | ${r.sentMiB} |`);
  }
  lines.push('', 'Controller against stock, per scenario (time ratio, and guest work lost ratio; lower is better):', '');
  for (const sc of new Set(results.map((r) => r.scenario))) {
    const st = results.find((r) => r.scenario === sc && r.mode === 'stock');
    const ct = results.find((r) => r.scenario === sc && r.mode === 'controller');
    if (!st || !ct) continue;
    const lostSt = 1 - st.guestWork;
    const lostCt = 1 - ct.guestWork;
    lines.push(`- ${sc}: stock ${st.completed ? 'completed' : 'did not complete'}, controller ${ct.completed ? 'completed' : 'did not complete'}; time ${ratio(ct.seconds, st.seconds)}x; work lost ${ratio(lostCt, lostSt)}x (${(lostCt * 100).toFixed(0)} % vs ${(lostSt * 100).toFixed(0)} %)`);
  }
  return lines.join('\n');
}

function charts(results: RunResult[], dir: string): void {
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', multiple: true },
      limit: { type: 'string', default: '150' },
      out: { type: 'string', default: 'bench-out' },
    },
  });
  const wanted = values.scenario ?? SCENARIOS.map((s) => s.name);
  const scenarios = SCENARIOS.filter((s) => wanted.includes(s.name));
  const limitS = Number(values.limit);
  mkdirSync(values.out, { recursive: true });
  const lab = await labUp({ agents: true });
  const results: RunResult[] = [];
  try {
    const [a, b] = lab.hosts;
    if (!a?.agentUrl || !b?.agentUrl) throw new Error('lab hosts came up without agents');
    for (const sc of scenarios) {
      for (const mode of MODES) {
        console.log(`-- ${sc.name} / ${mode.label}`);
        const r = await runOne(a, b, sc, mode, limitS);
        console.log(`   ${r.completed ? 'completed' : r.state} in ${r.seconds} s, ${r.iterations} iterations, peak throttle ${r.peakThrottle} %, guest work ${(r.guestWork * 100).toFixed(0)} %, downtime ${r.downtimeMs ?? '-'} ms`);
        results.push(r);
      }
    }
  } finally {
    await labDown();
  }
  const md = `# Convergence benchmark\n\nRun ${new Date().toISOString()} on the lab (TCG, 1 vCPU guests). Runs of one scenario are side by side in one run; a run not done after ${limitS} s is cancelled.\n\n${report(results)}\n`;
  writeFileSync(`${values.out}/converge.md`, md);
  writeFileSync(`${values.out}/converge.json`, JSON.stringify(results, null, 2));
  charts(results, values.out);
  console.log(`\n${md}`);
}

await main();
