// Convergence benchmark on the lab (`npm run bench:converge`): for each scenario, side by side in one
// run, (a) plain pre-copy without auto-converge, (b) QEMU's stock auto-converge (20/10), (c) the agent's
// controller. Writes bench-out/converge.{md,json} and one SVG chart per scenario.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AgentClient } from '../client/client.js';
import { readTlsPaths, type TlsPaths } from '../client/tls.js';
import type { MigrateParams } from '../api/params.js';
import { isMigrationActive, type MigrationStatus } from '../api/results.js';
import { defineGuest, destroyGuest, labDown, labUp, readGuestProgress, readGuestStatus, type LabHostInfo } from '../lab/index.js';
import { charts, report, type Point, type RunResult } from './report.js';

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

async function runOne(a: LabHostInfo, b: LabHostInfo, tls: TlsPaths, sc: Scenario, mode: Mode, limitS: number): Promise<RunResult> {
  const name = `bench-${sc.name}-${mode.name}`;
  await defineGuest({ host: 'a', name, ramMiB: sc.ramMiB, wsMiB: sc.wsMiB, rateMiB: sc.rateMiB });
  const rate = await baselineRate(a.libvirtUri, name, 3000);
  const client = await AgentClient.connect(a.agentUrl!, { tls: readTlsPaths(tls) });
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
    while (isMigrationActive(s.state)) {
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
    const span = (r1.t - r0.t) / 1000;
    const work = Number(r1.pages - r0.pages) / (rate * span);
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
      guestWork: Number(work.toFixed(3)),
      workLostSec: Number((span * (1 - work)).toFixed(1)),
      baselineMiBps: Math.round(rate / 256),
      afterMiBps: Math.round(after / 256),
      downtimeMs: s.downtimeMs,
      ...(s.error ? { error: `${s.error.name}: ${s.error.message}` } : {}),
      sentMiB: Math.round(s.dataProcessed / 1048576),
      actions: s.actions.length,
      timeline,
    };
  } finally {
    await client.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', multiple: true },
      limit: { type: 'string', default: '150' },
      out: { type: 'string', default: 'bench-out' },
      /** only rewrite the report from saved converge.json files (later files replace scenarios) */
      from: { type: 'string', multiple: true },
    },
  });
  mkdirSync(values.out, { recursive: true });
  const limitS = Number(values.limit);
  let results: RunResult[] = [];
  let header: string;
  if (values.from) {
    for (const f of values.from) {
      const more = JSON.parse(readFileSync(f, 'utf8')) as RunResult[];
      const names = new Set(more.map((r) => r.scenario));
      results = [...results.filter((r) => !names.has(r.scenario)), ...more];
    }
    header = `Merged from ${values.from.length} run(s); the three modes of a scenario always come from one run.`;
  } else {
    const wanted = values.scenario ?? SCENARIOS.map((s) => s.name);
    results = await runAll(SCENARIOS.filter((s) => wanted.includes(s.name)), limitS);
    header = `Run ${new Date().toISOString()}.`;
  }
  const md = `# Convergence benchmark\n\n${header} Lab: two libvirt hosts on one 2-core machine, TCG, 1-vCPU guests. A run not done after ${limitS} s is cancelled.\n\n${report(results)}\n`;
  writeFileSync(`${values.out}/converge.md`, md);
  writeFileSync(`${values.out}/converge.json`, JSON.stringify(results, null, 2));
  charts(results, values.out);
  console.log(`\n${md}`);
}

async function runAll(scenarios: Scenario[], limitS: number): Promise<RunResult[]> {
  const lab = await labUp({ agents: true });
  const results: RunResult[] = [];
  try {
    const [a, b] = lab.hosts;
    if (!a?.agentUrl || !b?.agentUrl) throw new Error('lab hosts came up without agents');
    for (const sc of scenarios) {
      for (const mode of MODES) {
        console.log(`-- ${sc.name} / ${mode.label}`);
        let r = await runOne(a, b, lab.tls, sc, mode, limitS);
        // a failure before the first pass is the lab, not the mode (e.g. another lab on this machine
        // holding the incoming migration port): run it again
        for (let retry = 0; retry < 2 && r.state === 'failed' && r.iterations === 0; retry += 1) {
          console.log(`   failed before the first pass (${r.error ?? 'no error'}); again`);
          await sleep(5000);
          r = await runOne(a, b, lab.tls, sc, mode, limitS);
        }
        console.log(`   ${r.completed ? 'completed' : r.state} in ${r.seconds} s, ${r.iterations} iterations, peak throttle ${r.peakThrottle} %, guest work ${(r.guestWork * 100).toFixed(0)} % (${r.workLostSec} s lost), downtime ${r.downtimeMs ?? '-'} ms`);
        results.push(r);
      }
    }
  } finally {
    await labDown();
  }
  return results;
}

await main();
