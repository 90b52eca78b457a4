// The Linux guest's own work reports, read from its serial console log (pure parsing, and a reader).
import { readFile } from 'node:fs/promises';

/** One "VMWORK" line: one window of stress-ng (or of idling). */
export interface WorkWindow {
  seq: number;
  /** Guest uptime at the end of the window, s. */
  uptimeSec: number;
  /** Window length by the guest's clock, s. */
  durationSec: number;
  step: number;
  /** The plan's write rate for the step, MB/s (0 = idle). */
  targetMB: number;
  /** stress-ng's measured write rate (mean over the write methods it finished), MB/s. */
  rateMB: number;
  /** Work: rate x duration, MB. */
  workMB: number;
}

const LINE = /^VMWORK seq=(\d+) t=(\d+) dt=(\d+) step=(\d+) target=(\d+) mbs=([\d.]+) mb=([\d.]+)\s*$/;

/** Work windows of the guest's current boot: the lines after its last "VMREADY" (the log is appended to). */
export function parseWorkLog(text: string): { ready: boolean; windows: WorkWindow[] } {
  const lines = text.split('\n');
  let start = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.startsWith('VMREADY ')) {
      start = i;
      break;
    }
  }
  if (start < 0) return { ready: false, windows: [] };
  const windows: WorkWindow[] = [];
  for (const l of lines.slice(start + 1)) {
    const m = LINE.exec(l.replace(/\r$/, ''));
    if (!m) continue;
    windows.push({
      seq: Number(m[1]),
      uptimeSec: Number(m[2]) / 100,
      durationSec: Number(m[3]) / 100,
      step: Number(m[4]),
      targetMB: Number(m[5]),
      rateMB: Number(m[6]),
      workMB: Number(m[7]),
    });
  }
  return { ready: true, windows };
}

export async function readLinuxWork(serialLog: string): Promise<{ ready: boolean; windows: WorkWindow[] }> {
  return parseWorkLog(await readFile(serialLog, 'utf8').catch(() => ''));
}

/** Lines of a kernel that failed (QEMU 7.2 under TCG lost dirty pages and killed guests: docs/lab.md). */
const PANIC = /Kernel panic|BUG: unable to handle|general protection fault/;

/** The first line of a Linux guest's serial log (this boot only) where its kernel panicked, without
 *  its timestamp, or null. */
export async function kernelFailure(serialLog: string): Promise<string | null> {
  const text = await readFile(serialLog, 'utf8').catch(() => '');
  const line = text.split('\n').find((l) => PANIC.test(l));
  return line ? line.replace(/^\[[\d. ]+\]\s*/, '').trim() : null;
}
