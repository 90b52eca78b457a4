// The lab's Linux guest (Debian kernel, busybox and stress-ng in an initramfs) on real lab hosts: it
// boots under TCG and reports its work on the serial console; it migrates a -> b through the agents
// (raw JSON-RPC) and goes on working on b; the phase-changing variant runs its plan.
// Uses $VMIGRATE_LAB_DIR / $VMIGRATE_LAB_PORT_BASE.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { defineGuest, destroyGuest, kernelFailure, labDown, labUp, listDomains, readLinuxWork, virsh, type LabHostInfo, type WorkWindow } from '../../src/lab/index.js';
import { call, useClientTls, waitFor } from '../helpers/raw-rpc.js';

const isRoot = process.getuid?.() === 0;
let A: LabHostInfo;
let B: LabHostInfo;
const agent = (h: LabHostInfo): string => h.agentUrl ?? assert.fail(`lab host ${h.name} has no agent`);

interface Status {
  state: string;
  elapsedMs: number;
  iteration: number;
  throttlePercent: number;
  error: unknown;
}

async function windowsOf(serialLog: string, pred: (w: WorkWindow[]) => boolean, timeoutMs: number): Promise<WorkWindow[]> {
  return waitFor(async () => (await readLinuxWork(serialLog)).windows, pred, timeoutMs, 500);
}

describe('the Linux guest on the lab', { skip: isRoot ? false : 'needs root (lab hosts)' }, () => {
  before(async () => {
    const lab = await labUp({ agents: true });
    useClientTls(lab.tls);
    [A, B] = [lab.hosts[0]!, lab.hosts[1]!];
  });

  after(async () => {
    for (const n of ['lx-mig', 'lx-phase']) {
      await destroyGuest(A.libvirtUri, n);
      await destroyGuest(B.libvirtUri, n);
    }
    await labDown();
  });

  // Under Debian 12's QEMU 7.2 the guest's kernel panicked on b in most runs (TCG lost dirty pages,
  // docs/lab.md); the lab now runs QEMU 10, which has the fix, and the guest must survive.
  test('boots, reports work, migrates a -> b through the agents and keeps working on b', { timeout: 300_000 }, async (t) => {
    const t0 = Date.now();
    const g = await defineGuest({ kind: 'linux', host: 'a', name: 'lx-mig', ramMiB: 512, wsMiB: 64, rateMiB: 30 });
    assert.match(g.kernelPackage, /^linux-image-/);
    const before = await windowsOf(g.serialLog, (w) => w.length >= 2, 120_000);
    t.diagnostic(`first work report ${((Date.now() - t0) / 1000).toFixed(1)} s after create; windows: ${before.map((w) => `${w.rateMB} MB/s over ${w.durationSec} s`).join(', ')}`);
    assert.ok(before.every((w) => w.targetMB === 30 && w.rateMB > 0 && w.rateMB <= 30 * 1.1), JSON.stringify(before));

    await call(agent(A), 'VM.migrate', { vmId: 'lx-mig', dst: agent(B) });
    const final = await waitFor(() => call<Status>(agent(A), 'VM.migrateStatus', { vmId: 'lx-mig' }), (s) => ['completed', 'failed', 'cancelled'].includes(s.state), 180_000);
    assert.equal(final.state, 'completed', JSON.stringify(final.error));
    t.diagnostic(`migration ${final.elapsedMs} ms, ${final.iteration} passes, peak throttle seen at end ${final.throttlePercent} %`);
    assert.equal((await virsh(B.libvirtUri, ['domstate', 'lx-mig'])).trim(), 'running');
    assert.ok(!(await listDomains(A.libvirtUri)).includes('lx-mig'), 'no copy left on a');

    // the same boot (no new VMREADY) goes on reporting work, now from b
    const lastSeq = (await readLinuxWork(g.serialLog)).windows.at(-1)!.seq;
    const afterMig = await windowsOf(g.serialLog, (w) => w.filter((x) => x.seq > lastSeq).length >= 2, 120_000);
    const news = afterMig.filter((w) => w.seq > lastSeq);
    t.diagnostic(`after migration: ${news.map((w) => `${w.rateMB} MB/s over ${w.durationSec} s`).join(', ')}`);
    assert.ok(news.at(-1)!.rateMB > 0, 'stress-ng writes on b');
    assert.equal(afterMig[0]!.seq, before[0]!.seq, 'same boot: the windows continue');
    assert.equal(await kernelFailure(g.serialLog), null, 'the kernel reported no failure');
  });

  test('the phase-changing guest runs idle -> heavy -> idle', { timeout: 180_000 }, async (t) => {
    const g = await defineGuest({ kind: 'linux', host: 'a', name: 'lx-phase', ramMiB: 384, wsMiB: 32, rateMiB: 40, load: 'phases', idleSec: 4, heavySec: 8 });
    const w = await windowsOf(g.serialLog, (x) => x.some((y) => y.step === 2), 150_000);
    t.diagnostic(w.map((x) => `step ${x.step}: ${x.rateMB} MB/s`).join(', '));
    const steps = w.map((x) => x.step);
    assert.deepEqual([...new Set(steps)], [0, 1, 2], 'steps in order');
    assert.ok(w.filter((x) => x.step !== 1).every((x) => x.rateMB === 0 && x.targetMB === 0), 'idle steps write nothing');
    assert.ok(w.filter((x) => x.step === 1).some((x) => x.rateMB > 0), 'the heavy step writes');
  });
});
