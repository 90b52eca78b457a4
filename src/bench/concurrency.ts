// Concurrency benchmark on the lab (`npm run bench:concurrency`): 2 and 4 guests migrated from a to b
// all at once against one at a time (total time, guest work lost), and the source agent's RPC latency
// (VM.migrateStatus at 20 calls/s) and resident memory, idle and with 4 migrations in flight.
// Writes <out>/concurrency.{md,json} (default docs/bench).
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { labDown, labUp, type LabInfo } from '../lab/index.js';
import { startProbe, type Probe, type ProbeResult } from './agent-probe.js';
import { runBatch, type BatchMode, type BatchResult } from './batch.js';
import { agentTable, batchTable, perGuestTable, type ConcurrencyRun } from './concurrency-report.js';
import { SCENARIOS, sleep } from './run-migration.js';

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
    },
  });
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
  const run: ConcurrencyRun = { batches, idle, loaded, loadedGuests };
  const md = [
    '# Concurrent migrations from one host',
    '',
    `Run ${started} to ${new Date().toISOString()} (\`npm run bench:concurrency\`). Lab: two libvirt hosts on one 2-core machine (shared with other work), TCG, ` +
      `1-vCPU guests; the agents allow ${LIMIT} outgoing and incoming migrations at once. Each guest: ${SCENARIO.ramMiB} MiB, ` +
      `${SCENARIO.wsMiB} MiB working set dirtied at ${SCENARIO.rateMiB} MiB/s, bandwidth cap ${SCENARIO.bandwidth} MiB/s, the agent's controller (default policy).`,
    '',
    'All guests of a batch are booted before it starts and run throughout, so they compete for the same CPU either way. ' +
      "A guest's work lost = (its migration's span) × (1 − work done ÷ work at its own rate measured just before the batch, with the others running); " +
      'summed over the guests. Total time: from the first VM.migrate to the last end.',
    '',
    batchTable(batches),
    '',
    `## The agent under load`,
    '',
    `VM.migrateStatus round trips on one mutual-TLS WebSocket connection at ${RATE} calls/s (open loop), measured by a client on the same machine; ` +
      `RSS of the source agent from /proc every 500 ms; load = the machine's 1-minute load average at the window's start and end (2 cores). ` +
      `To tell the agent's delay from the machine's: the agent's own event-loop delay over the window (p99/max, from its /metrics), ` +
      `and how late the probing client's own timer fired (p99), which no agent can cause. Idle: nothing in flight, after the first batches (their statuses kept). ` +
      `Loaded: from the moment all ${loadedGuests} migrations of the concurrent batch were asked for until the first of them ended.`,
    '',
    agentTable(run),
    '',
    '## Per guest',
    '',
    perGuestTable(batches),
    '',
  ].join('\n');
  writeFileSync(`${values.out}/concurrency.md`, md);
  writeFileSync(`${values.out}/concurrency.json`, JSON.stringify(run, null, 2));
  console.log(`\n${md}`);
}

await main();
