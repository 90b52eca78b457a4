// One agent per stateDir: a live agent's lock refuses a second at once; a crashed (SIGKILLed)
// agent's lock does not hold up its successor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { holderVerdict, lockStateDir, StateDirBusyError } from '../../src/daemon/state-lock.js';

const LOCK_MODULE = new URL('../../src/daemon/state-lock.js', import.meta.url).href;

/** Another process holding the lock; `vmigrated` on its command line makes it look like an agent. */
async function holder(dir: string, asAgent: boolean): Promise<ChildProcess> {
  const code = `const { lockStateDir } = await import(${JSON.stringify(LOCK_MODULE)}); await lockStateDir(${JSON.stringify(dir)}, () => {}); console.log('locked'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code, ...(asAgent ? ['vmigrated'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (b: Buffer) => (b.toString().includes('locked') ? resolve() : undefined));
    child.once('exit', (c) => reject(new Error(`holder exited ${c}`)));
  });
  return child;
}

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmigrate-lock-'));
    try {
      await fn(join(dir, 'state'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('holder verdicts', () => {
  assert.equal(holderVerdict({ pid: 10, alive: true, isAgent: true }, 1), 'busy');
  assert.equal(holderVerdict({ pid: 10, alive: false, isAgent: false }, 1), 'crashed');
  assert.equal(holderVerdict({ pid: 1, alive: true, isAgent: true }, 1), 'crashed', 'our own pid: a predecessor in the same pid namespace');
  assert.equal(holderVerdict({ pid: 10, alive: true, isAgent: false }, 1), 'wait-stale', 'pid reused by something else');
  assert.equal(holderVerdict({ pid: null, alive: false, isAgent: false }, 1), 'wait-stale');
});

test('a second agent on a live agent\'s stateDir is refused at once, naming the holder', withDir(async (dir) => {
  const first = await holder(dir, true);
  try {
    const t0 = Date.now();
    await assert.rejects(lockStateDir(dir, () => {}), (err: unknown) => err instanceof StateDirBusyError && err.holderPid === first.pid && /in use by another vmigrated \(pid \d+\)/.test(err.message));
    assert.ok(Date.now() - t0 < 2000, `refused in ${Date.now() - t0} ms`);
  } finally {
    first.kill('SIGKILL');
  }
}));

test('a SIGKILLed agent\'s lock is taken over at once by its successor', withDir(async (dir) => {
  const first = await holder(dir, true);
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  const t0 = Date.now();
  const lock = await lockStateDir(dir, () => {});
  assert.ok(Date.now() - t0 < 2000, `taken in ${Date.now() - t0} ms`);
  assert.equal(readFileSync(join(dir, 'agent.pid'), 'utf8').trim(), String(process.pid));
  await lock.release();
  assert.ok(!existsSync(join(dir, 'agent.lock')) && !existsSync(join(dir, 'agent.pid')), 'released: nothing left');
  // and taken again after a clean release
  await (await lockStateDir(dir, () => {})).release();
}));
