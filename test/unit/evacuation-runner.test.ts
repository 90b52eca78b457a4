import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentError } from '../../src/api/errors.js';
import type { MigrationStatus } from '../../src/api/results.js';
import { builtinPolicy } from '../../src/controller/policy.js';
import { Evacuation, type EvacuationPorts } from '../../src/evacuation/runner.js';
import { EvacuationRegistry, KEPT_EVACUATIONS } from '../../src/evacuation/registry.js';
import type { RunnerState } from '../../src/evacuation/record.js';

interface Fake {
  ports: EvacuationPorts;
  started: { vm: string; dst: string; bw: number; measured?: number }[];
  /** setBandwidth calls, in order (failed ones too) */
  rebalanced: { vm: string; bw: number; ok: boolean }[];
  /** setBandwidth throws for these VMs */
  refuseRebalance: Set<string>;
  finish(vm: string, state: 'completed' | 'failed' | 'cancelled'): void;
  /** the migration has sent all its data; only the handover is left */
  sendAll(vm: string): void;
}

/** VMs of 256 MiB, light; destinations answer per `caps` (undefined: unreachable). `refuse`: destinations whose VM.migrate throws. */
function fake(vms: string[], caps: Record<string, number | undefined>, refuse: Record<string, string> = {}): Fake {
  const statuses = new Map<string, MigrationStatus>();
  const started: Fake['started'] = [];
  const rebalanced: Fake['rebalanced'] = [];
  const refuseRebalance = new Set<string>();
  let n = 0;
  const ports: EvacuationPorts = {
    vms: async () => vms.map((v) => ({ vmId: v, vmName: v, ramMiB: 256 })),
    measure: async () => ({ dirtyRateMiBps: 2, workingSetMiB: 16 }),
    capacity: async (d) => {
      const free = caps[d as string];
      if (free === undefined) throw new AgentError('DESTINATION_UNREACHABLE', `${d as string} is unreachable`);
      return { name: d as string, memoryFreeMiB: free, incomingSlotsFree: 2 };
    },
    migrate: async (vm, d, bw, measured) => {
      const r = refuse[d as string];
      if (r) throw new AgentError(r as 'DESTINATION_REFUSED', `${d as string} refused`);
      started.push({ vm, dst: d as string, bw, ...(measured !== undefined ? { measured } : {}) });
      const migrationId = `m${++n}`;
      statuses.set(vm, { migrationId, vmName: vm, state: 'running', error: null, elapsedMs: 0 } as unknown as MigrationStatus);
      return { migrationId };
    },
    status: (vm) => statuses.get(vm) ?? null,
    cancel: async (vm) => {
      const s = statuses.get(vm)!;
      statuses.set(vm, { ...s, state: 'cancelled' });
    },
    setBandwidth: async (vm, bw) => {
      const ok = !refuseRebalance.has(vm) && statuses.get(vm)?.state === 'running';
      rebalanced.push({ vm, bw, ok });
      if (!ok) throw new AgentError('NO_MIGRATION', `migration of ${vm} is ending`);
    },
  };
  return {
    ports,
    started,
    rebalanced,
    refuseRebalance,
    finish: (vm, state) => {
      const s = statuses.get(vm)!;
      statuses.set(vm, { ...s, state, error: state === 'failed' ? { code: 1012, name: 'MIGRATION_FAILED', message: 'boom' } : null });
    },
    sendAll: (vm) => {
      const s = statuses.get(vm)!;
      statuses.set(vm, { ...s, iteration: 3, dataProcessed: 300 << 20, dataRemaining: 0, postcopy: false });
    },
  };
}

const opts = (destinations: string[]) => ({ evacuationId: 'e1', destinations, policy: builtinPolicy('minimal-downtime'), maxParallel: 2, bandwidthMiBps: 100, tickMs: 5 });
const until = async (cond: () => boolean) => {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), 'condition not reached');
};

