// The nftables rules of a lab's migration-network cut (pure): what they match, and what they leave alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cutChain, cutPair, cutRules, cutScript, cutsInListing, netcutTable, restoreScript } from '../../src/lab/netcut-rules.js';
import { hostPlan } from '../../src/lab/paths.js';

const plans = (dir: string, base: number) => [hostPlan(dir, 'a', base), hostPlan(dir, 'b', base)] as const;

test('a cut drops both directions of streams to either host\'s migration listener, and nothing else', () => {
  const rules = cutRules(plans('/tmp/lab-x', 37700));
  assert.deepEqual(rules, [
    'ip daddr 127.0.0.10 tcp dport 38200-38231 drop',
    'ip saddr 127.0.0.10 tcp sport 38200-38231 drop',
    'ip daddr 127.0.0.11 tcp dport 38232-38263 drop',
    'ip saddr 127.0.0.11 tcp sport 38232-38263 drop',
  ]);
  // the agents' RPC and metrics ports of this lab are outside every matched range
  for (const p of plans('/tmp/lab-x', 37700)) {
    for (const port of [p.agentPort, p.metricsPort]) {
      assert.ok(rules.every((r) => { const [lo, hi] = /(\d+)-(\d+)/.exec(r)!.slice(1).map(Number); return port < lo! || port > hi!; }), `port ${port} untouched`);
    }
  }
});

test('labs with different port bases cut disjoint port ranges; different dirs use different tables', () => {
  const ranges = (base: number) => plans('/tmp/l', base).map((p) => [p.migrationPortMin, p.migrationPortMax] as const);
  const [x, y] = [ranges(17100).flat(), ranges(37700).flat()];
  assert.ok(Math.max(...x) < Math.min(...y));
  assert.notEqual(netcutTable('/tmp/lab-1'), netcutTable('/tmp/lab-2'));
  assert.match(netcutTable('/tmp/lab-1'), /^vmigrate_lab_[0-9a-f]{10}$/);
});

test('cut(a, b) and cut(b, a) are one cut; a host cannot be cut from itself', () => {
  assert.deepEqual(cutPair('b', 'a'), ['a', 'b']);
  assert.equal(cutChain('b', 'a'), 'cut_a_b');
  assert.throws(() => cutPair('a', 'a'), /two different hosts/);
});

test('the scripts are idempotent by construction: flush before add, add before delete', () => {
  const cut = cutScript('t', plans('/tmp/l', 37700)).split('\n');
  assert.ok(cut.indexOf('flush chain inet t cut_a_b') < cut.findIndex((l) => l.startsWith('add rule')));
  assert.match(cut[1]!, /hook input/);
  const restore = restoreScript('t', 'b', 'a').split('\n');
  assert.deepEqual(restore.slice(0, 4), ['add table inet t', 'add chain inet t cut_a_b', 'flush chain inet t cut_a_b', 'delete chain inet t cut_a_b']);
});

test('cuts are read back from nft\'s JSON listing; other chains are ignored', () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'inet', name: 't', handle: 1 } },
      { chain: { family: 'inet', table: 't', name: 'cut_a_b', handle: 1, type: 'filter', hook: 'input', prio: 0, policy: 'accept' } },
      { chain: { family: 'inet', table: 't', name: 'other', handle: 2 } },
      { rule: { family: 'inet', table: 't', chain: 'cut_a_b', handle: 3, expr: [] } },
    ],
  });
  assert.deepEqual(cutsInListing(json), [['a', 'b']]);
  assert.deepEqual(cutsInListing(JSON.stringify({ nftables: [] })), []);
  assert.throws(() => cutsInListing('{"x":1}'));
});
