// Shapes a lab host's migration uplink on lo (tc HTB + an nftables rule in the lab's table; the
// rules are in shape-rules.ts). The HTB root on lo is shared by every lab on the machine: a lab adds
// and removes only its own classes, and the root goes when no class is left, under a machine-wide lock.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { LabError, requireRoot } from './errors.js';
import { run, sleep } from './exec.js';
import { dropTableIfEmpty, labChains, nftScript } from './netcut.js';
import { netcutTable } from './netcut-rules.js';
import { HOST_NAMES, hostPlan, labDir, portBase, type HostName } from './paths.js';
import { isAlive } from './procs.js';
import { classId, classesInListing, hostOfMinor, rootInListing, SHAPE_DEV, shapeChain, shapeMinor, shapeScript, tcAddRoot, tcClass, tcDelClass, tcDelRoot, unshapeScript } from './shape-rules.js';

export interface ShapeOptions {
  dir?: string;
  portBase?: number;
}

export interface ShapeResult {
  host: HostName;
  /** MiB/s; null after unshape */
  rateMiB: number | null;
  /** the HTB class on lo and the lab's nft table */
  classId: string;
  table: string;
}

export interface UplinkShape {
  host: HostName;
  rateMiB: number;
  classId: string;
}

const LO_LOCK = '/tmp/vmigrate-lo-shape.lock';

async function tc(args: string[]): Promise<string> {
  const r = await run('tc', args, 10_000);
  if (r.code === 127) throw new LabError("tc not found: install Debian's iproute2 package");
  if (r.code !== 0) throw new LabError(`tc ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Labs on the machine take turns at lo's root qdisc: one lab must not delete the root just as
 *  another adds its class to it. */
async function withLoLock<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(LO_LOCK, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(readFileSync(LO_LOCK, 'utf8').trim());
      if (holder && !(await isAlive(holder))) unlinkSync(LO_LOCK);
      else if (attempt > 100) throw new LabError(`${LO_LOCK} held by pid ${holder}`);
      else await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    unlinkSync(LO_LOCK);
  }
}

/** The uplinks shaped for the lab in `dir` (from lo's HTB classes). */
export async function activeShapes(dir?: string): Promise<UplinkShape[]> {
  const d = labDir(dir);
  const r = await run('tc', ['class', 'show', 'dev', SHAPE_DEV], 10_000);
  if (r.code !== 0) return [];
  const out: UplinkShape[] = [];
  for (const [minor, rateMiB] of classesInListing(r.stdout)) {
    const host = hostOfMinor(d, minor);
    if (host) out.push({ host, rateMiB, classId: classId(minor) });
  }
  return out;
}

/** Caps everything host `host` sends to the lab's other migration listeners at `rateMiB` in total.
 *  Setting it again changes the rate. */
export async function shapeUplink(host: HostName, rateMiB: number, o: ShapeOptions = {}): Promise<ShapeResult> {
  requireRoot('lab shape');
  if (!Number.isFinite(rateMiB) || rateMiB <= 0) throw new LabError(`rate must be a positive number of MiB/s, not ${rateMiB}`, 2);
  const dir = labDir(o.dir);
  const base = portBase(o.portBase);
  const other = (await activeShapes(dir)).find((s) => s.host !== host);
  // sources are not told apart on lo (see shape-rules.ts): two shaped hosts would mark the same streams
  if (other) throw new LabError(`host ${other.host} is shaped already; unshape it first (one shaped uplink per lab)`, 2);
  const minor = shapeMinor(dir, host);
  await withLoLock(async () => {
    const root = rootInListing(await tc(['-j', 'qdisc', 'show', 'dev', SHAPE_DEV]));
    if (root === 'foreign') throw new LabError(`${SHAPE_DEV} has a root qdisc that is not vmigrate's HTB; not replacing it`);
    if (root === 'none') await tc(tcAddRoot());
    await tc(tcClass(minor, rateMiB));
  });
  const others = HOST_NAMES.filter((h) => h !== host).map((h) => hostPlan(dir, h, base));
  await nftScript(shapeScript(netcutTable(dir), host, others, minor));
  return { host, rateMiB, classId: classId(minor), table: netcutTable(dir) };
}

/** Takes the shaping off; harmless when there is none. */
export async function unshapeUplink(host: HostName, o: ShapeOptions = {}): Promise<ShapeResult> {
  requireRoot('lab unshape');
  const dir = labDir(o.dir);
  const table = netcutTable(dir);
  const minor = shapeMinor(dir, host);
  if ((await labChains(dir)).includes(shapeChain(host))) {
    await nftScript(unshapeScript(table, host));
    await dropTableIfEmpty(dir);
  }
  await withLoLock(async () => {
    const classes = classesInListing(await tc(['class', 'show', 'dev', SHAPE_DEV]));
    if (classes.has(minor)) await tc(tcDelClass(minor));
    const root = rootInListing(await tc(['-j', 'qdisc', 'show', 'dev', SHAPE_DEV]));
    if (root === 'ours' && [...classes.keys()].every((m) => m === minor)) await tc(tcDelRoot());
  });
  return { host, rateMiB: null, classId: classId(minor), table };
}

/** Removes every shaped uplink of the lab (what `lab down` does); nothing to do when none is there. */
export async function dropAllShapes(dir?: string): Promise<void> {
  const d = labDir(dir);
  const chains = await labChains(d);
  const shaped = new Set((await activeShapes(d)).map((s) => s.host));
  for (const h of HOST_NAMES) if (shaped.has(h) || chains.includes(shapeChain(h))) await unshapeUplink(h, { dir: d });
}
