// Concurrency benchmark on the lab (`npm run bench:concurrency`): 2 and 4 guests migrated from a to b
// all at once against one at a time (total time, guest work lost), and the source agent's RPC latency
// (VM.migrateStatus at 20 calls/s) and resident memory, idle and with 4 migrations in flight.
// Writes <out>/concurrency.{md,json} (default docs/bench).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parseArgs } from 'node:util';
import { labDown, labUp, type LabInfo } from '../lab/index.js';
import { startProbe, type Probe, type ProbeResult } from './agent-probe.js';
import { runBatch, type BatchMode, type BatchResult } from './batch.js';
import { concurrencyReport, type ConcurrencyRun } from './concurrency-report.js';
import { sleep } from './guest-work.js';
import { SCENARIOS } from './run-migration.js';

const SCENARIO = SCENARIOS.find((s) => s.name === 'light')!;
const RATE = 20;
/** outgoing and incoming limit of the lab's agents in this benchmark: every guest at once */
const LIMIT = 4;

async function freshLab(): Promise<LabInfo> {
  // The lab's agents take their limits from the environment they start in: room for every guest at once.
  process.env.VMIGRATED_MAX_OUTGOING = String(LIMIT);
  process.env.VMIGRATED_MAX_INCOMING = String(LIMIT);
  let lab = await labUp({ agents: true });
  if (lab.alreadyUp) {
    // agents of an earlier lab run with their own limits
    await labDown();
    lab = await labUp({ agents: true });
  }
  return lab;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      guests: { type: 'string', default: '2,4' },
      limit: { type: 'string', default: '300' },
      idle: { type: 'string', default: '15' },
      out: { type: 'string', default: 'docs/bench' },
      /** report name: <out>/<name>.{md,json} */
      name: { type: 'string', default: 'concurrency' },
      /** what-if: run the source agent's and this probe's main threads at this nice value (e.g. -10),
       *  as a unit with a higher CPU weight than the guests would; empty: as the lab starts them */
      nice: { type: 'string', default: '' },
      /** only rewrite <out>/<name>.md from a saved <name>.json */
      from: { type: 'string' },
    },
  });
  const nice = values.nice === '' ? null : Number(values.nice);
  if (values.from) {
    // only rewrite the report from a saved run
    const run = JSON.parse(readFileSync(values.from, 'utf8')) as ConcurrencyRun;
    writeFileSync(`${values.out}/${values.name}.md`, concurrencyReport(run));
    return;
  }
  const sizes = values.guests.split(',').map(Number);
  const limitS = Number(values.limit);
  const started = new Date().toISOString();
  mkdirSync(values.out, { recursive: true });
  const lab = await freshLab();
  const batches: BatchResult[] = [];
  let idle: ProbeResult | undefined;
  let loaded: ProbeResult | undefined;
  const loadedGuests = Math.max(...sizes);
  try {
    const [a, b] = lab.hosts;
    if (!a?.agentUrl || !b?.agentUrl || !a.agentPid) throw new Error('lab hosts came up without agents');
    const agentPid = a.agentPid;
    if (nice !== null) {
      // the main (event-loop) threads only: Linux nice values are per thread
      setPriority(agentPid, nice);
      setPriority(nice);
    }
    for (const n of sizes) {
      for (const mode of ['sequential', 'concurrent'] as BatchMode[]) {
        console.log(`-- ${n} guests, ${mode}`);
        // the loaded window: from all asked for to the first end
        const win: { probe: Probe | null; result: Promise<ProbeResult> | null } = { probe: null, result: null };
        const measure = n === loadedGuests && mode === 'concurrent';
        const r = await runBatch({
          a, b, tls: lab.tls, scenario: SCENARIO, guests: n, mode, limitS, tag: `${n}${mode[0]}`,
          ...(measure
            ? {
                onStarted: (vms: string[]) => void startProbe(a.agentUrl!, lab.tls, agentPid, () => vms, RATE, a.metricsUrl).then((p) => (win.probe = p)),
                onGuestEnd: () => {
                  if (win.probe && !win.result) win.result = win.probe.stop();
                },
              }
            : {}),
        });
        if (measure) loaded = await (win.result ?? win.probe?.stop() ?? Promise.reject(new Error('the probe never started')));
        console.log(`   total ${r.totalSec} s, work lost ${r.workLostSec} s, ${r.completed}/${n} completed: ${r.runs.map((x) => `${x.vm} ${x.state} ${x.seconds} s`).join(', ')}`);
        batches.push(r);
      }
      if (!idle) {
        // the agent with nothing in flight, holding the statuses of the migrations so far
        const vms = batches.flatMap((x) => x.runs.map((g) => g.vm));
        await sleep(2000);
        const p = await startProbe(a.agentUrl, lab.tls, agentPid, () => vms, RATE, a.metricsUrl);
        await sleep(Number(values.idle) * 1000);
        idle = await p.stop();
        console.log(`   idle agent: p50 ${idle.p50Ms} ms, p99 ${idle.p99Ms} ms, RSS ${idle.rssMaxMiB} MiB`);
      }
    }
  } finally {
    await labDown();
  }
  if (!idle || !loaded) throw new Error('no agent measurement');
  const run: ConcurrencyRun = {
    started,
    ended: new Date().toISOString(),
    nice,
    limit: LIMIT,
    rate: RATE,
    scenario: SCENARIO,
    batches,
    idle,
    loaded,
    loadedGuests,
  };
  writeFileSync(`${values.out}/${values.name}.json`, JSON.stringify(run, null, 2));
  const md = concurrencyReport(run);
  writeFileSync(`${values.out}/${values.name}.md`, md);
  console.log(`\n${md}`);
}

await main();
