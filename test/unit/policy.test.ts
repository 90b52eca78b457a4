import { test } from 'node:test';
import assert from 'node:assert/strict';
import { POLICY_NAMES, PolicyError, resolvePolicy } from '../../src/controller/policy.js';

function issuesOf(input: unknown): PolicyError {
  try {
    resolvePolicy(input);
  } catch (e) {
    assert.ok(e instanceof PolicyError, `expected PolicyError, got ${String(e)}`);
    return e;
  }
  assert.fail(`expected ${JSON.stringify(input)} to be rejected`);
}

test('built-in names resolve; default is minimal-downtime', () => {
  assert.deepEqual([...POLICY_NAMES].sort(), ['finish-at-any-cost', 'minimal-downtime', 'protect-workload', 'stock']);
  assert.equal(resolvePolicy(undefined).name, 'minimal-downtime');
  assert.equal(resolvePolicy(null).name, 'minimal-downtime');
  for (const n of POLICY_NAMES) assert.equal(resolvePolicy(n).name, n);
  assert.equal(resolvePolicy('stock').steer, false);
  assert.equal(resolvePolicy('protect-workload').maxThrottle, 50);
  assert.equal(resolvePolicy('protect-workload').preferPostcopy, true);
  assert.equal(resolvePolicy('finish-at-any-cost').maxThrottle, 99);
});

test('object input: base + overrides', () => {
  const p = resolvePolicy({ base: 'protect-workload', maxThrottle: 30 });
  assert.equal(p.maxThrottle, 30);
  assert.equal(p.preferPostcopy, true);
  assert.equal(p.name, 'protect-workload+custom');
  assert.equal(resolvePolicy({}).name, 'minimal-downtime');
  assert.equal(resolvePolicy({ bandwidthMiBps: 80 }).bandwidthMiBps, 80);
  // resolved policies are independent copies
  resolvePolicy('stock').maxThrottle = 1;
  assert.equal(resolvePolicy('stock').maxThrottle, 99);
});

test('errors name the field and the bad value', () => {
  const e = issuesOf({ maxThrottle: 150 });
  assert.equal(e.issues[0]?.path, 'maxThrottle');
  assert.match(e.issues[0]?.message ?? '', /150/);
  assert.match(e.message, /maxThrottle/);
  assert.match(e.message, /150/);

  const t = issuesOf({ allowPostcopy: 'yes', downtimeMs: -5 });
  const paths = t.issues.map((i) => i.path).sort();
  assert.deepEqual(paths, ['allowPostcopy', 'downtimeMs']);
  assert.match(t.message, /"yes"/);
  assert.match(t.message, /-5/);

  const u = issuesOf({ maxThrotle: 50 });
  assert.equal(u.issues[0]?.path, 'maxThrotle');
  assert.match(u.message, /maxThrotle/);

  const d = issuesOf({ downtimeMs: 800, maxDowntimeMs: 500 });
  assert.equal(d.issues[0]?.path, 'maxDowntimeMs');
  assert.match(d.message, /500/);
});

test('unknown names and bad shapes are rejected clearly', () => {
  const n = issuesOf('fastest');
  assert.equal(n.issues[0]?.path, '');
  assert.match(n.message, /"fastest"/);
  assert.match(n.message, /minimal-downtime/);
  const b = issuesOf({ base: 'nope' });
  assert.equal(b.issues[0]?.path, 'base');
  assert.match(b.message, /"nope"/);
  assert.match(issuesOf(42).message, /42/);
  assert.ok(issuesOf([1]) instanceof PolicyError);
});
