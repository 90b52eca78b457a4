// Faults while a migration runs, on the lab (real libvirt and QEMU, one vmigrated per host, driven by
// the independent raw client): post-copy only when asked for, cancel refused in post-copy, a broken
// post-copy paused and resumed, a cut pre-copy link aborted at the policy's stall time with the
// parameters read back, and a source libvirtd killed and restarted mid-migration.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { defineGuest, destroyGuest, labDown, labUp, readGuestProgress, virsh, type LabHostInfo } from '../../src/lab/index.js';
import { virshRaw } from '../../src/lab/virsh.js';
import { hostPlan, labDir, portBase } from '../../src/lab/paths.js';
import { spawnLibvirtd, waitLibvirtd } from '../../src/lab/host.js';
import { call, callError, sleep, useClientTls, waitFor } from '../helpers/raw-rpc.js';
import { agentUrl, runningOn } from '../helpers/lab-hosts.js';

const execFileP = promisify(execFile);

interface Status {
  migrationId: string;
  state: string;
  postcopy: boolean;
  throttlePercent: number;
  error: { code: number; name: string; message: string } | null;
  vmLocation: string | null;
  paramsRestored: boolean | null;
  actions: { action: { type: string }; applied: boolean }[];
}

const isRoot = process.getuid?.() === 0;
let A: LabHostInfo;
let B: LabHostInfo;
const agent = agentUrl;
const status = (vm: string): Promise<Status> => call<Status>(agent(A), 'VM.migrateStatus', { vmId: vm });
const ENDED = ['completed', 'failed', 'cancelled'];


async function assertOnlyOn(host: LabHostInfo, other: LabHostInfo, name: string): Promise<void> {
  assert.ok(await runningOn(host, name), `${name} should be running on ${host.name}`);
  assert.ok(!(await runningOn(other, name)), `${name} must not run on ${other.name}`);
}

async function assertAdvancing(h: LabHostInfo, name: string): Promise<void> {
  const p1 = await readGuestProgress(h.libvirtUri, name);
  await sleep(1000);
  assert.ok((await readGuestProgress(h.libvirtUri, name)) > p1, `${name} still works on ${h.name}`);
}

/** QEMU's migration parameters on a host, read through libvirt's monitor passthrough. */
async function migrationParams(h: LabHostInfo, name: string): Promise<Record<string, unknown>> {
  const out = await virsh(h.libvirtUri, ['qemu-monitor-command', name, '{"execute":"query-migrate-parameters"}']);
  return (JSON.parse(out) as { return: Record<string, unknown> }).return;
}

// ---- the migration link of this lab only (nftables; our own table, B's migration ports only) ----
const TABLE = 'vmigrate_fr';
function bPorts(): string {
  const p = hostPlan(labDir(), 'b', portBase());
  return `${p.migrationPortMin}-${p.migrationPortMax}`;
}
async function nft(...args: string[]): Promise<void> {
  await execFileP('nft', args);
}
/** drop: a black hole towards B's migration ports; reset: both directions answered with TCP resets. */
async function cutLink(kind: 'drop' | 'reset'): Promise<void> {
  await nft('add', 'table', 'inet', TABLE);
  await nft('add', 'chain', 'inet', TABLE, 'out', '{ type filter hook output priority 0; }');
  if (kind === 'drop') {
    await nft('add', 'rule', 'inet', TABLE, 'out', 'ip', 'daddr', B.migrationAddress, 'tcp', 'dport', bPorts(), 'drop');
  } else {
    await nft('add', 'rule', 'inet', TABLE, 'out', 'ip', 'daddr', B.migrationAddress, 'tcp', 'dport', bPorts(), 'reject', 'with', 'tcp', 'reset');
    await nft('add', 'rule', 'inet', TABLE, 'out', 'ip', 'saddr', B.migrationAddress, 'tcp', 'sport', bPorts(), 'reject', 'with', 'tcp', 'reset');
  }
}
async function restoreLink(): Promise<void> {
  await execFileP('nft', ['delete', 'table', 'inet', TABLE]).catch(() => undefined);
}

