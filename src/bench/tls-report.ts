// The migration TLS benchmark's results: record type and markdown report (each run, then TLS off
// against on: mean and range per measure).
import type { QemuCpu } from './qemu-cpu.js';
import type { RunResult } from './report.js';

export interface TlsRun extends RunResult {
  /** tls asked for with VM.migrate (the status' tls says what the agent did) */
  tlsRequested: boolean;
  /** 1-based position in the run order */
  order: number;
  cpu: QemuCpu;
}

interface Measure {
  label: string;
  value: (r: TlsRun) => number | null;
  digits: number;
}

const MEASURES: Measure[] = [
  { label: 'time (s)', value: (r) => r.seconds, digits: 1 },
  { label: 'iterations', value: (r) => r.iterations, digits: 1 },
  { label: 'sent (MiB)', value: (r) => r.sentMiB, digits: 0 },
  { label: 'guest work lost (s)', value: (r) => r.workLostSec, digits: 1 },
  { label: 'guest work', value: (r) => r.guestWork * 100, digits: 0 },
  { label: 'peak throttle %', value: (r) => r.peakThrottle, digits: 0 },
  { label: 'downtime (ms)', value: (r) => r.downtimeMs, digits: 0 },
  { label: 'source QEMU CPU (s)', value: (r) => r.cpu.sourceSec, digits: 1 },
  { label: 'destination QEMU CPU (s)', value: (r) => r.cpu.destinationSec, digits: 1 },
  { label: 'QEMU CPU per GiB sent (s)', value: (r) => (r.sentMiB > 0 ? ((r.cpu.sourceSec + r.cpu.destinationSec) * 1024) / r.sentMiB : null), digits: 2 },
];

function summary(runs: TlsRun[], m: Measure): { mean: number; min: number; max: number } | null {
  const xs = runs.map(m.value).filter((x): x is number => x !== null);
  if (xs.length === 0) return null;
  return { mean: xs.reduce((a, b) => a + b, 0) / xs.length, min: Math.min(...xs), max: Math.max(...xs) };
}

const fmt = (x: number, digits: number): string => x.toFixed(digits);

export function tlsReport(runs: TlsRun[]): string {
  const lines = [
    '| # | tls | status tls | completed | time (s) | iterations | sent (MiB) | peak throttle % | guest work | work lost (s) | guest MiB/s before / after | downtime (ms) | source QEMU CPU (s) | destination QEMU CPU (s) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of runs) {
    lines.push(`| ${r.order} | ${r.tlsRequested ? 'on' : 'off'} | ${r.tls ?? '-'} | ${r.completed ? 'yes' : `no (${r.state})`} | ${r.seconds} | ${r.iterations} | ${r.sentMiB} | ${r.peakThrottle} | ${(r.guestWork * 100).toFixed(0)} % | ${r.workLostSec} | ${r.baselineMiBps} / ${r.afterMiBps} | ${r.downtimeMs ?? '-'} | ${r.cpu.sourceSec} | ${r.cpu.destinationSec} |`);
  }
  const off = runs.filter((r) => !r.tlsRequested && r.completed);
  const on = runs.filter((r) => r.tlsRequested && r.completed);
  lines.push(
    '',
    `TLS off against on, completed runs only (off: ${off.length}, on: ${on.length}); mean, and min-max in brackets:`,
    '',
    '| measure | TLS off | TLS on | on - off (means) |',
    '| --- | --- | --- | --- |',
  );
  for (const m of MEASURES) {
    const a = summary(off, m);
    const b = summary(on, m);
    const cell = (s: typeof a): string => (s ? `${fmt(s.mean, m.digits)} [${fmt(s.min, m.digits)}-${fmt(s.max, m.digits)}]` : '-');
    const delta = a && b ? `${b.mean - a.mean >= 0 ? '+' : ''}${fmt(b.mean - a.mean, m.digits)}${a.mean !== 0 ? ` (${b.mean / a.mean >= 1 ? '+' : ''}${(((b.mean - a.mean) / a.mean) * 100).toFixed(0)} %)` : ''}` : '-';
    lines.push(`| ${m.label} | ${cell(a)} | ${cell(b)} | ${delta} |`);
  }
  return lines.join('\n');
}
