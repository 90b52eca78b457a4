// Convergence benchmark on the lab (`npm run bench:converge`): for each scenario, side by side in one
// run, QEMU's stock auto-converge (20/10), the agent's controller (with VM.estimateMigration asked
// first), and a sweep of fixed throttles whose best in hindsight is the oracle (./oracle.ts; T = 0 is
// plain pre-copy). Writes <out>/converge.{md,json} and one SVG chart per scenario.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { labDown, labUp, type LabHostInfo } from '../lab/index.js';
import type { TlsPaths } from '../client/tls.js';
import { sleep } from './guest-work.js';
import { cutAbove, nextThrottle, skippedRuns, SWEEP } from './oracle.js';
import { charts, report, sweepOf, type RunResult, type ScenarioInfo } from './report.js';
import { budgetSec, fixedMode, MODES, runOne, SCENARIOS, type Mode, type RunExtras, type Scenario } from './run-migration.js';

/** Extra seconds the benchmark waits past the budget before it cancels (the agent aborts at the budget). */
const LIMIT_MARGIN_SEC = 10;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', multiple: true },
      /** the throttles swept (default: all of SWEEP) */
      sweep: { type: 'string' },
      out: { type: 'string', default: 'bench-out' },
      /** only rewrite the report from saved converge.json files (later files replace scenarios) */
      from: { type: 'string', multiple: true },
    },
  });
  mkdirSync(values.out, { recursive: true });
  let results: RunResult[] = [];
  let header: string;
  if (values.from) {
    for (const f of values.from) {
      const more = JSON.parse(readFileSync(f, 'utf8')) as RunResult[];
      const names = new Set(more.map((r) => r.scenario));
      results = [...results.filter((r) => !names.has(r.scenario)), ...more];
    }
    header = `Merged from ${values.from.length} run(s); the runs of a scenario always come from one run.`;
  } else {
    const wanted = values.scenario ?? SCENARIOS.map((s) => s.name);
    const unknown = wanted.filter((w) => !SCENARIOS.some((s) => s.name === w));
    if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')} (one of ${SCENARIOS.map((s) => s.name).join(', ')})`);
    const sweep = values.sweep ? values.sweep.split(',').map(Number) : [...SWEEP];
    if (sweep.some((t) => !SWEEP.includes(t))) throw new Error(`--sweep takes throttles from ${SWEEP.join(',')}`);
    const started = Date.now();
    const run = await runAll(SCENARIOS.filter((s) => wanted.includes(s.name)), sweep, values.out);
    results = run.results;
    header = `Run ${new Date(started).toISOString()}, ${((Date.now() - started) / 60_000).toFixed(0)} min, QEMU ${run.qemu}.`;
  }
  const info: ScenarioInfo[] = SCENARIOS.map((s) => ({ name: s.name, about: s.about ?? '', budgetSec: budgetSec(s) }));
  const md = `# Convergence benchmark\n\n${header} Lab: two libvirt hosts on one 2-core machine, TCG, 1-vCPU guests. The time budget of a scenario is the default policy's completion timeout for the guest's RAM; the agent aborts any migration at that point.\n\n${report(results, info)}\n`;
  writeFileSync(`${values.out}/converge.md`, md);
  writeFileSync(`${values.out}/converge.json`, JSON.stringify(results, null, 2));
  charts(results, values.out);
  console.log(`\n${md}`);
}

function describe(r: RunResult): string {
  const what = r.dominated ? `cut at ${r.seconds} s (lost ${r.workLostSec} s)` : `${r.completed ? 'completed' : r.state} in ${r.seconds} s`;
  return `${what}, ${r.iterations} iterations, peak throttle ${r.peakThrottle} %, guest work ${(r.guestWork * 100).toFixed(0)} % (${r.workLostSec} s lost), downtime ${r.downtimeMs ?? '-'} ms`;
}

/** One run; a failure before the first pass is the lab (e.g. the incoming port still held), not the
 *  mode: run it again. */
async function runMode(a: LabHostInfo, b: LabHostInfo, tls: TlsPaths, sc: Scenario, mode: Mode, extras: RunExtras): Promise<RunResult> {
  console.log(`-- ${sc.name} / ${mode.label}`);
  const limit = budgetSec(sc) + LIMIT_MARGIN_SEC;
  let r = await runOne(a, b, tls, sc, mode, limit, extras);
  for (let retry = 0; retry < 2 && r.state === 'failed' && r.iterations === 0; retry += 1) {
    console.log(`   failed before the first pass (${r.error ?? 'no error'}); again`);
    await sleep(5000);
    r = await runOne(a, b, tls, sc, mode, limit, extras);
  }
  console.log(`   ${describe(r)}`);
  return r;
}

async function runAll(scenarios: Scenario[], sweep: number[], out: string): Promise<{ results: RunResult[]; qemu: string }> {
  const lab = await labUp({ agents: true });
  const results: RunResult[] = [];
  try {
    const [a, b] = lab.hosts;
    if (!a?.agentUrl || !b?.agentUrl) throw new Error('lab hosts came up without agents');
    for (const sc of scenarios) {
      results.push(await runMode(a, b, lab.tls, sc, MODES.find((m) => m.name === 'stock')!, {}));
      results.push(await runMode(a, b, lab.tls, sc, MODES.find((m) => m.name === 'controller')!, { estimate: true }));
      for (let t = nextThrottle(sweep, []); t !== null; t = nextThrottle(sweep, sweepOf(results, sc.name))) {
        const cut = cutAbove(sweepOf(results, sc.name));
        results.push(await runMode(a, b, lab.tls, sc, fixedMode(t), cut === null ? {} : { cutAboveLossSec: cut }));
      }
      for (const s of skippedRuns(sweep, sweepOf(results, sc.name))) {
        results.push({ scenario: sc.name, mode: 'fixed', throttle: s.throttle, skipped: true, completed: false, state: 'skipped', seconds: 0, iterations: 0, peakThrottle: 0, throttleSeconds: 0, guestWork: 0, workLostSec: 0, baselineMiBps: 0, afterMiBps: null, downtimeMs: null, sentMiB: 0, actions: 0, timeline: [] });
      }
      // partial results survive a later failure
      writeFileSync(`${out}/converge.partial.json`, JSON.stringify(results, null, 2));
    }
  } finally {
    await labDown();
  }
  return { results, qemu: lab.qemu.version };
}

await main();
