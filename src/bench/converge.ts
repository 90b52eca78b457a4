// Convergence benchmark on the lab (`npm run bench:converge`): for each scenario, side by side in one
// run, (a) plain pre-copy without auto-converge, (b) QEMU's stock auto-converge (20/10), (c) the agent's
// controller. Writes bench-out/converge.{md,json} and one SVG chart per scenario.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { labDown, labUp } from '../lab/index.js';
import { charts, report, type RunResult } from './report.js';
import { MODES, runOne, SCENARIOS, sleep, type Scenario } from './run-migration.js';

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
