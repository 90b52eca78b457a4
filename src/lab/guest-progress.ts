import { virsh } from './virsh.js';

/** Guest-physical address of the guest kernel's progress block (src/lab/guest/linker.ld). */
export const PROGRESS_ADDR = 0x101000;
export const PROGRESS_MAGIC = 0x504d4756; // "VMGP"

/** Mirrors `struct progress` in src/lab/guest/kernel.c. */
export interface GuestStatus {
  /** Total 4 KiB pages written since boot (one word each). */
  pages: bigint;
  wsPages: number;
  rateMiB: number;
  tscKhz: number;
  passes: number;
  uptimeMs: number;
  /** Time the guest dropped instead of catching up (throttled or descheduled). */
  lostMs: number;
  state: 'calibrating' | 'running' | 'unknown';
}

/** Reads `count` 32-bit words at guest-physical `addr` with HMP `xp`. */
export async function readGuestWords(uri: string, domain: string, addr: number, count: number): Promise<number[]> {
  const out = await virsh(uri, ['qemu-monitor-command', '--hmp', domain, `xp /${count}wx 0x${addr.toString(16)}`], 15_000);
  // Lines look like "0000000000101000: 0x00000001 0x00000000 ...".
  const words = out
    .split('\n')
    .flatMap((line) => line.split(':').slice(1).join(':').trim().split(/\s+/))
    .filter((w) => /^0x[0-9a-f]+$/i.test(w))
    .map((w) => Number.parseInt(w, 16));
  if (words.length !== count) throw new Error(`unexpected xp output from ${domain}: ${out.trim()}`);
  return words;
}

/** Total pages the guest has written (64-bit counter at PROGRESS_ADDR). Continues across migration. */
export async function readGuestProgress(uri: string, domainName: string): Promise<bigint> {
  const [lo, hi] = await readGuestWords(uri, domainName, PROGRESS_ADDR, 2);
  return (BigInt(hi!) << 32n) | BigInt(lo!);
}

export async function readGuestStatus(uri: string, domainName: string): Promise<GuestStatus> {
  const w = await readGuestWords(uri, domainName, PROGRESS_ADDR, 11);
  if (w[2] !== PROGRESS_MAGIC) throw new Error(`${domainName}: no vmigrate guest progress block at 0x${PROGRESS_ADDR.toString(16)}`);
  return {
    pages: (BigInt(w[1]!) << 32n) | BigInt(w[0]!),
    wsPages: w[4]!,
    rateMiB: w[5]!,
    tscKhz: w[6]!,
    passes: w[7]!,
    uptimeMs: w[8]!,
    lostMs: w[9]!,
    state: w[10] === 1 ? 'calibrating' : w[10] === 2 ? 'running' : 'unknown',
  };
}

/** Measures the guest's dirtying rate in MiB/s over `ms` (pages / 256 per second). */
export async function measureGuestRate(uri: string, domainName: string, ms = 2_000): Promise<number> {
  // Time each sample at the middle of its virsh round trip.
  const sample = async () => {
    const a = performance.now();
    const p = await readGuestProgress(uri, domainName);
    return { p, t: (a + performance.now()) / 2 };
  };
  const s0 = await sample();
  await new Promise((r) => setTimeout(r, ms));
  const s1 = await sample();
  return Number(s1.p - s0.p) / 256 / ((s1.t - s0.t) / 1000);
}
