// End to end on a lab of three hosts: Host.evacuate empties host a into b and c through the agents,
// with real libvirt and QEMU guests, driven by an independent JSON-RPC client (and once by the CLI);
// its evacuation.state notifications are checked against the final status, and its source agent is
// killed and restarted mid-evacuation once.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { AgentClient } from 'vmigrate/client';
import { defineGuest, destroyGuest, labDir, labDown, labUp, type LabHostInfo } from '../../src/lab/index.js';
import { killAgent, restartAgent } from '../../src/lab/host-control.js';
import type { EvacuationStatus } from '../../src/api/evacuation.js';
import { readTlsPaths } from '../../src/client/tls.js';
import { call, operatorTlsPaths, useClientTls, waitFor } from '../helpers/raw-rpc.js';
import { agentUrl, vmsOn } from '../helpers/lab-hosts.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;

let A: LabHostInfo;
let B: LabHostInfo;
let C: LabHostInfo;
/** nothing listens there: a destination that cannot be reached */
let deadUrl: string;

/** Small, light guests: quick to migrate under TCG. */
async function guests(names: string[]): Promise<void> {
  for (const name of names) await defineGuest({ host: 'a', name, ramMiB: 64, wsMiB: 16, rateMiB: 5 });
}

/** Each named VM runs exactly once over the three hosts; returns the host it runs on. */
async function runsExactlyOnce(names: string[]): Promise<Record<string, string>> {
  const lists = await Promise.all([A, B, C].map(async (h) => ({ h, vms: await vmsOn(h) })));
  const where: Record<string, string> = {};
  for (const name of names) {
    const running = lists.filter((l) => l.vms.some((v) => v.name === name && v.state === 'running')).map((l) => l.h.name);
    assert.equal(running.length, 1, `${name} runs on ${running.join(', ') || 'no host'}; expected exactly one`);
    // and is not left paused or defined-but-inactive anywhere else
    const elsewhere = lists.filter((l) => l.h.name !== running[0] && l.vms.some((v) => v.name === name && v.state !== 'shutoff'));
    assert.deepEqual(elsewhere.map((l) => l.h.name), [], `${name} has a live copy besides ${running[0]}`);
    where[name] = running[0]!;
  }
  return where;
}

/** Every evacuation.state notification host a's agent sends one connection, from subscription on. */
async function watchEvacuations(): Promise<{ all: EvacuationStatus[]; close(): Promise<void> }> {
  const client = await AgentClient.connect(agentUrl(A), { tls: readTlsPaths(operatorTlsPaths()) });
  const all: EvacuationStatus[] = [];
  client.on('notification', (n) => {
    if (n.method === 'evacuation.state') all.push(n.params as EvacuationStatus);
  });
  assert.deepEqual((await client.subscribe({ topics: ['evacuation.state'] })).topics, ['evacuation.state']);
  return { all, close: () => client.close() };
}

const END_STATES = new Set(['done', 'failed', 'cancelled']);
const endedVms = (s: EvacuationStatus): number => s.vms.filter((v) => END_STATES.has(v.state)).length;

/**
 * The notifications of one evacuation, in the order received: nothing goes back, one VM changes
 * state per notification, each VM reaches its end state once (and stays there), and one last
 * notification, of the ended evacuation, says what the final status says.
 */
