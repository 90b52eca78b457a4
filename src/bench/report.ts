// The convergence benchmark's results: record type, markdown report (oracle table, sweep, every run,
// predicted against measured, the issue's targets), one SVG chart per scenario.
import { writeFileSync } from 'node:fs';
import type { EstimateResult } from '../api/estimate.js';
import { chartSvg, type Series } from './chart.js';
import { oracle, SWEEP, type SweepRun } from './oracle.js';
import type { ModeName } from './run-migration.js';

export interface Point {
  t: number;
  throttle: number;
  remainingMiB: number;
}

type Forecast = EstimateResult['prediction'];

export interface RunResult {
  scenario: string;
  mode: ModeName;
  /** fixed: the throttle held, % */
  throttle?: number;
  completed: boolean;
  state: string;
  /** fixed: stopped once it had lost more work than a completed fixed run (it could not be the oracle) */
  dominated?: boolean;
  /** fixed: not run, because a higher throttle did not complete within the budget */
  skipped?: boolean;
  seconds: number;
  iterations: number;
  peakThrottle: number;
  throttleSeconds: number;
  /** guest work done during the span / unharmed work over the same span */
  guestWork: number;
  /** seconds of unharmed guest work lost over the span (./guest-work.ts). Compares runs of different
   *  lengths, which the share alone does not (a short run at a high throttle can lose less). */
  workLostSec: number;
  /** the guest's unharmed rate measured just before the migration (MiB/s dirtying, MB/s Linux) */
  baselineMiBps: number;
  /** the same measured again after the migration ended (a check of the baseline), or null */
  afterMiBps: number | null;
  downtimeMs: number | null;
  /** the migration stream was encrypted (the status' tls) */
  tls?: boolean;
  /** the migration's error, when it failed */
  error?: string;
  /** the guest itself failed (a Linux guest's kernel panic after the migration): the first line */
  guestFailure?: string;
  sentMiB: number;
  actions: number;
  /** VM.estimateMigration asked just before this run */
  /** workingSetMiB, residentMiB: what the estimate measured (runs before 2026-12-02 lack them) */
  estimate?: { predicted: Forecast; stock: Forecast; dirtyRateMiBps: number; workingSetMiB?: number; residentMiB?: number; convergesWithoutThrottle: boolean };
  timeline: Point[];
}

/** Per-scenario facts the report needs besides the runs. */
export interface ScenarioInfo {
  name: string;
  about: string;
  budgetSec: number;
}

function ratio(x: number, y: number): string {
  if (y > 0) return `${(x / y).toFixed(2)}x`;
  return x === 0 ? 'same' : 'n/a';
}

const lost = (r: RunResult): number => Math.max(0, r.workLostSec);

/** The fixed-throttle runs of a scenario, the plain pre-copy run standing for T = 0. */
export function sweepOf(results: readonly RunResult[], sc: string): (SweepRun & { run: RunResult })[] {
  return results
    .filter((r) => r.scenario === sc && r.mode === 'fixed' && r.throttle !== undefined)
    .map((r) => ({ throttle: r.throttle!, completed: r.completed, seconds: r.seconds, workLostSec: lost(r), dominated: r.dominated ?? false, skipped: r.skipped ?? false, run: r }))
    .sort((a, b) => a.throttle - b.throttle);
}

function cell(r: RunResult | undefined): string {
  if (!r) return '-';
  if (r.skipped) return 'skipped';
  if (r.dominated) return `cut at ${r.seconds} s (lost > oracle)`;
  if (!r.completed) return `no (${r.state} at ${r.seconds} s)`;
  return `${r.seconds} s / ${lost(r)} s`;
}

interface Row {
  sc: string;
  none?: RunResult;
  stock?: RunResult;
  ctl?: RunResult;
  best: (SweepRun & { run: RunResult }) | null;
}

