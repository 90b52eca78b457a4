// The fault-injection suite (issue 8): every fault × phase on the lab, back to back on one lab with
// small TCG guests. Each case brings a real migration to its phase, injects the fault, and checks:
// exactly one running copy (or a recovered post-copy), a truthful status and vmLocation, QEMU's
// parameters back to what they were, no admission slot left held, and agents that still serve and
// can migrate the VM again. The table (faults tried, survived) is printed at the end, and a full run
// writes it, with what the operator saw, into docs/faults.md.
//   VMIGRATE_FAULTS=cut-5s,kill-src-agent:throttling   run only these faults / phases / cases
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { labDown, labUp, type LabHostInfo } from '../../src/lab/index.js';
import { labDir, portBase as labPortBase } from '../../src/lab/paths.js';
import { useClientTls } from '../helpers/raw-rpc.js';
import { healLab } from '../helpers/faults/lab-health.js';
import { selectCases, type CaseResult } from '../helpers/faults/model.js';
import { renderFailures, renderRun, renderTable, totals, writeRun } from '../helpers/faults/report.js';
import { runCase, type CaseLab } from '../helpers/faults/run-case.js';

const isRoot = process.getuid?.() === 0;
const filter = process.env.VMIGRATE_FAULTS;
const cases = selectCases(filter);
const DOC = fileURLToPath(new URL('../../../docs/faults.md', import.meta.url));

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: fileURLToPath(new URL('../../..', import.meta.url)), encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

describe('fault injection: faults × phases', { skip: isRoot ? false : 'needs root (lab hosts, nftables)' }, () => {
  const results: CaseResult[] = [];
  let lab: CaseLab;
  const t0 = Date.now();

  before(async () => {
    const info = await labUp({ agents: true });
    useClientTls(info.tls);
    const [src, dst] = info.hosts as [LabHostInfo, LabHostInfo];
    lab = { dir: labDir(), portBase: labPortBase(), src, dst, log: (l) => console.log(l) };
    await healLab(lab.dir, lab.portBase);
  });

  after(async () => {
    const durationMs = Date.now() - t0;
    console.log(`\nfault suite: ${results.length} cases in ${(durationMs / 60_000).toFixed(1)} min\n${renderTable(results)}`);
    const failures = renderFailures(results);
    if (failures) console.log(`\nfailed checks:\n${failures}`);
    if (!filter && results.length === cases.length) {
      await writeRun(DOC, renderRun(results, { date: new Date().toISOString().slice(0, 16).replace('T', ' '), durationMs, commit: commit() }));
      console.log(`table written to ${DOC}`);
    }
    await labDown();
  });

  for (const [i, c] of cases.entries()) {
    const long = c.fault === 'cut-120s' ? 180_000 : 0;
    test(`${c.fault} during ${c.phase}`, { timeout: 300_000 + long }, async (t) => {
      const healed = await healLab(lab.dir, lab.portBase);
      if (healed.length) t.diagnostic(`lab repaired first: ${healed.join('; ')}`);
      const r = await runCase(c, lab, `f${i + 1}`);
      results.push(r);
      // the case's guests go; anything else it left is repaired, and said
      const left = (await healLab(lab.dir, lab.portBase)).filter((x) => !x.startsWith('destroyed '));
      if (left.length) t.diagnostic(`after the case: ${left.join('; ')}`);
      t.diagnostic(`${r.durationMs} ms; states ${r.statesSeen.join(' -> ') || '-'}`);
      for (const inv of r.invariants) t.diagnostic(`${inv.ok ? 'ok  ' : 'FAIL'} ${inv.name}: ${inv.detail}`);
      const { tried, survived } = totals(results);
      t.diagnostic(`so far: tried ${tried}, survived ${survived}`);
      assert.equal(r.harnessError, null, `the case could not be set up: ${r.harnessError}`);
      assert.ok(r.survived, r.invariants.filter((x) => !x.ok).map((x) => `${x.name}: ${x.detail}`).join('\n'));
    });
  }
});