function assertEventsMatch(notes: EvacuationStatus[], final: EvacuationStatus): void {
  const mine = notes.filter((n) => n.evacuationId === final.evacuationId);
  assert.ok(mine.length >= final.vms.length + 1, `${mine.length} notifications for ${final.vms.length} VMs`);
  for (const [i, n] of mine.entries()) {
    if (i === 0) continue;
    const prev = mine[i - 1]!;
    assert.ok(n.elapsedMs >= prev.elapsedMs, `notification ${i}: elapsedMs went back`);
    assert.ok(endedVms(n) >= endedVms(prev), `notification ${i}: a VM left its end state`);
    const changed = n.vms.filter((v) => prev.vms.find((p) => p.vmId === v.vmId)?.state !== v.state);
    assert.ok(changed.length <= 1, `notification ${i}: ${changed.map((v) => v.vmName).join(', ')} changed at once`);
  }
  for (const v of final.vms) {
    const states = mine.map((n) => n.vms.find((x) => x.vmId === v.vmId)?.state ?? 'absent');
    const reached = states.filter((st, i) => st === v.state && states[i - 1] !== v.state).length;
    assert.equal(reached, 1, `${v.vmName} reaches ${v.state} in exactly one notification: ${states.join(' ')}`);
    assert.ok(states.slice(states.indexOf(v.state)).every((st) => st === v.state), `${v.vmName} stays ${v.state}`);
  }
  const endedAt = mine.findIndex((n) => n.state === 'finished' || n.state === 'cancelled');
  assert.equal(endedAt, mine.length - 1, 'one notification of the ended evacuation, the last');
  const last = mine[endedAt]!;
  assert.deepEqual([last.state, last.endedAt, last.totals], [final.state, final.endedAt, final.totals]);
  assert.deepEqual(
    last.vms.map((v) => [v.vmId, v.state, v.destination, v.attempts.map((a) => a.migrationId)]),
    final.vms.map((v) => [v.vmId, v.state, v.destination, v.attempts.map((a) => a.migrationId)]),
  );
}

const status = (id: string) => call<EvacuationStatus>(agentUrl(A), 'Host.evacuationStatus', { evacuationId: id });
const ended = (s: EvacuationStatus) => s.state === 'finished' || s.state === 'cancelled';

async function destroyEverywhere(names: string[]): Promise<void> {
  for (const h of [A, B, C]) for (const n of names) await destroyGuest(h.libvirtUri, n).catch(() => undefined);
}