function rows(results: readonly RunResult[]): Row[] {
  return [...new Set(results.map((r) => r.scenario))].map((sc) => {
    const sweep = sweepOf(results, sc);
    const best = oracle(sweep);
    return {
      sc,
      none: sweep.find((s) => s.throttle === 0)?.run,
      stock: results.find((r) => r.scenario === sc && r.mode === 'stock'),
      ctl: results.find((r) => r.scenario === sc && r.mode === 'controller'),
      best: best ? sweep.find((s) => s.throttle === best.throttle)! : null,
    };
  });
}

function oracleTable(rs: Row[], info: Map<string, ScenarioInfo>): string[] {
  const lines = [
    'Each cell: time / guest work lost (s). The oracle is the fixed throttle (QEMU auto-converge with initial = max = T) that lost the least guest work among those that completed within the time budget.',
    '',
    '| scenario | budget (s) | none | stock | oracle | controller | controller / oracle, work lost | controller / stock, time | controller / stock, work lost | controller peak throttle % |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rs) {
    const o = r.best ? `T=${r.best.throttle}: ${cell(r.best.run)}` : 'none completed';
    const c = r.ctl;
    const vsOracle = c && r.best ? ratio(lost(c), r.best.workLostSec) : '-';
    const vsStockT = c && r.stock?.completed ? ratio(c.seconds, r.stock.seconds) : '-';
    const vsStockL = c && r.stock ? ratio(lost(c), lost(r.stock)) : '-';
    lines.push(`| ${r.sc} | ${info.get(r.sc)?.budgetSec ?? '-'} | ${cell(r.none)} | ${cell(r.stock)} | ${o} | ${cell(c)} | ${vsOracle} | ${vsStockT} | ${vsStockL} | ${c?.peakThrottle ?? '-'} |`);
  }
  return lines;
}

function sweepTable(results: readonly RunResult[], rs: Row[]): string[] {
  const lines = [
    'Fixed throttles, highest first. A throttle that did not complete within the budget ends the sweep (a lower one lets the guest dirty faster); a run that had already lost more work than a completed one (by more than 1 s, the noise of a count read mid-run) was cut: it could not be the oracle.',
    '',
    `| scenario | ${SWEEP.map((t) => `T=${t}`).join(' | ')} |`,
    `| --- | ${SWEEP.map(() => '---').join(' | ')} |`,
  ];
  for (const r of rs) {
    const sweep = sweepOf(results, r.sc);
    lines.push(`| ${r.sc} | ${SWEEP.map((t) => cell(sweep.find((s) => s.throttle === t)?.run)).join(' | ')} |`);
  }
  return lines;
}

function runsTable(results: readonly RunResult[]): string[] {
  const lines = [
    '| scenario | mode | completed | time (s) | iterations | peak throttle % | throttle·s | guest work | work lost (s) | guest rate before / after | downtime (ms) | sent (MiB) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    if (r.skipped) continue;
    const mode = r.mode === 'fixed' ? `fixed ${r.throttle} %` : r.mode;
    const done = r.completed ? 'yes' : r.dominated ? 'cut (lost > oracle)' : `no (${r.state})`;
    const guest = r.guestFailure ? `; guest: ${r.guestFailure}` : '';
    lines.push(`| ${r.scenario} | ${mode} | ${done}${guest} | ${r.seconds} | ${r.iterations} | ${r.peakThrottle} | ${r.throttleSeconds} | ${(r.guestWork * 100).toFixed(0)} % | ${r.workLostSec} | ${r.baselineMiBps} / ${r.afterMiBps ?? '-'} | ${r.downtimeMs ?? '-'} | ${r.sentMiB} |`);
  }
  return lines;
}

/** Relative error of a forecast against the measured time, or null when either did not complete. */
export function timeError(predicted: Forecast, measured: RunResult | undefined): number | null {
  if (!measured?.completed || !predicted.completed || measured.seconds <= 0) return null;
  return (predicted.timeSec - measured.seconds) / measured.seconds;
}

const pct = (e: number | null): string => (e === null ? '-' : `${e >= 0 ? '+' : ''}${(e * 100).toFixed(0)} %`);
const fc = (f: Forecast): string => (f.completed ? `${f.timeSec.toFixed(1)} s, peak ${f.peakThrottle} %, lost ${f.guestWorkLostSec.toFixed(1)} s` : 'does not complete');

