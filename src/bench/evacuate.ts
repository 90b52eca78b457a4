// Evacuation benchmark on a lab of three hosts (`npm run bench:evacuate`): host a runs six mixed
// guests (light, moderate, heavy dirtying guests and the real Linux guest); side by side in one run it
// empties a into b and c three ways: the agent's Host.evacuate, all six at once with QEMU's stock
// auto-converge, and one at a time with stock. Host a's migration uplink is shaped at BANDWIDTH
// (`lab shape`: one tc HTB class on lo that all of a's outgoing migration streams share, as on a real
// NIC) for every way; the naive ways compete on it blindly (no per-migration cap), the agent is told
// the link's rate and splits it. Reports total time, guest work lost, worst downtime and failures;
// writes bench-out/evacuate.{md,json} and a timeline chart per way (SVG).
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { EvacuationStatus } from '../api/evacuation.js';
import { isMigrationActive, type MigrationStatus } from '../api/results.js';
import { AgentClient } from '../client/client.js';
import { readTlsPaths } from '../client/tls.js';
import { defineGuest, defineLinuxGuest, destroyGuest, kernelFailure, labDown, labUp, readGuestProgress, readGuestStatus, readLinuxWork, restartAgent, shapeUplink, unshapeUplink, type LabHostInfo, type LabInfo } from '../lab/index.js';

interface Guest {
  name: string;
  kind: 'dirtying' | 'linux';
  ramMiB: number;
  wsMiB: number;
  rateMiB: number;
}

const GUESTS: Guest[] = [
  { name: 'light1', kind: 'dirtying', ramMiB: 256, wsMiB: 32, rateMiB: 10 },
  { name: 'light2', kind: 'dirtying', ramMiB: 256, wsMiB: 32, rateMiB: 20 },
  { name: 'moderate1', kind: 'dirtying', ramMiB: 512, wsMiB: 128, rateMiB: 100 },
  { name: 'moderate2', kind: 'dirtying', ramMiB: 512, wsMiB: 128, rateMiB: 150 },
  { name: 'heavy', kind: 'dirtying', ramMiB: 1024, wsMiB: 512, rateMiB: 400 },
  { name: 'linux', kind: 'linux', ramMiB: 512, wsMiB: 128, rateMiB: 100 },
];

type Way = 'agent' | 'all-at-once-stock' | 'one-at-a-time-stock';
const WAYS: { way: Way; label: string }[] = [
  { way: 'agent', label: "the agent's evacuation (Host.evacuate)" },
  { way: 'all-at-once-stock', label: 'all 6 at once, stock auto-converge' },
  { way: 'one-at-a-time-stock', label: 'one at a time, stock auto-converge' },
];

interface VmResult {
  name: string;
  destination: string | null;
  state: string;
  /** s from the way's start */
  start: number | null;
  end: number | null;
  downtimeMs: number | null;
  workLostSec: number;
  /** a Linux guest's kernel failure after its migration (QEMU 7.2's TCG bug, docs/lab.md), or that it
   *  stopped reporting work; null: it went on working (or is not a Linux guest) */
  guestFailure?: string | null;
}