/** the QEMU tree the lab runs (a restarted libvirtd must get the same one) */
let qemuRoot: string | null = null;

/** kill -9 a host's libvirtd and start a new one (its guests' QEMU processes live on). */
async function restartLibvirtd(name: 'a' | 'b'): Promise<number> {
  const p = hostPlan(labDir(), name, portBase());
  const pid = Number((await readFile(`${p.dir}/run/libvirtd.pid`, 'utf8')).trim());
  process.kill(pid, 'SIGKILL');
  const killedAt = Date.now();
  await sleep(500);
  const fresh = spawnLibvirtd(p, qemuRoot);
  await waitLibvirtd(p, fresh);
  return killedAt;
}

async function waitState(vm: string, pred: (s: Status) => boolean, ms: number, poll = 250): Promise<Status> {
  return waitFor(() => status(vm), pred, ms, poll);
}

describe('faults while a migration runs', { skip: isRoot ? false : 'needs root (lab hosts)' }, () => {
  before(async () => {
    const lab = await labUp({ agents: true });
    qemuRoot = lab.qemu.root;
    useClientTls(lab.tls);
    const [a, b] = lab.hosts;
    assert.ok(a && b);
    A = a;
    B = b;
    await restoreLink();
  });

  after(async () => {
    await restoreLink();
    await labDown();
  });

  test('pre-copy: no post-copy unless asked; a cut link aborts at the stall time, VM on the source, parameters read back', async () => {
    const name = 'cut1';
    await defineGuest({ host: 'a', name, ramMiB: 256, wsMiB: 128, rateMiB: 200 });
    const before = await migrationParams(A, name);
    await call(agent(A), 'VM.migrate', { vmId: name, dst: agent(B), bandwidth: 20, policy: { transferStallSec: 10 } });
    // the controller steers the throttle (something to put back)
    await waitState(name, (s) => s.actions.some((a) => a.action.type === 'set-throttle' && a.applied), 60_000);
    // started without VIR_MIGRATE_POSTCOPY: libvirt refuses to switch
    const pc = await virshRaw(A.libvirtUri, ['migrate-postcopy', name]);
    assert.notEqual(pc.code, 0, 'switching to post-copy must be refused');
    assert.match(pc.stderr, /post-?copy/i);

    await cutLink('drop');
    const cutAt = Date.now();
    try {
      await sleep(6_000);
      assert.equal((await status(name)).state, 'running', 'a cut shorter than the stall time is waited out');
      const final = await waitState(name, (s) => ENDED.includes(s.state), 60_000, 500);
      const tookS = (Date.now() - cutAt) / 1000;
      console.log(`# cut link: aborted ${tookS.toFixed(1)} s after the cut (policy 10 s)`);
      assert.ok(tookS >= 9 && tookS < 30, `aborted after ${tookS} s`);
      assert.equal(final.state, 'failed');
      assert.equal(final.error?.name, 'ABORTED_BY_POLICY');
      assert.match(final.error?.message ?? '', /no data moved/);
      assert.equal(final.vmLocation, 'source');
      assert.equal(final.paramsRestored, true);
    } finally {
      await restoreLink();
    }
    await assertOnlyOn(A, B, name);
    await assertAdvancing(A, name);
    const afterwards = await migrationParams(A, name);
    for (const k of ['max-cpu-throttle', 'throttle-trigger-threshold', 'cpu-throttle-initial', 'cpu-throttle-increment', 'cpu-throttle-tailslow']) {
      assert.deepEqual(afterwards[k], before[k], `${k} put back`);
    }
    await destroyGuest(A.libvirtUri, name);
  });

  test('post-copy: cancel is refused at once and changes nothing; the migration completes on the destination', async () => {
    const name = 'pc1';
    await defineGuest({ host: 'a', name, ramMiB: 256, wsMiB: 128, rateMiB: 200 });
    await call(agent(A), 'VM.migrate', { vmId: name, dst: agent(B), bandwidth: 20, postcopy: true, policy: 'stock' });
    await waitState(name, (s) => s.state === 'running', 60_000);
    await sleep(2_000);
    await virsh(A.libvirtUri, ['migrate-postcopy', name]);
    await waitFor(() => virsh(A.libvirtUri, ['domstate', '--reason', name]), (o) => /post-copy/.test(o), 30_000, 200);

    const asked = Date.now();
    const refused = await callError(agent(A), 'VM.migrateCancel', { vmId: name });
    const answeredMs = Date.now() - asked;
    console.log(`# cancel in post-copy answered in ${answeredMs} ms`);
    assert.equal(refused.data?.name, 'NOT_CANCELLABLE');
    assert.ok(answeredMs < 2_000, `answered in ${answeredMs} ms`);
    assert.equal((await status(name)).state, 'running', 'nothing changed');
    const final = await waitState(name, (s) => ENDED.includes(s.state), 180_000, 500);
    assert.equal(final.state, 'completed', JSON.stringify(final.error));
    assert.equal(final.error, null, 'a refused cancel leaves no trace in the outcome');
    assert.equal(final.vmLocation, 'destination');
    await assertOnlyOn(B, A, name);
    await assertAdvancing(B, name);
    await destroyGuest(B.libvirtUri, name);
  });

  // Measured on this lab: a cut of the migration link during post-copy (nftables drop, or reject with
  // tcp reset in the output hook) leaves the source "paused (post-copy)" and the destination "running
  // (post-copy)"; QEMU never reports postcopy-paused, so libvirt's recovery is not reached this way.
  // Pausing it on purpose (virDomainAbortJobFlags POSTCOPY) during a black-hole cut left the
  // destination's libvirt stuck in Finish3, refusing every call. Needs a fault that breaks the sockets.
  test('post-copy: a broken link pauses it, it resumes and completes on the destination', { skip: 'no fault on this lab breaks QEMU post-copy sockets yet (see comment)' }, () => {});

  test('source libvirtd killed and restarted mid-migration: detected in seconds, reconnected, the status tells the truth', async () => {
    const name = 'lr1';
    await defineGuest({ host: 'a', name, ramMiB: 256, wsMiB: 128, rateMiB: 200 });
    await call(agent(A), 'VM.migrate', { vmId: name, dst: agent(B), bandwidth: 20, policy: 'stock' });
    await waitState(name, (s) => s.state === 'running', 60_000);
    const killedAt = await restartLibvirtd('a');
    const final = await waitState(name, (s) => ENDED.includes(s.state), 60_000, 250);
    const tookS = (Date.now() - killedAt) / 1000;
    console.log(`# source libvirtd restart: migration settled ${tookS.toFixed(1)} s after the kill`);
    assert.ok(tookS < 20, `settled after ${tookS} s`);
    // libvirt 9.0 cancels an outgoing pre-copy migration when its libvirtd restarts
    assert.equal(final.state, 'failed');
    assert.equal(final.error?.name, 'MIGRATION_FAILED');
    assert.equal(final.vmLocation, 'source');
    await assertOnlyOn(A, B, name);
    await assertAdvancing(A, name);
    // the agent reconnected: it migrates again, and cancel works on the new connection
    await call(agent(A), 'VM.migrate', { vmId: name, dst: agent(B), bandwidth: 20, policy: 'stock' });
    await waitState(name, (s) => s.state === 'running', 60_000);
    const cancelled = await call<Status>(agent(A), 'VM.migrateCancel', { vmId: name });
    assert.equal(cancelled.state, 'cancelled');
    assert.equal(cancelled.vmLocation, 'source');
    await assertOnlyOn(A, B, name);
    await destroyGuest(A.libvirtUri, name);
  });
});
