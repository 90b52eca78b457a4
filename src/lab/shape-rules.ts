// What a shaped uplink of a lab host is, as nftables rules and tc commands (pure).
// The lab's hosts share one network namespace, and an outgoing migration connection to another
// host's 127.0.0.x gets source address 127.0.0.1 from the kernel: sources cannot be told apart by
// address. So the "uplink of host X" is every migration stream of the lab to another host's
// listener (daddr = its migration address, dport in its migration port range): exact while X is the
// only host sending (an evacuation of X); streams between two other hosts would share it too, which
// is why a lab shapes one host at a time. An nft rule in the lab's own table sets those packets'
// priority to the classid of an HTB class of the given rate on lo; HTB takes a packet whose priority
// names one of its leaf classes straight into it, without any tc filter (this machine's kernel has
// no fw classifier, and its u32 ignores `match mark`, which would put ALL of lo into the class). All
// other traffic names no class and goes out directly (HTB's direct queue, `default 0`), unshaped.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { HOST_NAMES, type HostName, type HostPlan } from './paths.js';

/** The HTB root on lo that every vmigrate lab on the machine shares (one class per shaped host). */
export const SHAPE_DEV = 'lo';
export const SHAPE_MAJOR = 0x766d; // "vm"
export const shapeRootHandle = `${SHAPE_MAJOR.toString(16)}:`;
const MiB = 1024 * 1024;

/** The HTB class minor of (lab dir, host): 13 bits from the lab dir, 3 bits for the host (8..65535).
 *  Two labs collide with odds 1/8191. */
export function shapeMinor(dir: string, host: HostName): number {
  const lab = (parseInt(createHash('sha256').update(`vmigrate-shape:${dir}`).digest('hex').slice(0, 8), 16) % 8191) + 1;
  return lab * 8 + HOST_NAMES.indexOf(host);
}

/** The host a class minor of this lab belongs to, if any. */
export function hostOfMinor(dir: string, minor: number): HostName | undefined {
  return HOST_NAMES.find((h) => shapeMinor(dir, h) === minor);
}

export const classId = (minor: number): string => `${shapeRootHandle}${minor.toString(16)}`;
export const shapeChain = (host: HostName): string => `shape_${host}`;

/** Packets of migration streams to every other host's migration listener (the data direction). */
export function shapeRules(others: readonly HostPlan[], minor: number): string[] {
  return others.map((p) => `ip daddr ${p.migrationAddress} tcp dport ${p.migrationPortMin}-${p.migrationPortMax} meta priority set ${classId(minor)}`);
}

/** `nft -f -` script that marks host X's outgoing migration packets (hook output: before lo's qdisc). */
export function shapeScript(table: string, host: HostName, others: readonly HostPlan[], minor: number): string {
  const chain = shapeChain(host);
  return [
    `add table inet ${table}`,
    `add chain inet ${table} ${chain} { type filter hook output priority filter; policy accept; }`,
    `flush chain inet ${table} ${chain}`,
    ...shapeRules(others, minor).map((r) => `add rule inet ${table} ${chain} ${r}`),
    '',
  ].join('\n');
}

/** `nft -f -` script that removes host X's marking; harmless when it is not there. */
export function unshapeScript(table: string, host: HostName): string {
  const chain = shapeChain(host);
  return [`add table inet ${table}`, `add chain inet ${table} ${chain}`, `flush chain inet ${table} ${chain}`, `delete chain inet ${table} ${chain}`, ''].join('\n');
}

/** HTB token bucket: loopback packets are up to 64 KiB (GSO), so the bucket holds several of them
 *  (a bucket smaller than a packet makes HTB send in bursts and stalls); 10 ms at the rate above that. */
export function burstBytes(rateMiB: number): number {
  return Math.max(256 * 1024, Math.round((rateMiB * MiB) / 100));
}

/** `tc` argument lists, run in order. `add` for the root: it must not replace a qdisc someone else put there. */
export const tcAddRoot = (): string[] => ['qdisc', 'add', 'dev', SHAPE_DEV, 'root', 'handle', shapeRootHandle, 'htb', 'default', '0'];

export function tcClass(minor: number, rateMiB: number): string[] {
  const bits = `${Math.round(rateMiB * MiB * 8)}bit`;
  const burst = `${burstBytes(rateMiB)}b`;
  // rate = ceil: the class never borrows; quantum only matters between classes that share a parent
  return ['class', 'replace', 'dev', SHAPE_DEV, 'parent', shapeRootHandle, 'classid', classId(minor), 'htb', 'rate', bits, 'ceil', bits, 'burst', burst, 'cburst', burst, 'quantum', '131072'];
}

export const tcDelClass = (minor: number): string[] => ['class', 'del', 'dev', SHAPE_DEV, 'classid', classId(minor)];

export const tcDelRoot = (): string[] => ['qdisc', 'del', 'dev', SHAPE_DEV, 'root', 'handle', shapeRootHandle];

const TcQdisc = z.object({ kind: z.string(), handle: z.string(), root: z.boolean().optional(), parent: z.string().optional() });

export type RootState = 'none' | 'ours' | 'foreign';

/** What is at the root of lo, from `tc -j qdisc show dev lo`: nothing (noqueue), our HTB, or something else. */
export function rootInListing(json: string): RootState {
  const qdiscs = z.array(TcQdisc).parse(JSON.parse(json));
  const root = qdiscs.find((q) => q.root === true || q.parent === undefined);
  if (!root || root.kind === 'noqueue') return 'none';
  return root.kind === 'htb' && root.handle === shapeRootHandle ? 'ours' : 'foreign';
}

const UNIT: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, tbit: 1e12 };

/** Rates (MiB/s, 0.1 precision) of the HTB classes under our root, by minor, from `tc class show dev lo`
 *  (text: iproute2 6.1 prints HTB classes as text even with -j), e.g.
 *  `class htb 766d:9 root prio 0 rate 419430Kbit ceil 419430Kbit burst 512Kb cburst 512Kb`. */
export function classesInListing(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n')) {
    const m = /^class htb ([0-9a-f]+):([0-9a-f]+) .*?\brate (\d+(?:\.\d+)?)([KMGT]?bit)\b/i.exec(line.trim());
    if (!m || parseInt(m[1]!, 16) !== SHAPE_MAJOR) continue;
    const bitsPerSec = Number(m[3]) * UNIT[m[4]!.toLowerCase()]!;
    out.set(parseInt(m[2]!, 16), Math.round((bitsPerSec / 8 / MiB) * 10) / 10);
  }
  return out;
}