function predictionTable(rs: Row[]): string[] {
  const lines = [
    'VM.estimateMigration asked on the controller run\'s guest just before its migration (the dirty rate by page sampling, raised to the upper quartile of the agent\'s recent samples when that is higher, and the zero pages sampled from QEMU\'s memory; then the calibrated simulator), against what the controller and stock runs measured. Error = (predicted - measured) / measured time.',
    '',
    '| scenario | dirty rate assumed (MiB/s) | converges alone? | predicted, controller | measured, controller | time error | predicted, stock | measured, stock | time error |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rs) {
    const e = r.ctl?.estimate;
    if (!e) continue;
    const m = (x?: RunResult): string => (x ? (x.completed ? `${x.seconds} s, peak ${x.peakThrottle} %, lost ${lost(x)} s` : `no (${x.state})`) : '-');
    lines.push(`| ${r.sc} | ${e.dirtyRateMiBps.toFixed(0)} | ${e.convergesWithoutThrottle ? 'yes' : 'no'} | ${fc(e.predicted)} | ${m(r.ctl)} | ${pct(timeError(e.predicted, r.ctl))} | ${fc(e.stock)} | ${m(r.stock)} | ${pct(timeError(e.stock, r.stock))} |`);
  }
  return lines;
}

/**
 * Whether the guest converges without a throttle, from this run's evidence first (pure): plain
 * pre-copy completed, or it ran and did not; when it was skipped because a fixed throttle already
 * failed within the budget (a lower one only lets the guest dirty faster), it does not. Only a
 * scenario with no such evidence (plain pre-copy not run, or cut) is judged by the forecast.
 */
export function runConvergesAlone(none: RunResult | undefined, forecast: boolean | undefined): boolean {
  if (none?.completed) return true;
  // failed, or skipped after a higher throttle failed; one cut for losing more than a completed run
  // says nothing on convergence
  if (none && !none.dominated) return false;
  return forecast === true;
}

const mark = (ok: boolean): string => (ok ? 'met' : 'NOT met');

/** The issue's targets, each judged from this run's numbers. */
function targets(rs: Row[]): string[] {
  const lines: string[] = [];
  const heavy = rs.find((r) => r.sc === 'heavy');
  if (heavy?.ctl && heavy.stock) {
    const t = heavy.ctl.seconds / heavy.stock.seconds;
    const l = lost(heavy.stock) > 0 ? lost(heavy.ctl) / lost(heavy.stock) : Infinity;
    lines.push(`- heavy: time ${t.toFixed(2)}x stock (target <= 0.22x: ${mark(heavy.ctl.completed && t <= 0.22)}); work lost ${l.toFixed(2)}x stock (target <= 0.25x: ${mark(heavy.ctl.completed && l <= 0.25)})`);
  }
  for (const r of rs) {
    if (!r.ctl) continue;
    const c = lost(r.ctl);
    const vsOracle = r.best ? `${c} s vs oracle T=${r.best.throttle} ${r.best.workLostSec} s (target <= ${(1.2 * r.best.workLostSec + 1).toFixed(1)} s: ${mark(r.ctl.completed && c <= 1.2 * r.best.workLostSec + 1)})` : 'no fixed throttle completed';
    const vsStock = r.stock ? `; vs stock ${lost(r.stock)} s (target <= stock: ${mark(r.ctl.completed && c <= lost(r.stock))})` : '';
    lines.push(`- ${r.sc}: controller work lost ${vsOracle}${vsStock}`);
  }
  for (const r of rs) {
    const alone = runConvergesAlone(r.none, r.ctl?.estimate?.convergesWithoutThrottle);
    const noneDone = r.none?.completed;
    if (r.ctl && alone) {
      lines.push(`- ${r.sc} converges without a throttle (${noneDone ? `plain pre-copy completed in ${r.none!.seconds} s` : 'as estimated'}): controller peak throttle ${r.ctl.peakThrottle} % (target 0: ${mark(r.ctl.peakThrottle === 0)})`);
    }
  }
  const lh = rs.find((r) => r.sc === 'linux-heavy');
  if (lh?.ctl && lh.stock) {
    const t = lh.ctl.seconds / lh.stock.seconds;
    lines.push(`- linux-heavy: time ${t.toFixed(2)}x stock (target <= 0.5x: ${mark(lh.ctl.completed && t <= 0.5)}); throttle-seconds ${lh.ctl.throttleSeconds} vs stock ${lh.stock.throttleSeconds} (target <= stock: ${mark(lh.ctl.throttleSeconds <= lh.stock.throttleSeconds)})`);
  }
  const ex = rs.find((r) => r.sc === 'extreme');
  if (ex?.ctl) lines.push(`- extreme: controller ${ex.ctl.completed ? `completed in ${ex.ctl.seconds} s` : `did not complete (${ex.ctl.state})`} (${mark(ex.ctl.completed)})`);
  const errs = rs.flatMap((r) => (r.ctl?.estimate ? [timeError(r.ctl.estimate.predicted, r.ctl), timeError(r.ctl.estimate.stock, r.stock)] : [])).filter((e): e is number => e !== null);
  if (errs.length > 0) {
    const within = errs.filter((e) => Math.abs(e) <= 0.2).length;
    lines.push(`- prediction: ${within} of ${errs.length} completed forecasts within 20 % of the measured time (target: all, ${mark(within === errs.length)})`);
  }
  return lines;
}

