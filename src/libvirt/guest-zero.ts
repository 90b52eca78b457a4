// The share of a guest's RAM that holds zero pages, sampled from its QEMU process's memory. Pre-copy
// sends a zero page as a flag, so this share decides the size of the first pass. The resident set
// bounds it only loosely: QEMU asks for transparent huge pages on guest RAM, so one touched 4 KiB
// page makes 2 MiB resident (on the lab a Linux guest read 390 MiB resident for 203 MiB of non-zero
// pages, and the pass that followed sent 273 MiB with its re-dirtied working set).
//
// Needs the agent on the hypervisor, allowed to read QEMU's memory (root, as vmigrated runs). QEMU's
// pid comes from a vCPU thread id (QMP query-cpus-fast). The process is checked to be this guest's
// QEMU (libvirt's `-name guest=NAME`) before anything is read, so an agent in another pid namespace
// reads nothing. Page contents are only compared with zero, never kept.
import { open, readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Domain } from './types.js';

const PAGE = 4096;
const MiB = 1024 * 1024;

/** Pages sampled: the share's standard error is at most 1.1 % (11 MiB of a 1 GiB guest). */
export const ZERO_SAMPLE_PAGES = 2048;

const CpusReply = z.object({ return: z.array(z.object({ 'thread-id': z.number().int().positive() })).min(1) });

export interface RamBlock {
  name: string;
  usedBytes: number;
  totalBytes: number;
}

/** The rows of HMP `info ramblock` (pure): name, used and total bytes. */
export function parseRamBlocks(text: string): RamBlock[] {
  const rows: RamBlock[] = [];
  for (const line of text.split('\n')) {
    // "  pc.ram    4 KiB  0x0000000000000000 0x0000000020000000 0x0000000020000000"
    const m = /^\s*(\S+)\s+\d+\s+[KMG]iB\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)/i.exec(line);
    if (m) rows.push({ name: m[1]!, usedBytes: parseInt(m[2]!, 16), totalBytes: parseInt(m[3]!, 16) });
  }
  return rows;
}

/** The guest RAM block's mapping in /proc/PID/maps (pure): writable, not executable (TCG's code
 *  buffer can have the same size), exactly `bytes` long. */
export function findRamMapping(maps: string, bytes: number): { start: number; end: number } | null {
  for (const line of maps.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S{4})/.exec(line);
    if (!m) continue;
    const start = parseInt(m[1]!, 16);
    const end = parseInt(m[2]!, 16);
    const perms = m[3]!;
    if (end - start === bytes && perms[0] === 'r' && perms[1] === 'w' && perms[2] !== 'x') return { start, end };
  }
  return null;
}

/** Whether a process's argv (NUL-separated /proc/PID/cmdline) is the QEMU of guest `name` (pure). */
export function isGuestQemu(cmdline: string, name: string): boolean {
  const args = cmdline.split('\0');
  const i = args.indexOf('-name');
  const value = i >= 0 ? args[i + 1] : undefined;
  return value !== undefined && (value === name || value === `guest=${name}` || value.startsWith(`guest=${name},`));
}

/** The share of `pages` pages that are all zero, from `samples` pages picked at random (pure but
 *  for the reader it is given). */
export async function sampleZeroShare(readPage: (index: number) => Promise<Buffer>, pages: number, samples = ZERO_SAMPLE_PAGES, random: () => number = Math.random): Promise<number> {
  const zero = Buffer.alloc(PAGE);
  const n = Math.min(samples, pages);
  if (n <= 0) return 0;
  let zeros = 0;
  for (let k = 0; k < n; k += 1) {
    const page = await readPage(Math.floor(random() * pages));
    if (page.equals(zero)) zeros += 1;
  }
  return zeros / n;
}

export interface ZeroSample {
  /** share of guest RAM in zero pages, 0..1 */
  share: number;
  /** the RAM block sampled, MiB */
  ramMiB: number;
  sampled: number;
}

/** QEMU's pid from one of its vCPU threads, checked to be this guest's QEMU. */
async function qemuPid(domain: Domain): Promise<number> {
  const reply = CpusReply.parse(JSON.parse(await domain.qemuMonitorCommand(JSON.stringify({ execute: 'query-cpus-fast' }))));
  const tid = reply.return[0]!['thread-id'];
  const status = await readFile(`/proc/${tid}/status`, 'utf8');
  const tgid = /^Tgid:\s+(\d+)/m.exec(status)?.[1];
  if (tgid === undefined) throw new Error(`no Tgid in /proc/${tid}/status`);
  const pid = Number(tgid);
  if (!isGuestQemu(await readFile(`/proc/${pid}/cmdline`, 'utf8'), domain.name)) throw new Error(`process ${pid} is not the QEMU of ${domain.name} (another pid namespace?)`);
  return pid;
}

/** Samples the guest's largest RAM block (its main memory) for zero pages. Rejects when QEMU is not
 *  a local process the agent may read, or its RAM is not one mapping of the block's size. */
export async function sampleGuestZeroPages(domain: Domain, samples = ZERO_SAMPLE_PAGES): Promise<ZeroSample> {
  const pid = await qemuPid(domain);
  const block = parseRamBlocks(await domain.qemuMonitorCommand('info ramblock', true)).sort((a, b) => b.totalBytes - a.totalBytes)[0];
  if (!block) throw new Error('no RAM block in "info ramblock"');
  const mapping = findRamMapping(await readFile(`/proc/${pid}/maps`, 'utf8'), block.totalBytes);
  if (!mapping) throw new Error(`no mapping of ${block.name}'s ${block.totalBytes} bytes in /proc/${pid}/maps`);
  const mem = await open(`/proc/${pid}/mem`, 'r');
  try {
    const buf = Buffer.alloc(PAGE);
    const readPage = async (i: number): Promise<Buffer> => {
      const { bytesRead } = await mem.read(buf, 0, PAGE, mapping.start + i * PAGE);
      if (bytesRead !== PAGE) throw new Error(`short read of guest page ${i}`);
      return buf;
    };
    const pages = Math.floor(block.usedBytes / PAGE);
    const share = await sampleZeroShare(readPage, pages, samples);
    return { share, ramMiB: block.usedBytes / MiB, sampled: Math.min(samples, pages) };
  } finally {
    await mem.close();
  }
}
