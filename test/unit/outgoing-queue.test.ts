// The outgoing-migration FIFO: order, positions, cancel, timeout, capacity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutgoingQueue } from '../../src/migration/outgoing-queue.js';

const item = (n: number, at = 0, wait = 1000) => ({ vmUuid: `u${n}`, vmName: `vm${n}`, enqueuedAt: at, deadline: at + wait, payload: n });

test('first in, first out, with 1-based positions by UUID or name', () => {
  const q = new OutgoingQueue<number>();
  for (const n of [1, 2, 3]) assert.equal(q.enqueue(item(n)), true);
  assert.equal(q.position('u1'), 1);
  assert.equal(q.position('vm3'), 3);
  assert.equal(q.position('nope'), null);
  assert.deepEqual(q.next(2).map((i) => i.payload), [1, 2]);
  assert.equal(q.position('vm3'), 1);
  assert.deepEqual(q.next(0), []);
});

test('cancel removes a queued migration and moves the ones behind it up', () => {
  const q = new OutgoingQueue<number>();
  for (const n of [1, 2, 3]) q.enqueue(item(n));
  assert.equal(q.remove('vm2')?.payload, 2);
  assert.equal(q.remove('vm2'), undefined);
  assert.equal(q.position('vm3'), 2);
});

test('waiting past the deadline takes the migration out', () => {
  const q = new OutgoingQueue<number>();
  q.enqueue(item(1, 0, 500));
  q.enqueue(item(2, 100, 5000));
  assert.deepEqual(q.expire(499), []);
  assert.deepEqual(q.expire(500).map((i) => i.payload), [1]);
  assert.equal(q.position('vm2'), 1);
});

test('one entry per VM, and a bounded queue', () => {
  const q = new OutgoingQueue<number>(2);
  assert.equal(q.enqueue(item(1)), true);
  assert.equal(q.enqueue(item(1)), false);
  assert.equal(q.enqueue(item(2)), true);
  assert.equal(q.enqueue(item(3)), false);
  assert.equal(q.length, 2);
});
