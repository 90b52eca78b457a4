// Outgoing slots: the pure decision (start, queue, refuse), and the manager's FIFO wiring without
// libvirt: slots held by claims, waiting migrations' status and events, start when a slot frees,
// cancel, timeout, shutdown. That a queued migration really migrates is test/e2e/queue.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { AgentError } from '../../src/api/errors.js';
import { MigrationManager } from '../../src/migration/manager.js';
import { decideOutgoing, freeSlots } from '../../src/migration/outgoing-slots.js';
import type { MigrationStatus } from '../../src/migration/status.js';
import type { Migration } from '../../src/migration/migration.js';

const logger = pino({ level: 'silent' });
const view = (busy: number, queued = 0) => ({ busy, limit: 2, queued, maxQueued: 3 });

test('start while a slot is free and nobody waits; else queue, or refuse with queue:false or a full FIFO', () => {
  assert.deepEqual(decideOutgoing(view(1), true), { kind: 'start' });
  assert.deepEqual(decideOutgoing(view(2), true), { kind: 'queue' });
  assert.deepEqual(decideOutgoing(view(2), false), { kind: 'refuse', reason: 'limit' });
  assert.deepEqual(decideOutgoing(view(2, 3), true), { kind: 'refuse', reason: 'queue-full' });
  // a newcomer never overtakes one that waits, even in the instant a slot is free
  assert.deepEqual(decideOutgoing(view(1, 1), true), { kind: 'queue' });
  assert.equal(freeSlots(3, 2), 0);
  assert.equal(freeSlots(0, 2), 2);
});

const init = (n: number) => ({ migrationId: `m${n}`, vmUuid: `u${n}`, vmName: `vm${n}`, source: 'a', destination: 'wss://b', policyName: 'default', tls: false });
const refused = () => Promise.reject(new AgentError('DESTINATION_REFUSED', 'no'));

function recorder(mgr: MigrationManager): MigrationStatus[] {
  const seen: MigrationStatus[] = [];
  mgr.on('state', (s) => seen.push(s));
  mgr.on('progress', (s) => seen.push(s));
  return seen;
}

test('a migration beyond the limit waits with its position; the head starts when a slot frees', async () => {
  const mgr = new MigrationManager(1);
  const seen = recorder(mgr);
  assert.equal(mgr.claim('u1', 'vm1', true), 'start');
  assert.equal(mgr.claim('u2', 'vm2', true), 'queue');
  const w2 = mgr.enqueue(init(2), 60_000, refused, logger);
  assert.equal(mgr.claim('u3', 'vm3', true), 'queue');
  let launched3 = false;
  mgr.enqueue(init(3), 60_000, () => ((launched3 = true), refused()), logger);
  assert.throws(() => mgr.claim('u2', 'vm2', true), /already being migrated/);
  assert.throws(() => mgr.claim('u4', 'vm4', false), (e: AgentError) => e.errorName === 'TOO_MANY_MIGRATIONS');
  assert.equal(mgr.get('vm2').snapshot().state, 'queued');
  assert.equal(mgr.get('vm2').snapshot().queuePosition, 1);
  assert.equal(mgr.get('u3').snapshot().queuePosition, 2);
  assert.equal(mgr.queuedCount, 2);

  mgr.release('u1'); // the first one ended: vm2 is asked for, and refused by its destination
  const end2 = await w2.done;
  assert.equal(end2.state, 'failed');
  assert.equal(end2.error?.name, 'DESTINATION_REFUSED');
  assert.equal(end2.queuePosition, undefined);
  assert.equal(end2.vmLocation, 'source');
  // its slot freed in turn: vm3 was started next
  await new Promise((r) => setImmediate(r));
  assert.equal(launched3, true);
  assert.equal(mgr.queuedCount, 0);
  const states = seen.filter((s) => s.vmName === 'vm3').map((s) => `${s.state}${s.queuePosition ?? ''}`);
  assert.deepEqual(states.slice(0, 3), ['queued2', 'queued1', 'pending']);
});

test('cancel takes a waiting migration out; the ones behind move up', async () => {
  const mgr = new MigrationManager(1);
  mgr.claim('u1', 'vm1', true);
  mgr.claim('u2', 'vm2', true);
  const w2 = mgr.enqueue(init(2), 60_000, refused, logger);
  mgr.claim('u3', 'vm3', true);
  mgr.enqueue(init(3), 60_000, refused, logger);
  await mgr.get('vm2').cancel();
  assert.equal((await w2.done).state, 'cancelled');
  assert.equal(mgr.get('vm2').snapshot().error, null);
  assert.equal(mgr.get('vm3').snapshot().queuePosition, 1);
  await assert.rejects(mgr.get('vm2').cancel(), (e: AgentError) => e.errorName === 'NOT_CANCELLABLE');
  // the VM may be asked for again
  assert.equal(mgr.claim('u2', 'vm2', true), 'queue');
});

test('waiting past its timeout ends failed with TOO_MANY_MIGRATIONS; shutdown answers the rest', async () => {
  const mgr = new MigrationManager(1);
  mgr.claim('u1', 'vm1', true);
  mgr.claim('u2', 'vm2', true);
  const w2 = mgr.enqueue(init(2), 200, refused, logger);
  mgr.claim('u3', 'vm3', true);
  const w3 = mgr.enqueue(init(3), 60_000, refused, logger);
  const keepAlive = setTimeout(() => {}, 5_000); // the expiry tick does not hold the process (unref)
  const end2 = await w2.done;
  clearTimeout(keepAlive);
  assert.equal(end2.state, 'failed');
  assert.equal(end2.error?.name, 'TOO_MANY_MIGRATIONS');
  assert.match(end2.error?.message ?? '', /no outgoing slot/);
  mgr.close();
  assert.equal((await w3.done).state, 'cancelled');
  // and nothing starts once closed
  assert.throws(() => mgr.claim('u5', 'vm5', true), (e: AgentError) => e.errorName === 'TOO_MANY_MIGRATIONS');
});

test('a cancel while it is being started is passed on to the migration it becomes', async () => {
  const mgr = new MigrationManager(1);
  mgr.claim('u1', 'vm1', true);
  mgr.claim('u2', 'vm2', true);
  let cancelled = false;
  let resolveLaunch!: (m: Migration) => void;
  const fake = { cancel: async () => void (cancelled = true), done: Promise.resolve({ state: 'cancelled' } as MigrationStatus) } as unknown as Migration;
  const w2 = mgr.enqueue(init(2), 60_000, () => new Promise((r) => (resolveLaunch = r)), logger);
  mgr.release('u1');
  assert.equal(w2.snapshot().state, 'pending');
  await w2.cancel();
  resolveLaunch(fake);
  assert.equal((await w2.done).state, 'cancelled');
  assert.equal(cancelled, true);
});
