// The shaping of a lab host's migration uplink (pure): what is marked, which class, what tc is told.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { burstBytes, classesInListing, classId, hostOfMinor, rootInListing, shapeMinor, shapeRules, shapeScript, tcAddRoot, tcClass, unshapeScript } from '../../src/lab/shape-rules.js';
import { HOST_NAMES, hostPlan } from '../../src/lab/paths.js';

const others = (dir: string, base: number) => HOST_NAMES.filter((h) => h !== 'a').map((h) => hostPlan(dir, h, base));

test("host a's uplink is every stream to another host's migration listener, and nothing else", () => {
  const rules = shapeRules(others('/tmp/l', 19800).slice(0, 2), 0x1234);
  assert.deepEqual(rules, [
    'ip daddr 127.0.0.11 tcp dport 20332-20363 meta priority set 766d:1234',
    'ip daddr 127.0.0.12 tcp dport 20364-20395 meta priority set 766d:1234',
  ]);
  // a's own listener (incoming migrations), the agents' RPC and metrics ports are outside every range
  const a = hostPlan('/tmp/l', 'a', 19800);
  const all = shapeRules(others('/tmp/l', 19800), 9).join('\n');
  assert.ok(!all.includes(a.migrationAddress + ' '));
  for (const p of [a, ...others('/tmp/l', 19800)]) {
    for (const port of [p.agentPort, p.metricsPort]) {
      for (const [, lo, hi] of all.matchAll(/(\d+)-(\d+)/g)) assert.ok(port < Number(lo) || port > Number(hi), `port ${port} untouched`);
    }
  }
});

test('classes are per (lab dir, host): distinct across hosts and dirs, and mapped back', () => {
  const minors = HOST_NAMES.map((h) => shapeMinor('/tmp/lab-1', h));
  assert.equal(new Set(minors).size, HOST_NAMES.length);
  for (const m of minors) assert.ok(m >= 8 && m <= 0xffff);
  assert.notEqual(shapeMinor('/tmp/lab-1', 'a'), shapeMinor('/tmp/lab-2', 'a'));
  assert.equal(hostOfMinor('/tmp/lab-1', shapeMinor('/tmp/lab-1', 'c')), 'c');
  assert.equal(hostOfMinor('/tmp/lab-2', shapeMinor('/tmp/lab-1', 'c')), undefined);
  assert.equal(classId(0x1a), '766d:1a');
});

test('the nft scripts are idempotent (flush before add, add before delete) and hook output', () => {
  const s = shapeScript('t', 'a', others('/tmp/l', 19800), 9).split('\n');
  assert.match(s[1]!, /^add chain inet t shape_a \{ type filter hook output /);
  assert.ok(s.indexOf('flush chain inet t shape_a') < s.findIndex((l) => l.startsWith('add rule')));
  assert.equal(s.filter((l) => l.startsWith('add rule')).length, HOST_NAMES.length - 1);
  assert.deepEqual(unshapeScript('t', 'a').split('\n').slice(0, 4), ['add table inet t', 'add chain inet t shape_a', 'flush chain inet t shape_a', 'delete chain inet t shape_a']);
});

test('tc: the root sends unclassified traffic directly; the class caps at the rate with a bucket of several 64 KiB packets', () => {
  assert.deepEqual(tcAddRoot(), ['qdisc', 'add', 'dev', 'lo', 'root', 'handle', '766d:', 'htb', 'default', '0']);
  const c = tcClass(9, 50);
  assert.equal(c[c.indexOf('rate') + 1], '419430400bit');
  assert.equal(c[c.indexOf('ceil') + 1], '419430400bit');
  assert.equal(c[c.indexOf('classid') + 1], '766d:9');
  assert.equal(burstBytes(50), 524288);
  assert.ok(burstBytes(1) >= 4 * 65536);
});

test("lo's root and our classes are read back from tc's listings", () => {
  assert.equal(rootInListing('[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}}]'), 'none');
  assert.equal(rootInListing('[{"kind":"htb","handle":"766d:","root":true,"refcnt":2,"options":{"r2q":10,"default":"0"}}]'), 'ours');
  assert.equal(rootInListing('[{"kind":"htb","handle":"1:","root":true,"refcnt":2}]'), 'foreign');
  assert.equal(rootInListing('[{"kind":"netem","handle":"8001:","root":true}]'), 'foreign');
  const text = [
    'class htb 766d:9 root prio 0 rate 419430Kbit ceil 419430Kbit burst 512Kb cburst 512Kb ',
    'class htb 766d:1a root prio 0 rate 838860Kbit ceil 838860Kbit burst 1Mb cburst 1Mb ',
    'class htb 1:10 root prio 0 rate 1Mbit ceil 1Mbit burst 1600b cburst 1600b ',
  ].join('\n');
  assert.deepEqual([...classesInListing(text)], [[9, 50], [0x1a, 100]]);
  assert.deepEqual([...classesInListing('')], []);
});
