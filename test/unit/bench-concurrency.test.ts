// The concurrency benchmark's pure parts: percentiles, and the report's ratios against one at a time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchTable } from '../../src/bench/concurrency-report.js';
import { median, percentile } from '../../src/bench/stats.js';
import type { BatchResult } from '../../src/bench/batch.js';

test('nearest-rank percentiles', () => {
  const v = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  assert.equal(percentile(v, 99), 99);
  assert.equal(percentile(v, 100), 100);
  assert.equal(median([3, 1, 2]), 2);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('a concurrent batch is compared with the one-at-a-time batch of the same size', () => {
  const b = (guests: number, mode: 'sequential' | 'concurrent', totalSec: number, workLostSec: number): BatchResult => ({ guests, mode, totalSec, workLostSec, completed: guests, runs: [] });
  const table = batchTable([b(2, 'sequential', 30, 1), b(2, 'concurrent', 15, 2)]);
  assert.match(table, /\| 2 \| all at once \| 15 \| 2 \| 2\/2 \| 0\.50× \| 2\.00× \|/);
  assert.match(table, /\| 2 \| one at a time \| 30 \| 1 \| 2\/2 \| 1\.00× \| 1\.00× \|/);
});
