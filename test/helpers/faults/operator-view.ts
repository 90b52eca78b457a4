// What an operator sees of a case: the agents' log lines at warning priority or worse (journald
// priority from pino's level, as the agent maps it), and how the agents' counters moved.
import { open, stat } from 'node:fs/promises';

export interface LogMark {
  host: string;
  path: string;
  offset: number;
}

export interface LogLine {
  host: string;
  priority: number;
  event: string;
  msg: string;
}

/** syslog priority of a pino level: fatal 2, error 3, warn 4, info 6 (src/common/journal.ts). */
export const priorityOf = (level: number): number => (level >= 60 ? 2 : level >= 50 ? 3 : level >= 40 ? 4 : level >= 30 ? 6 : 7);

export async function markLogs(logs: { host: string; path: string }[]): Promise<LogMark[]> {
  return Promise.all(logs.map(async (l) => ({ ...l, offset: (await stat(l.path).catch(() => ({ size: 0 }))).size })));
}

/** Pure: the warning-or-worse JSON lines of a log chunk. */
export function warningsIn(host: string, chunk: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of chunk.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const r = JSON.parse(line) as { level?: number; event?: string; msg?: string };
      const priority = priorityOf(r.level ?? 30);
      if (priority <= 4) out.push({ host, priority, event: r.event ?? '', msg: r.msg ?? '' });
    } catch {
      /* not a log record */
    }
  }
  return out;
}

export async function linesSince(marks: LogMark[]): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for (const m of marks) {
    const fh = await open(m.path, 'r').catch(() => null);
    if (!fh) continue;
    try {
      const { size } = await fh.stat();
      const len = Math.max(0, Math.min(size - m.offset, 4 << 20));
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, m.offset);
      out.push(...warningsIn(m.host, buf.toString('utf8')));
    } finally {
      await fh.close();
    }
  }
  return out;
}

export type Counters = Map<string, number>;

/** Pure: vmigrate_* counters (…_total) of a Prometheus text page, summed over labels; the process's
 *  own CPU counters say nothing about the fault and are left out. */
export function countersIn(body: string): Counters {
  const c: Counters = new Map();
  for (const line of body.split('\n')) {
    const m = /^(vmigrate_[a-z_]+_total)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && !m[1]!.startsWith('vmigrate_process_')) c.set(m[1]!, (c.get(m[1]!) ?? 0) + Number(m[3]));
  }
  return c;
}

export async function readCounters(metricsUrl: string): Promise<Counters> {
  try {
    return countersIn(await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) })).text());
  } catch {
    return new Map();
  }
}

/** Pure: counters that moved. A restarted agent starts from 0, so when a counter went down the
 *  new process's value is the change. */
export function counterChanges(host: string, before: Counters, after: Counters): { host: string; metric: string; delta: number }[] {
  const out: { host: string; metric: string; delta: number }[] = [];
  for (const [metric, v] of after) {
    const b = before.get(metric) ?? 0;
    const delta = v >= b ? v - b : v;
    if (delta !== 0) out.push({ host, metric, delta });
  }
  return out;
}