export function report(results: readonly RunResult[], scenarios: readonly ScenarioInfo[]): string {
  const info = new Map(scenarios.map((s) => [s.name, s]));
  const rs = rows(results);
  return [
    '## Scenarios',
    '',
    ...scenarios.filter((s) => rs.some((r) => r.sc === s.name)).map((s) => `- ${s.name}: ${s.about}; budget ${s.budgetSec} s`),
    '',
    '## Oracle, stock, controller',
    '',
    ...oracleTable(rs, info),
    '',
    '## Against the targets',
    '',
    ...targets(rs),
    '',
    '## Predicted against measured',
    '',
    ...predictionTable(rs),
    '',
    '## The sweep',
    '',
    ...sweepTable(results, rs),
    '',
    '## Every run',
    '',
    'Guest work: dirtying guest, pages written between a reading just before the migration and one just after it ended, against the mean of its unthrottled rates measured over 3 s just before and just after (a TCG guest\'s rate drifts with the machine\'s load); Linux guest, stress-ng\'s own work windows from a window boundary just before the migration to the one after its end, each against the rate of its step. Work lost (s) = span - unharmed seconds of work done.',
    '',
    ...runsTable(results),
  ].join('\n');
}

export function charts(results: readonly RunResult[], dir: string): void {
  for (const row of rows(results)) {
    const runs: { r: RunResult; label: string; color: string; dashed?: boolean }[] = [];
    if (row.stock) runs.push({ r: row.stock, label: 'stock', color: '#d62728' });
    if (row.best) runs.push({ r: row.best.run, label: `oracle T=${row.best.throttle}`, color: '#2ca02c', dashed: true });
    if (row.ctl) runs.push({ r: row.ctl, label: 'controller', color: '#1f77b4' });
    const series = (pick: (p: Point) => number): Series[] =>
      runs.map(({ r, label, color, dashed }) => ({ label, color, points: r.timeline.map((p) => [p.t, pick(p)]), ...(dashed ? { dashed } : {}) }));
    writeFileSync(`${dir}/converge-${row.sc}.svg`, chartSvg(`${row.sc}: stock auto-converge, the oracle's fixed throttle, vmigrate controller`, [
      { title: 'CPU throttle', yLabel: '%', series: series((p) => p.throttle) },
      { title: 'data remaining', yLabel: 'MiB', series: series((p) => p.remainingMiB) },
    ]));
  }
}
