// Cost of an encrypted migration stream (`npm run bench:tls`): the heavy scenario under the agent's
// controller (default policy), TLS off and on alternately in one run on the lab. Writes
// <out>/migration-tls.{md,json}.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { TlsPaths } from '../client/tls.js';
import { labDown, labUp, type LabHostInfo } from '../lab/index.js';
import { watchQemuCpu, type QemuCpu } from './qemu-cpu.js';
import { sleep } from './guest-work.js';
import { MODES, runOne, SCENARIOS } from './run-migration.js';
import { tlsReport, type TlsRun } from './tls-report.js';

const SCENARIO = SCENARIOS.find((s) => s.name === 'heavy')!;
const MODE = MODES.find((m) => m.name === 'controller')!;

/** libvirt's pid file of a domain on a lab host (the lab's per-host /run). */
function pidFile(labDir: string, host: LabHostInfo, vm: string): string {
  return join(labDir, host.name, 'run', 'libvirt', 'qemu', `${vm}.pid`);
}

async function runTls(labDir: string, a: LabHostInfo, b: LabHostInfo, api: TlsPaths, tls: boolean, order: number, limitS: number): Promise<TlsRun> {
  let cpu: QemuCpu = { sourceSec: 0, destinationSec: 0 };
  const r = await runOne(a, b, api, SCENARIO, MODE, limitS, {
    params: { tls },
    suffix: `-${order}`,
    watch: (vm) => {
      const w = watchQemuCpu(pidFile(labDir, a, vm), pidFile(labDir, b, vm));
      return { stop: async () => { await w.stop(); cpu = w.result(); } };
    },
  });
  return { ...r, tlsRequested: tls, order, cpu };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pairs: { type: 'string', default: '3' },
      limit: { type: 'string', default: '150' },
      out: { type: 'string', default: 'bench-out' },
    },
  });
  const pairs = Number(values.pairs);
  const limitS = Number(values.limit);
  mkdirSync(values.out, { recursive: true });
  const started = new Date().toISOString();
  const lab = await labUp({ agents: true });
  const runs: TlsRun[] = [];
  try {
    const [a, b] = lab.hosts;
    if (!a?.agentUrl || !b?.agentUrl) throw new Error('lab hosts came up without agents');
    // alternate, so that a change of load on the shared machine falls on both alike
    for (let i = 0; i < pairs * 2; i += 1) {
      const tls = i % 2 === 1;
      console.log(`-- ${SCENARIO.name} / ${MODE.label} / TLS ${tls ? 'on' : 'off'} (${i + 1} of ${pairs * 2})`);
      let r = await runTls(lab.dir, a, b, lab.tls, tls, i + 1, limitS);
      // a failure before the first pass is the lab (e.g. a port held by another lab), not TLS: again
      for (let retry = 0; retry < 2 && r.state === 'failed' && r.iterations === 0; retry += 1) {
        console.log(`   failed before the first pass (${r.error ?? 'no error'}); again`);
        await sleep(5000);
        r = await runTls(lab.dir, a, b, lab.tls, tls, i + 1, limitS);
      }
      console.log(`   ${r.completed ? 'completed' : r.state} in ${r.seconds} s, ${r.iterations} iterations, sent ${r.sentMiB} MiB, work lost ${r.workLostSec} s, downtime ${r.downtimeMs ?? '-'} ms, QEMU CPU ${r.cpu.sourceSec} s source / ${r.cpu.destinationSec} s destination`);
      runs.push(r);
    }
  } finally {
    await labDown();
  }
  const md = [
    '# Cost of an encrypted migration stream (VM.migrate tls)',
    '',
    `Run ${started} to ${new Date().toISOString()}. Scenario ${SCENARIO.name}: ${SCENARIO.ramMiB} MiB guest, ${SCENARIO.wsMiB} MiB working set dirtied at ${SCENARIO.rateMiB} MiB/s, ` +
      `bandwidth cap ${SCENARIO.bandwidth} MiB/s, the agent's controller with the default policy. TLS off and on alternately, ${pairs} of each, ` +
      `one lab (two libvirt hosts on one 2-core machine, TCG, 1 vCPU; TLS with the lab CA's certificates, both ends verified). A run not done after ${limitS} s is cancelled.`,
    '',
    'QEMU CPU = CPU time of the QEMU process outside its vCPU threads (/proc, sampled every 100 ms): on the source from just before ' +
      'VM.migrate to its last reading before it exited (the last <= 100 ms are missed), on the destination from its start to the end of ' +
      'the migration. Guest work as in the convergence benchmark (converge.md).',
    '',
    tlsReport(runs),
    '',
  ].join('\n');
  writeFileSync(join(values.out, 'migration-tls.md'), md);
  writeFileSync(join(values.out, 'migration-tls.json'), JSON.stringify(runs, null, 2));
  console.log(`\n${md}`);
}

await main();