describe('Evacuation runner', () => {
  it('hands the planning measurement to the migration it starts, once (a retry measures afresh)', async () => {
    const f = fake(['v1'], { b: 4000, c: 3000 });
    const e = new Evacuation(opts(['b', 'c']), f.ports);
    await until(() => f.started.length === 1);
    assert.equal(f.started[0]!.measured, 2);
    f.finish('v1', 'failed');
    await until(() => f.started.length === 2);
    assert.equal(f.started[1]!.measured, undefined);
    f.finish('v1', 'completed');
    await e.done;
  });

  it('moves every VM, two at a time, each with half the link; skips an unreachable and a full destination', async () => {
    const f = fake(['v1', 'v2', 'v3'], { b: 4000, c: 100, dead: undefined });
    const e = new Evacuation(opts(['b', 'c', 'dead']), f.ports);
    await until(() => f.started.length === 2);
    assert.ok(f.started.every((s) => s.dst === 'b' && s.bw === 50));
    f.finish(f.started[0]!.vm, 'completed');
    await until(() => f.started.length === 3);
    f.finish(f.started[1]!.vm, 'completed');
    f.finish(f.started[2]!.vm, 'completed');
    const s = await e.done;
    assert.equal(s.state, 'finished');
    assert.deepEqual(s.totals, { vms: 3, done: 3, failed: 0, cancelled: 0, running: 0, remaining: 0 });
    assert.equal(s.destinations.find((d) => d.destination === 'dead')!.state, 'unreachable');
    assert.equal(s.predictedRemainingSec, 0);
  });

  it('rebalances the link: when a shared migration ends the other gets the whole link, and when one starts beside it both get half', async () => {
    const f = fake(['v1', 'v2', 'v3'], { b: 4000 });
    const e = new Evacuation(opts(['b']), f.ports);
    await until(() => f.started.length === 2);
    assert.deepEqual(f.started.map((s) => s.bw), [50, 50]);
    assert.deepEqual(f.rebalanced, [], 'started with their shares: nothing to change');
    const [first, second] = [f.started[0]!.vm, f.started[1]!.vm];
    // the first ends and the third starts in the same look: still two sharing, nothing changes
    f.finish(first, 'completed');
    await until(() => f.started.length === 3);
    assert.equal(f.started[2]!.bw, 50);
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(f.rebalanced, []);
    // the second ends; nothing waits: the third, running on, gets the whole link
    f.finish(second, 'completed');
    const third = f.started[2]!.vm;
    await until(() => f.rebalanced.length === 1);
    assert.deepEqual(f.rebalanced, [{ vm: third, bw: 100, ok: true }]);
    await until(() => e.snapshot().vms.find((v) => v.vmId === third)!.bandwidthMiBps === 100);
    f.finish(third, 'completed');
    const s = await e.done;
    assert.deepEqual(s.vms.map((v) => [v.vmId, v.bandwidthMiBps]), [[first, 50], [second, 50], [third, 100]], 'the status shows the share each had last');
  });

  it('starts the next migration while one is in its handover (all data sent), which keeps its slot but leaves its share of the link', async () => {
    // two destinations: the one in its handover still holds an incoming slot of its own
    const f = fake(['v1', 'v2', 'v3'], { b: 4000, c: 4000 });
    const e = new Evacuation(opts(['b', 'c']), f.ports);
    await until(() => f.started.length === 2);
    const [first, second] = [f.started[0]!.vm, f.started[1]!.vm];
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(f.started.length, 2, 'two at once, no more');
    f.sendAll(first);
    await until(() => f.started.length === 3);
    assert.equal(f.started[2]!.bw, 50, 'beside the second, which still sends');
    await new Promise((r) => setTimeout(r, 30));
    assert.ok(!f.rebalanced.some((r) => r.vm === first), 'a migration in its handover is not given a share');
    assert.equal(e.snapshot().totals.running, 3, 'the one in its handover still counts as running');
    for (const vm of [first, second, f.started[2]!.vm]) f.finish(vm, 'completed');
    const s = await e.done;
    assert.equal(s.totals.done, 3);
  });

  it('a share that cannot be changed is reported once, tried again, and never fails the evacuation', async () => {
    const f = fake(['v1', 'v2'], { b: 4000 });
    const errors: [string, number][] = [];
    const e = new Evacuation(opts(['b']), f.ports, { onRebalanceError: (vm, bw) => errors.push([vm, bw]) });
    await until(() => f.started.length === 2);
    const [first, second] = [f.started[0]!.vm, f.started[1]!.vm];
    f.refuseRebalance.add(second);
    f.finish(first, 'completed');
    await until(() => f.rebalanced.length >= 3);
    assert.deepEqual(errors, [[second, 100]], 'reported once');
    assert.equal(e.snapshot().vms.find((v) => v.vmId === second)!.bandwidthMiBps, 50, 'keeps its share');
    f.refuseRebalance.delete(second);
    await until(() => f.rebalanced.some((r) => r.ok));
    await until(() => e.snapshot().vms.find((v) => v.vmId === second)!.bandwidthMiBps === 100);
    f.finish(second, 'completed');
    const s = await e.done;
    assert.equal(s.state, 'finished');
    assert.equal(s.totals.done, 2);
    assert.equal(s.error, null);
  });

  it('a failed migration is retried once on another destination, then reported', async () => {
    const f = fake(['v1'], { b: 4000, c: 3000 });
    const e = new Evacuation(opts(['b', 'c']), f.ports);
    await until(() => f.started.length === 1);
    assert.equal(f.started[0]!.dst, 'b');
    f.finish('v1', 'failed');
    await until(() => f.started.length === 2);
    assert.equal(f.started[1]!.dst, 'c');
    f.finish('v1', 'failed');
    const s = await e.done;
    assert.equal(s.vms[0]!.state, 'failed');
    assert.equal(s.vms[0]!.attempts.length, 2);
    assert.equal(s.totals.failed, 1);
  });

  it('a destination that refuses is skipped for that VM', async () => {
    const f = fake(['v1'], { b: 4000, c: 3000 }, { b: 'DESTINATION_REFUSED' });
    const e = new Evacuation(opts(['b', 'c']), f.ports);
    await until(() => f.started.length === 1);
    assert.equal(f.started[0]!.dst, 'c');
    f.finish('v1', 'completed');
    const s = await e.done;
    assert.equal(s.vms[0]!.state, 'done');
    assert.equal(s.vms[0]!.attempts[0]!.state, 'refused');
  });

  it('no destination fits: NO_DESTINATION', async () => {
    const f = fake(['v1'], { b: 100 });
    const s = await new Evacuation(opts(['b']), f.ports).done;
    assert.equal(s.vms[0]!.state, 'failed');
    assert.equal(s.vms[0]!.error!.name, 'NO_DESTINATION');
  });

  it('cancel: what has not started stays, running ones go on to the end', async () => {
    const f = fake(['v1', 'v2', 'v3'], { b: 4000 });
    const e = new Evacuation(opts(['b']), f.ports);
    await until(() => f.started.length === 2);
    await e.cancel(false);
    f.finish(f.started[0]!.vm, 'completed');
    f.finish(f.started[1]!.vm, 'completed');
    const s = await e.done;
    assert.equal(s.state, 'cancelled');
    assert.equal(f.started.length, 2);
    assert.deepEqual([s.totals.done, s.totals.cancelled], [2, 1]);
    await assert.rejects(e.cancel(false), (err: AgentError) => err.errorName === 'NOT_CANCELLABLE');
  });

  it('cancel with abortRunning cancels the running migrations too', async () => {
    const f = fake(['v1', 'v2'], { b: 4000 });
    const e = new Evacuation(opts(['b']), f.ports);
    await until(() => f.started.length === 2);
    await e.cancel(true);
    const s = await e.done;
    assert.equal(s.totals.cancelled, 2);
  });

  it('records at creation and at each change; a migration is recorded as being started before VM.migrate is called', async () => {
    const f = fake(['v1'], { b: 4000 });
    const saved: RunnerState[] = [];
    const migrate = f.ports.migrate;
    let seenAtStart: RunnerState | undefined;
    f.ports.migrate = async (...a) => {
      seenAtStart = structuredClone(saved[saved.length - 1]);
      return migrate(...a);
    };
    const e = new Evacuation(opts(['b']), f.ports, { save: (s) => saved.push(structuredClone(s)) });
    assert.equal(saved[0]!.status.state, 'planning');
    assert.equal(saved[0]!.parallel, null);
    await until(() => f.started.length === 1);
    assert.deepEqual(seenAtStart!.starting.map((i) => [i.vmId, i.destination]), [['v1', 'b']]);
    await until(() => saved[saved.length - 1]!.status.vms[0]!.state === 'migrating');
    assert.deepEqual(saved[saved.length - 1]!.starting, []);
    f.finish('v1', 'completed');
    await e.done;
    const last = saved[saved.length - 1]!;
    assert.equal(last.status.state, 'finished');
    assert.equal(last.status.vms[0]!.state, 'done');
  });

  it('a record that cannot be written: at creation the request fails; before a start the VM is not started', async () => {
    const f = fake(['v1'], { b: 4000 });
    assert.throws(() => new Evacuation(opts(['b']), f.ports, { save: () => { throw new AgentError('STATE_WRITE_FAILED', 'disk full'); } }), /disk full/);
    let n = 0;
    const errors: unknown[] = [];
    const e = new Evacuation(opts(['b']), f.ports, {
      save: (s) => {
        n++;
        if (s.starting.length > 0) throw new AgentError('STATE_WRITE_FAILED', 'disk full');
      },
      onSaveError: (err) => errors.push(err),
    });
    const s = await e.done;
    assert.equal(f.started.length, 0);
    assert.equal(s.vms[0]!.state, 'failed');
    assert.equal(s.vms[0]!.error!.name, 'STATE_WRITE_FAILED');
    assert.ok(n > 2 && errors.length === 0);
  });

  it('halt (the agent stops): nothing more is started or recorded, and the evacuation is not ended', async () => {
    const f = fake(['v1', 'v2', 'v3'], { b: 4000 });
    const saved: RunnerState[] = [];
    const e = new Evacuation({ ...opts(['b']), maxParallel: 1 }, f.ports, { save: (s) => saved.push(structuredClone(s)) });
    await until(() => f.started.length === 1);
    e.halt();
    const count = saved.length;
    f.finish(f.started[0]!.vm, 'cancelled'); // the agent's stop aborts it
    const s = await e.done;
    assert.equal(s.state, 'running');
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(f.started.length, 1);
    assert.equal(saved.length, count);
    assert.equal(saved[saved.length - 1]!.status.vms.filter((v) => v.state === 'migrating').length, 1);
  });

  it('resumed: the adopted migration is followed to its end, the waiting VMs start; an interrupted attempt does not use up the retry', async () => {
    // first life: v1 migrating; v2 waiting after an attempt on b the agent's stop interrupted
    const f = fake(['v1', 'v2'], { b: 4000, c: 3000 });
    const first = new Evacuation({ ...opts(['b', 'c']), maxParallel: 1 }, f.ports);
    await until(() => f.started.length === 1);
    first.halt();
    const from = first.snapshot();
    const v1 = from.vms.find((v) => v.vmId === f.started[0]!.vm)!;
    const v2 = from.vms.find((v) => v !== v1)!;
    v2.attempts = [{ destination: 'b', migrationId: 'mx', state: 'interrupted', error: null }];
    const e = new Evacuation({ ...opts(['b', 'c']), maxParallel: 1 }, f.ports, { from: { status: from, parallel: 1, cancelRequested: false } });
    assert.equal(e.snapshot().evacuationId, 'e1');
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(f.started.length, 1, 'v2 waits for v1 (one at a time, as planned)');
    f.finish(v1.vmId, 'completed');
    await until(() => f.started.length === 2);
    assert.deepEqual(f.started[1], { vm: v2.vmId, dst: 'b', bw: 100 }, 'b again: the interrupted attempt does not exclude it');
    f.finish(v2.vmId, 'failed');
    await until(() => f.started.length === 3);
    assert.equal(f.started[2]!.dst, 'c', 'retried once elsewhere: the interrupted attempt did not use up the retry');
    f.finish(v2.vmId, 'completed');
    const s = await e.done;
    assert.equal(s.state, 'finished');
    assert.equal(s.startedAt, from.startedAt);
    assert.deepEqual(s.vms.map((v) => v.state), ['done', 'done']);
    assert.deepEqual(s.vms.find((v) => v.vmId === v2.vmId)!.attempts.map((a) => a.state), ['interrupted', 'failed', 'completed']);
  });

  it('the registry keeps the last evacuations, ended ones restored from records among them, and forgets the oldest', async () => {
    const forgotten: string[] = [];
    const reg = new EvacuationRegistry((id) => forgotten.push(id));
    const f = fake([], { b: 4000 });
    for (let i = 0; i < KEPT_EVACUATIONS; i++) reg.restore({ ...(await new Evacuation({ ...opts(['b']), evacuationId: `old${i}` }, f.ports).done) });
    assert.equal(reg.get('old0').snapshot().state, 'finished');
    await assert.rejects(reg.get('old0').cancel(false), (err: AgentError) => err.errorName === 'NOT_CANCELLABLE');
    const e = reg.start({ ...opts(['b']), evacuationId: 'new' }, f.ports);
    assert.deepEqual(forgotten, ['old0']);
    assert.throws(() => reg.get('old0'), (err: AgentError) => err.errorName === 'NO_EVACUATION');
    await e.done;
  });
});
