// Which QEMU a new lab runs (src/lab/qemu-engine.ts): the setting, checked before any host starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { LabError } from '../../src/lab/errors.js';
import { QEMU_BIND_TARGETS, resolveQemuRoot } from '../../src/lab/qemu-engine.js';

test('"system" keeps the machine\'s QEMU', () => {
  assert.equal(resolveQemuRoot('system'), null);
});

test('a tree with every path the lab binds is taken; one without is refused, naming the missing path', async () => {
  const root = await mkdtemp(join(tmpdir(), 'qemu-tree-'));
  try {
    for (const t of QEMU_BIND_TARGETS.slice(0, -1)) {
      await mkdir(dirname(join(root, t)), { recursive: true });
      await writeFile(join(root, t), '');
    }
    const last = QEMU_BIND_TARGETS.at(-1)!;
    assert.throws(() => resolveQemuRoot(root), (e: unknown) => e instanceof LabError && e.message.includes(join(root, last)));
    await mkdir(join(root, last), { recursive: true });
    assert.equal(resolveQemuRoot(root), root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
