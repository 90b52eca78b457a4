// Controller vs QEMU's stock auto-converge vs no auto-converge over a grid of scenarios.
import type { Policy } from '../controller/policy.js';
import { simulate, type SimOptions, type SimResult } from './simulate.js';
import { SCENARIOS, type Scenario } from './scenario.js';

export interface ComparisonRow {
  scenario: Scenario;
  none: SimResult;
  stock: SimResult;
  controller: SimResult;
}

export function compareGrid(
  scenarios: readonly Scenario[] = SCENARIOS,
  opts: { policy?: Policy } & Omit<SimOptions, 'mode' | 'policy'> = {},
): ComparisonRow[] {
  return scenarios.map((scenario) => ({
    scenario,
    none: simulate(scenario, { ...opts, mode: 'none' }),
    stock: simulate(scenario, { ...opts, mode: 'stock' }),
    controller: simulate(scenario, { ...opts, mode: 'controller' }),
  }));
}

function cell(r: SimResult): string {
  const end = r.completed ? `${r.timeSec.toFixed(1)} s${r.postcopy ? ' pc' : ''}` : r.aborted ? `abort ${r.timeSec.toFixed(0)} s` : `not done ${r.timeSec.toFixed(0)} s`;
  return `${end}, ${r.iterations} it, thr ${r.peakThrottle}, lost ${r.guestWorkLostSec.toFixed(1)} s`;
}

/** Markdown table: one row per scenario, time / iterations / peak throttle / guest seconds lost. */
export function formatComparison(rows: readonly ComparisonRow[]): string {
  const lines = [
    '| scenario | no auto-converge | stock auto-converge | controller | controller downtime |',
    '|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const dt = r.controller.downtimeMs === null ? '-' : `${r.controller.downtimeMs.toFixed(0)} ms`;
    lines.push(`| ${r.scenario.name} | ${cell(r.none)} | ${cell(r.stock)} | ${cell(r.controller)} | ${dt} |`);
  }
  return lines.join('\n');
}
