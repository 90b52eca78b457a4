// The agent's dirty-rate samples (src/daemon/dirty-history.ts): the window, and the fresh pair of a
// short and a long sample an evacuation plans from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshPair, HISTORY_WINDOW_MS, withinWindow } from '../../src/daemon/dirty-history.js';
import { LONG_PERIOD_SEC as LONG_SAMPLE_SEC, SHORT_PERIOD_SEC as SHORT_SAMPLE_SEC } from '../../src/simulator/predict.js';

const s = (atMs: number, mibPerSec: number, periodSec = SHORT_SAMPLE_SEC) => ({ atMs, mibPerSec, periodSec });

test('withinWindow keeps the samples of the last window, oldest first', () => {
  const now = 1_000_000;
  const all = [s(now - HISTORY_WINDOW_MS - 1, 1), s(now - HISTORY_WINDOW_MS, 2), s(now - 10, 3), s(now + 5, 4)];
  assert.deepEqual(withinWindow(all, now).map((x) => x.mibPerSec), [2, 3]);
});

test('freshPair: the latest short and long samples, only when both are fresh', () => {
  const now = 100_000;
  const samples = [s(now - 50_000, 90), s(now - 20_000, 100), s(now - 15_000, 40, LONG_SAMPLE_SEC), s(now - 5_000, 120)];
  assert.deepEqual(freshPair(samples, now, 30_000), { shortMiBps: 120, longMiBps: 40 });
  assert.equal(freshPair(samples, now, 10_000), null, 'the long one is too old');
  assert.equal(freshPair([s(now - 1_000, 5)], now, 30_000), null, 'no long one');
});