describe('Host.evacuate on a lab of three hosts', { skip: !isRoot && 'needs root (the lab runs libvirtd in mount namespaces)' }, () => {
  before(async () => {
    const lab = await labUp({ agents: true, hosts: 3 });
    useClientTls(lab.tls);
    [A, B, C] = lab.hosts as [LabHostInfo, LabHostInfo, LabHostInfo];
    assert.ok(A && B && C, 'three lab hosts');
    deadUrl = `wss://127.0.0.1:${Number(new URL(agentUrl(C)).port) + 90}`;
    // guests another file left would change what each host has room for
    for (const h of [A, B, C]) for (const v of await vmsOn(h)) await destroyGuest(h.libvirtUri, v.name).catch(() => undefined);
  });

  after(async () => {
    await labDown();
  });

  test('the CLI evacuates every VM; each runs exactly once on b or c; an unreachable destination is skipped; a subscriber sees it happen', async () => {
    const names = ['e1', 'e2', 'e3'];
    await guests(names);
    const tls = operatorTlsPaths();
    const env = { ...process.env, VMIGRATE_AGENT: agentUrl(A), VMIGRATE_CA: tls.ca, VMIGRATE_CERT: tls.cert, VMIGRATE_KEY: tls.key };
    const watch = await watchEvacuations();
    const { stdout } = await execFileP(process.execPath, [CLI, '--json', 'evacuate', '--to', [agentUrl(B), agentUrl(C), deadUrl].join(','), '--watch'], { timeout: 150_000, env });
    const s = JSON.parse(stdout) as EvacuationStatus;
    await waitFor(async () => watch.all.some((n) => n.evacuationId === s.evacuationId && n.state === 'finished'), (seen) => seen, 10_000, 100);
    await watch.close();
    assertEventsMatch(watch.all, s);
    assert.equal(s.state, 'finished');
    assert.deepEqual([s.totals.vms, s.totals.done, s.totals.failed, s.totals.remaining], [3, 3, 0, 0]);
    assert.equal(s.destinations.find((d) => d.destination === deadUrl)?.state, 'unreachable');
    for (const v of s.vms) {
      assert.ok(v.orderReason.length > 0 && v.estimate !== null, `${v.vmName}: an order reason and an estimate`);
      assert.equal(v.migration?.state, 'completed');
      assert.ok(v.destination === agentUrl(B) || v.destination === agentUrl(C));
    }
    // the link is shared: two at a time, half the bandwidth each (the whole link for one left running alone)
    assert.ok(s.vms.every((v) => !v.exclusive && /Parallelism 2 at once/.test(v.orderReason)), JSON.stringify(s.vms.map((v) => v.orderReason)));
    assert.ok(s.vms.every((v) => v.bandwidthMiBps === s.bandwidthMiBps / 2 || v.bandwidthMiBps === s.bandwidthMiBps), JSON.stringify(s.vms.map((v) => v.bandwidthMiBps)));
    // the whole link: started after the others had ended, or raised on the migration itself once they
    // had (VM.migrateChangeParams' way)
    for (const v of s.vms.filter((x) => x.bandwidthMiBps === s.bandwidthMiBps)) {
      const startedAlone = s.vms.every((o) => o === v || Date.parse(o.migration!.endedAt!) <= Date.parse(v.migration!.startedAt));
      const raised = v.migration!.actions.some((a) => a.action.type === 'set-bandwidth' && a.action.mibPerSec === s.bandwidthMiBps && a.applied);
      assert.ok(startedAlone || raised, `${v.vmName}: ${JSON.stringify(s.vms.map((o) => [o.vmName, o.migration?.startedAt, o.migration?.endedAt]))} ${JSON.stringify(v.migration!.actions.map((a) => a.action))}`);
    }
    assert.equal((await vmsOn(A)).filter((v) => v.state === 'running').length, 0, 'host a is empty');
    const where = await runsExactlyOnce(names);
    assert.deepEqual(new Set(Object.values(where)), new Set(['b', 'c']), 'placed on both destinations');
    await destroyEverywhere(names);
  });

  test('a full destination and one that refuses are skipped', async () => {
    // c offers no memory to VMs; b a little; a's own URL (the host's whole free memory, so the first
    // choice) refuses with SAME_HOST
    await restartAgent('c', { agentArgs: ['--memory-capacity', '100'] });
    await restartAgent('b', { agentArgs: ['--memory-capacity', '2000'] });
    try {
      const names = ['f1', 'f2'];
      await guests(names);
      const caps = await call<{ capacity: { memoryFreeMiB: number } }>(agentUrl(C), 'Host.getCapabilities');
      assert.ok(caps.capacity.memoryFreeMiB <= 100, JSON.stringify(caps.capacity));
      const { evacuationId } = await call<{ evacuationId: string }>(agentUrl(A), 'Host.evacuate', { destinations: [agentUrl(A), agentUrl(C), agentUrl(B)], maxParallel: 1 });
      const s = await waitFor(() => status(evacuationId), ended, 120_000, 1000);
      assert.equal(s.totals.done, 2, JSON.stringify(s.vms.map((v) => [v.vmName, v.state, v.error, v.placementReason])));
      for (const v of s.vms) {
        assert.equal(v.destination, agentUrl(B));
        assert.match(v.placementReason, new RegExp(`${agentUrl(C)} has \\d+ MiB free`), 'c is skipped as full');
      }
      // a's own URL was tried for the first VM and refused it; the retry went to b
      const refused = s.vms.flatMap((v) => v.attempts).filter((a) => a.destination === agentUrl(A));
      assert.ok(refused.length === 1 && refused.every((a) => a.state === 'refused' && a.error?.name === 'SAME_HOST'), JSON.stringify(refused));
      assert.equal(s.destinations.find((d) => d.destination === agentUrl(A))?.state, 'unreachable', 'not tried again for the second VM');
      const where = await runsExactlyOnce(names);
      assert.deepEqual(Object.values(where), ['b', 'b']);
      await destroyEverywhere(names);
    } finally {
      await restartAgent('c');
      await restartAgent('b');
    }
  });

  test('cancel stops what has not started; the running migration goes on; every VM runs exactly once', async () => {
    const names = ['c1', 'c2', 'c3'];
    await guests(names);
    const { evacuationId } = await call<{ evacuationId: string }>(agentUrl(A), 'Host.evacuate', { destinations: [agentUrl(B)], maxParallel: 1 });
    await waitFor(() => status(evacuationId), (s) => s.totals.running === 1, 60_000, 200);
    const c = await call<EvacuationStatus>(agentUrl(A), 'Host.evacuationCancel', { evacuationId });
    assert.equal(c.totals.cancelled, 2);
    const s = await waitFor(() => status(evacuationId), ended, 90_000, 500);
    assert.equal(s.state, 'cancelled');
    assert.deepEqual([s.totals.done, s.totals.cancelled, s.totals.remaining], [1, 2, 0]);
    const moved = s.vms.find((v) => v.state === 'done')!.vmName;
    const where = await runsExactlyOnce(names);
    for (const n of names) assert.equal(where[n], n === moved ? 'b' : 'a');
    const again = await fetchError(evacuationId);
    assert.equal(again, 'NOT_CANCELLABLE');
    await destroyEverywhere(names);
  });

  test('a destination whose agent dies mid-evacuation gets its VMs placed elsewhere', async () => {
    const names = ['d1', 'd2'];
    await guests(names);
    // b has a little more room than c: the first VM goes to b, the second is planned for c
    await restartAgent('b', { agentArgs: ['--memory-capacity', '1000'] });
    await restartAgent('c', { agentArgs: ['--memory-capacity', '960'] });
    try {
      const { evacuationId } = await call<{ evacuationId: string }>(agentUrl(A), 'Host.evacuate', { destinations: [agentUrl(B), agentUrl(C)], maxParallel: 1 });
      // planned across b and c; c's agent dies once the first migration runs
      const planned = await waitFor(() => status(evacuationId), (s) => s.totals.running === 1, 60_000, 200);
      assert.ok(planned.vms.some((v) => v.state === 'waiting' && v.destination === agentUrl(C)), 'some VM was planned for c');
      await killAgent('c');
      const s = await waitFor(() => status(evacuationId), ended, 120_000, 1000);
      assert.equal(s.totals.done, 2, JSON.stringify(s.vms.map((v) => [v.vmName, v.state, v.attempts])));
      assert.equal(s.destinations.find((d) => d.destination === agentUrl(C))?.state, 'unreachable');
      const retried = s.vms.filter((v) => v.attempts.some((a) => a.destination === agentUrl(C) && a.error?.name === 'DESTINATION_UNREACHABLE'));
      assert.ok(retried.length >= 1 && retried.every((v) => v.destination === agentUrl(B)));
      await restartAgent('c'); // to list c's VMs through its agent
      await runsExactlyOnce(names);
      assert.equal((await vmsOn(A)).filter((v) => v.state === 'running').length, 0);
      await destroyEverywhere(names);
    } finally {
      await restartAgent('c');
      await restartAgent('b');
    }
  });

  test('the source agent killed (kill -9) and restarted mid-evacuation: the successor goes on under the same evacuationId and empties the host', async () => {
    const names = ['r1', 'r2', 'r3'];
    await guests(names);
    // one at a time, each capped at 12 MiB/s (several seconds each): the kill lands with one done, one running, one waiting
    const { evacuationId } = await call<{ evacuationId: string }>(agentUrl(A), 'Host.evacuate', { destinations: [agentUrl(B), agentUrl(C)], maxParallel: 1, bandwidth: 12 });
    assert.ok(existsSync(join(labDir(), 'a', 'agent-state', `evacuation-${evacuationId}.json`)), 'recorded in the state directory');
    const before = await waitFor(() => status(evacuationId), (s) => s.totals.done >= 1 && s.totals.running === 1, 120_000, 200);
    const doneBefore = before.vms.find((v) => v.state === 'done')!;
    const running = before.vms.find((v) => v.state === 'migrating')!;
    const runningId = running.attempts[running.attempts.length - 1]!.migrationId;
    await killAgent('a');
    await restartAgent('a');

    const afterRestart = await status(evacuationId);
    assert.equal(afterRestart.evacuationId, evacuationId);
    assert.equal(afterRestart.startedAt, before.startedAt);
    assert.deepEqual(afterRestart.vms.map((v) => v.vmId), before.vms.map((v) => v.vmId), 'the same plan, in the same order');
    const kept = afterRestart.vms.find((v) => v.vmId === doneBefore.vmId)!;
    assert.equal(kept.state, 'done');
    assert.deepEqual(kept.attempts, doneBefore.attempts, 'a finished VM keeps its result');
    // the running migration is followed under the evacuation, not started again
    const followed = afterRestart.vms.find((v) => v.vmId === running.vmId)!;
    assert.deepEqual(followed.attempts.map((a) => a.migrationId), [runningId], JSON.stringify(followed.attempts));

    const watch = afterRestart.state === 'running' ? await watchEvacuations() : null;
    const s = await waitFor(() => status(evacuationId), ended, 180_000, 1000);
    assert.equal(s.state, 'finished');
    assert.deepEqual([s.totals.vms, s.totals.done, s.totals.failed], [3, 3, 0], JSON.stringify(s.vms.map((v) => [v.vmName, v.state, v.error, v.attempts])));
    const adopted = s.vms.find((v) => v.vmId === running.vmId)!;
    assert.deepEqual(adopted.attempts.map((a) => [a.migrationId, a.state]), [[runningId, 'completed']]);
    assert.ok(adopted.migration?.adoption, 'its migration was adopted by the restarted agent');
    for (const v of s.vms) assert.equal(v.attempts.filter((a) => a.state === 'completed').length, 1, `${v.vmName}: one migration completed`);
    if (watch) {
      await waitFor(async () => watch.all.some((n) => n.evacuationId === evacuationId && n.state === 'finished'), (seen) => seen, 10_000, 100);
      await watch.close();
      const last = watch.all.filter((n) => n.evacuationId === evacuationId).at(-1)!;
      assert.deepEqual([last.state, last.totals], [s.state, s.totals], 'subscribers of the restarted agent hear the end');
    }
    assert.equal((await vmsOn(A)).filter((v) => v.state === 'running').length, 0, 'host a is empty');
    await runsExactlyOnce(names);
    await destroyEverywhere(names);
  });

  test('the source agent stopped (SIGTERM) mid-evacuation: the migration it aborts on the way out is started again by its successor', async () => {
    const names = ['s1', 's2'];
    await guests(names);
    const { evacuationId } = await call<{ evacuationId: string }>(agentUrl(A), 'Host.evacuate', { destinations: [agentUrl(B)], maxParallel: 1, bandwidth: 12 });
    // libvirt's job must exist (its first figures are in): a stop before that finds nothing to abort,
    // and the successor then adopts the migration instead (safe too, but not this test's path)
    const before = await waitFor(() => status(evacuationId), (s) => s.totals.running === 1 && s.vms.some((v) => v.state === 'migrating' && (v.migration?.dataTotal ?? 0) > 0), 120_000, 200);
    const running = before.vms.find((v) => v.state === 'migrating')!;
    await restartAgent('a'); // TERM: the agent aborts its running migration (the VM stays here) and stops

    const afterRestart = await status(evacuationId);
    const again = afterRestart.vms.find((v) => v.vmId === running.vmId)!;
    assert.ok(['waiting', 'migrating'].includes(again.state), again.state);
    assert.equal(again.attempts[0]!.state, 'interrupted', JSON.stringify(again.attempts));
    const s = await waitFor(() => status(evacuationId), ended, 180_000, 1000);
    assert.equal(s.state, 'finished');
    assert.equal(s.totals.done, 2, JSON.stringify(s.vms.map((v) => [v.vmName, v.state, v.error, v.attempts])));
    assert.deepEqual(s.vms.find((v) => v.vmId === running.vmId)!.attempts.map((a) => a.state), ['interrupted', 'completed']);
    assert.equal((await vmsOn(A)).filter((v) => v.state === 'running').length, 0, 'host a is empty');
    const where = await runsExactlyOnce(names);
    assert.deepEqual(Object.values(where), ['b', 'b']);
    await destroyEverywhere(names);
  });
});

async function fetchError(evacuationId: string): Promise<string | undefined> {
  const { callError } = await import('../helpers/raw-rpc.js');
  const e = await callError(agentUrl(A), 'Host.evacuationCancel', { evacuationId });
  return (e.data as { name?: string } | undefined)?.name;
}
