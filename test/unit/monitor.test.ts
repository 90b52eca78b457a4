import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startMonitor } from '../../src/migration/monitor.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('samples never overlap, even when a sample is slower than the interval', async () => {
  let inFlight = 0;
  let maxInFlight = 0;
  let count = 0;
  const m = startMonitor({
    intervalMs: 5,
    timeoutMs: 1000,
    sample: async () => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await sleep(20);
      inFlight -= 1;
      return ++count;
    },
    onSample: () => {},
    onError: (e) => assert.fail(e),
  });
  await sleep(150);
  await m.stop();
  assert.equal(maxInFlight, 1);
  assert.ok(count >= 3, `took ${count} samples`);
});

test('a sample that hangs times out and the loop goes on', async () => {
  const errors: string[] = [];
  let calls = 0;
  const m = startMonitor<number>({
    intervalMs: 1,
    timeoutMs: 20,
    sample: () => {
      calls += 1;
      return calls === 1 ? new Promise<number>(() => {}) : Promise.resolve(calls);
    },
    onSample: () => {},
    onError: (e) => errors.push(e.message),
  });
  await sleep(100);
  await m.stop();
  assert.match(errors[0] ?? '', /within 20 ms/);
  assert.ok(calls >= 2);
});

test('poke takes the next sample before the interval ends', async () => {
  const times: number[] = [];
  const m = startMonitor({
    intervalMs: 10_000,
    timeoutMs: 1000,
    sample: async () => Date.now(),
    onSample: (t) => void times.push(t),
    onError: () => {},
  });
  await sleep(20);
  m.poke();
  await sleep(20);
  await m.stop();
  assert.equal(times.length, 2);
});

test('stop waits for the sample in flight and no sample is handled after it', async () => {
  let handled = 0;
  const m = startMonitor({
    intervalMs: 1,
    timeoutMs: 1000,
    sample: async () => {
      await sleep(30);
      return 1;
    },
    onSample: () => void (handled += 1),
    onError: () => {},
  });
  await sleep(10);
  await m.stop();
  const after = handled;
  await sleep(50);
  assert.equal(handled, after);
});