interface WayResult {
  way: Way;
  totalSec: number;
  workLostSec: number;
  worstDowntimeMs: number | null;
  failures: number;
  vms: VmResult[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** MiB/s of host a's shaped uplink, and what the agent's evacuation is told the link has */
const BANDWIDTH = 100;

/** What a guest has done so far: pages (dirtying guest) or MB (Linux guest), and when it was read. */
async function workNow(g: Guest, hosts: LabHostInfo[], serial: string): Promise<number> {
  if (g.kind === 'linux') return (await readLinuxWork(serial)).windows.reduce((s, w) => s + w.workMB, 0);
  for (const h of hosts) {
    const p = await readGuestProgress(h.libvirtUri, g.name).catch(() => null);
    if (p !== null) return Number(p);
  }
  throw new Error(`${g.name}: progress not readable on any host`);
}

async function boot(a: LabHostInfo, lab: LabInfo): Promise<Map<string, string>> {
  const serials = new Map<string, string>();
  for (const g of GUESTS) {
    if (g.kind === 'linux') {
      const info = await defineLinuxGuest({ host: 'a', name: g.name, ramMiB: g.ramMiB, wsMiB: g.wsMiB, rateMiB: g.rateMiB, load: 'steady', dir: lab.dir });
      serials.set(g.name, info.serialLog);
    } else {
      await defineGuest({ host: 'a', name: g.name, ramMiB: g.ramMiB, wsMiB: g.wsMiB, rateMiB: g.rateMiB, dir: lab.dir });
    }
  }
  const deadline = Date.now() + 180_000;
  for (const g of GUESTS) {
    for (;;) {
      if (Date.now() > deadline) throw new Error(`${g.name} did not come up`);
      if (g.kind === 'linux') {
        if ((await readLinuxWork(serials.get(g.name)!)).windows.length >= 2) break;
      } else if (((await readGuestStatus(a.libvirtUri, g.name).catch(() => null))?.passes ?? 0) >= 1) break;
      await sleep(500);
    }
  }
  return serials;
}

/** Starts the migrations of one naive way and follows them; returns per VM start/end and status. */
async function naive(client: AgentClient, dsts: string[], oneAtATime: boolean, t0: number, limitMs: number): Promise<Map<string, { start: number; status: MigrationStatus }>> {
  const out = new Map<string, { start: number; status: MigrationStatus }>();
  const follow = async (name: string): Promise<MigrationStatus> => {
    let s = await client.migrateStatus({ vmId: name });
    while (isMigrationActive(s.state)) {
      if (performance.now() - t0 > limitMs) {
        s = await client.migrateCancel({ vmId: name }).catch(() => s);
        break;
      }
      await sleep(500);
      s = await client.migrateStatus({ vmId: name });
    }
    return s;
  };
  const startOne = async (name: string, i: number): Promise<void> => {
    const start = (performance.now() - t0) / 1000;
    // no bandwidth cap: the migrations share a's shaped uplink as TCP flows do on a real NIC
    await client.migrate({ vmId: name, dst: dsts[i % dsts.length]!, policy: 'stock' });
    out.set(name, { start, status: await follow(name) });
  };
  if (oneAtATime) for (const [i, g] of GUESTS.entries()) await startOne(g.name, i);
  else await Promise.all(GUESTS.map((g, i) => startOne(g.name, i)));
  return out;
}

async function runWay(way: Way, lab: LabInfo, limitMs: number): Promise<WayResult> {
  const [a, b, c] = lab.hosts as [LabHostInfo, LabHostInfo, LabHostInfo];
  const hosts = [a, b, c];
  const serials = await boot(a, lab);
  const client = await AgentClient.connect(a.agentUrl!, { tls: readTlsPaths(lab.tls) });
  try {
    // each guest's rate with all six running on a: the same contention for every way
    const w0 = await Promise.all(GUESTS.map((g) => workNow(g, hosts, serials.get(g.name) ?? '')));
    const b0 = performance.now();
    await sleep(6000);
    const w1 = await Promise.all(GUESTS.map((g) => workNow(g, hosts, serials.get(g.name) ?? '')));
    const rates = GUESTS.map((_g, i) => (w1[i]! - w0[i]!) / ((performance.now() - b0) / 1000));
    const t0 = performance.now();
    const wall0 = Date.now();
    const at = (iso: string | null | undefined) => (iso ? (Date.parse(iso) - wall0) / 1000 : null);
    const dsts = [b.agentUrl!, c.agentUrl!];
    const per = new Map<string, { start: number | null; end: number | null; state: string; destination: string | null; downtimeMs: number | null }>();
    if (way === 'agent') {
      const { evacuationId } = await client.evacuate({ destinations: dsts, bandwidth: BANDWIDTH });
      let s: EvacuationStatus = await client.evacuationStatus({ evacuationId });
      while (s.state === 'planning' || s.state === 'running') {
        if (performance.now() - t0 > limitMs) await client.evacuationCancel({ evacuationId, abortRunning: true }).catch(() => undefined);
        await sleep(1000);
        s = await client.evacuationStatus({ evacuationId });
      }
      for (const v of s.vms) {
        const m = v.migration;
        per.set(v.vmName, { start: at(m?.startedAt), end: at(m?.endedAt), state: v.state, destination: v.destination, downtimeMs: m?.downtimeMs ?? null });
      }
      console.log(s.vms.map((v) => `   ${v.order}. ${v.vmName}: ${v.orderReason}`).join('\n'));
    } else {
      const r = await naive(client, dsts, way === 'one-at-a-time-stock', t0, limitMs);
      for (const [name, x] of r) {
        per.set(name, { start: x.start, end: x.status.endedAt ? x.start + x.status.elapsedMs / 1000 : null, state: x.status.state === 'completed' ? 'done' : x.status.state, destination: x.status.destination, downtimeMs: x.status.downtimeMs });
      }
    }
    const totalSec = (performance.now() - t0) / 1000;
    const linuxWindows = () => Promise.all(GUESTS.map(async (g) => (g.kind === 'linux' ? (await readLinuxWork(serials.get(g.name)!)).windows.length : 0)));
    const windowsAtEnd = await linuxWindows();
    // the same settling time after the end for every way (a Linux guest runs slowly just after)
    await sleep(10_000);
    const w2 = await Promise.all(GUESTS.map((g) => workNow(g, hosts, serials.get(g.name) ?? '')));
    // a Linux guest that migrated last may fail within the settling time, where its work counts little:
    // the report says so rather than leave it to the work lost
    const windowsAfter = await linuxWindows();
    const failures = await Promise.all(
      GUESTS.map(async (g, i) => {
        if (g.kind !== 'linux') return null;
        const k = await kernelFailure(serials.get(g.name)!);
        return k ? `kernel: ${k}` : windowsAfter[i]! === windowsAtEnd[i]! ? 'stopped reporting work' : null;
      }),
    );
    const span = (performance.now() - t0) / 1000;
    const vms: VmResult[] = GUESTS.map((g, i) => {
      const p = per.get(g.name);
      const done = rates[i]! > 0 ? (w2[i]! - w1[i]!) / rates[i]! : span;
      return { name: g.name, destination: p?.destination ?? null, state: p?.state ?? 'not started', start: p?.start ?? null, end: p?.end ?? null, downtimeMs: p?.downtimeMs ?? null, workLostSec: Math.max(0, Number((span - done).toFixed(1))), ...(g.kind === 'linux' ? { guestFailure: failures[i] ?? null } : {}) };
    });
    const downs = vms.map((v) => v.downtimeMs).filter((d): d is number => d !== null);
    return {
      way,
      totalSec: Number(totalSec.toFixed(1)),
      workLostSec: Number(vms.reduce((s, v) => s + v.workLostSec, 0).toFixed(1)),
      worstDowntimeMs: downs.length ? Math.max(...downs) : null,
      failures: vms.filter((v) => v.state !== 'done').length,
      vms,
    };
  } finally {
    await client.close();
    for (const h of hosts) for (const g of GUESTS) await destroyGuest(h.libvirtUri, g.name).catch(() => undefined);
  }
}

function gantt(r: WayResult, maxSec: number): string {
  const W = 640;
  const row = 22;
  const x = (s: number) => 110 + (s / maxSec) * (W - 130);
  const bars = r.vms.map((v, i) => {
    const y = 30 + i * row;
    const bar = v.start !== null && v.end !== null
      ? `<rect x="${x(v.start).toFixed(1)}" y="${y}" width="${Math.max(1, x(v.end) - x(v.start)).toFixed(1)}" height="${row - 6}" fill="${v.state === 'done' ? '#4a90d9' : '#d9534f'}"/>`
      : '';
    return `<text x="4" y="${y + 13}" font-size="12">${v.name}</text>${bar}`;
  });
  const h = 40 + r.vms.length * row;
  const ticks = Array.from({ length: Math.floor(maxSec / 30) + 1 }, (_, i) => `<line x1="${x(i * 30)}" y1="24" x2="${x(i * 30)}" y2="${h - 10}" stroke="#ddd"/><text x="${x(i * 30) - 6}" y="${h}" font-size="10">${i * 30}s</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h + 6}" font-family="sans-serif"><text x="4" y="14" font-size="13">${r.way}: ${r.totalSec} s, ${r.workLostSec} s of guest work lost</text>${ticks.join('')}${bars.join('')}</svg>\n`;
}

function report(results: WayResult[]): string {
  const rows = results.map((r) => `| ${WAYS.find((w) => w.way === r.way)!.label} | ${r.totalSec} | ${r.workLostSec} | ${r.worstDowntimeMs ?? '-'} | ${r.failures} |`);
  const naive = results.filter((r) => r.way !== 'agent');
  const agent = results.find((r) => r.way === 'agent');
  const lines = ['| way | total time (s) | guest work lost (s) | worst downtime (ms) | failures |', '| --- | ---: | ---: | ---: | ---: |', ...rows];
  if (agent && naive.length) {
    const bestT = Math.min(...naive.map((r) => r.totalSec));
    const bestW = Math.min(...naive.map((r) => r.workLostSec));
    lines.push('', `Agent / better naive way: time ${(agent.totalSec / bestT).toFixed(2)}x (target <= 0.5x), work lost ${bestW > 0 ? (agent.workLostSec / bestW).toFixed(2) : '-'}x (target <= 0.5x).`);
  }
  for (const r of results) {
    lines.push('', `${r.way}:`, ...r.vms.map((v) => `- ${v.name}: ${v.state} on ${v.destination ?? '-'}, ${v.start !== null ? v.start.toFixed(1) : '-'} → ${v.end !== null ? v.end.toFixed(1) : '-'} s, downtime ${v.downtimeMs ?? '-'} ms, work lost ${v.workLostSec} s${v.guestFailure === undefined ? '' : v.guestFailure === null ? '; guest kept working' : `; guest failed (${v.guestFailure})`}`));
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'bench-out' }, limit: { type: 'string', default: '300' }, way: { type: 'string', multiple: true } } });
  mkdirSync(values.out, { recursive: true });
  const lab = await labUp({ agents: true, hosts: 3 });
  const results: WayResult[] = [];
  try {
    // room for all six at once on a, and for three each on b and c
    for (const h of ['a', 'b', 'c'] as const) await restartAgent(h, { agentArgs: ['--max-outgoing', '6', '--max-incoming', '6'] });
    const shaped = await shapeUplink('a', BANDWIDTH, { dir: lab.dir });
    console.log(`-- uplink of a shaped at ${shaped.rateMiB} MiB/s (tc class ${shaped.classId} on lo)`);
    for (const w of WAYS.filter((x) => !values.way || values.way.includes(x.way))) {
      console.log(`-- ${w.label}`);
      const r = await runWay(w.way, lab, Number(values.limit) * 1000);
      console.log(`   ${r.totalSec} s, ${r.workLostSec} s of guest work lost, worst downtime ${r.worstDowntimeMs ?? '-'} ms, ${r.failures} failure(s)`);
      results.push(r);
    }
  } finally {
    await unshapeUplink('a', { dir: lab.dir }).catch((e: unknown) => console.error(`unshape: ${String(e)}`));
    await labDown();
  }
  const maxSec = Math.max(30, ...results.map((r) => r.totalSec));
  for (const r of results) writeFileSync(`${values.out}/evacuate-${r.way}.svg`, gantt(r, maxSec));
  const md = `# Evacuation benchmark\n\nRun ${new Date().toISOString()}. Lab: three libvirt hosts on one 2-core machine, QEMU ${lab.qemu.version}, TCG, 1-vCPU guests; six guests on a, emptied into b and c. The link is emulated: all of a's outgoing migration streams share one ${BANDWIDTH} MiB/s uplink (\`vmigrate lab shape a --rate ${BANDWIDTH}\`: a tc HTB class on loopback fed by an nftables rule), for every way; the naive ways start their migrations with no bandwidth cap and compete on it, the agent's evacuation is told the link has ${BANDWIDTH} MiB/s. Guest work lost: over the same window (the run and 10 s after), the work each guest did short of its rate with all six running on a.\n\n${report(results)}\n`;
  writeFileSync(`${values.out}/evacuate.md`, md);
  writeFileSync(`${values.out}/evacuate.json`, JSON.stringify(results, null, 2));
  console.log(`\n${md}`);
}

await main();
