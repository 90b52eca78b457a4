// End to end on the lab: two real libvirt hosts, real QEMU guests, one vmigrated per host, driven
// by an independent JSON-RPC client (test/helpers/raw-rpc.ts), never the project's own client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { defineGuest, destroyGuest, labDir, labDown, labUp, readGuestProgress, virsh, type LabHostInfo } from '../../src/lab/index.js';
import { call, callError, operatorTlsPaths, sleep, waitFor } from '../helpers/raw-rpc.js';
import { agentUrl, runningOn, twoHosts, vmsOn, type ListedVm } from '../helpers/lab-hosts.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const execFileP = promisify(execFile);

/** Run the vmigrate CLI; resolves with exit code and output whatever the code. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    // the operator's certificate, as an operator on the lab would set it (see lab up --json)
    const tls = operatorTlsPaths();
    const env = { ...process.env, VMIGRATE_CA: tls.ca, VMIGRATE_CERT: tls.cert, VMIGRATE_KEY: tls.key };
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { timeout: 180_000, env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

interface Status {
  migrationId: string;
  state: string;
  progress: number;
  iteration: number;
  throttlePercent: number;
  downtimeMs: number | null;
  error: { code: number; name: string; message: string } | null;
  actions: { action: { type: string } }[];
}

const isRoot = process.getuid?.() === 0;
let A: LabHostInfo;
let B: LabHostInfo;
const agent = agentUrl;

/** Where the guest runs: exactly one running copy, on this host. */
async function assertOnlyOn(host: LabHostInfo, other: LabHostInfo, name: string): Promise<void> {
  assert.ok(await runningOn(host, name), `${name} should be running on ${host.name}`);
  assert.ok(!(await vmsOn(other)).some((v) => v.name === name && v.state === 'running'), `${name} must not run on ${other.name}`);
}

/** A guest dirtying 128 MiB at 200 MiB/s over a 20 MiB/s cap, unsteered: running, and far from done. */
async function startSlowMigration(name: string): Promise<void> {
  await defineGuest({ host: 'a', name, ramMiB: 256, wsMiB: 128, rateMiB: 200 });
  await call(agent(A), 'VM.migrate', { vmId: name, dst: agent(B), bandwidth: 20, policy: 'stock' });
  await waitFor(() => call<Status>(agent(A), 'VM.migrateStatus', { vmId: name }), (s) => s.state === 'running', 60_000);
}

/** The guest's own page counter moves on that host: it is running there, not just defined. */
async function assertAdvancing(h: LabHostInfo, name: string): Promise<void> {
  const p1 = await readGuestProgress(h.libvirtUri, name);
  await sleep(1000);
  assert.ok((await readGuestProgress(h.libvirtUri, name)) > p1, `${name} still works on ${h.name}`);
}

/** Follow VM.migrateStatus to the end, checking progress never goes backwards. */
async function followToEnd(h: LabHostInfo, vm: string, timeoutMs: number): Promise<Status> {
  let lastProgress = 0;
  return waitFor(
    async () => {
      const s = await call<Status>(agent(h), 'VM.migrateStatus', { vmId: vm });
      assert.ok(s.progress >= lastProgress, `progress went back from ${lastProgress} to ${s.progress}`);
      lastProgress = s.progress;
      return s;
    },
    (s) => ['completed', 'failed', 'cancelled'].includes(s.state),
    timeoutMs,
  );
}

describe('live migration on the lab', { skip: isRoot ? false : 'needs root (lab hosts)' }, () => {
  before(async () => {
    ({ A, B } = await twoHosts());
  });

  after(async () => {
    await labDown();
  });

  test('a light guest migrates and arrives running on the destination', async () => {
    const name = 'light1';
    await defineGuest({ host: 'a', name, ramMiB: 256, wsMiB: 16, rateMiB: 8 });
    await sleep(1000);
    const before = await readGuestProgress(A.libvirtUri, name);
    const started = await call<{ migrationId: string; vmName: string }>(agent(A), 'VM.migrate', { vmId: name, dst: agent(B) });
    assert.equal(started.vmName, name);
    const final = await followToEnd(A, name, 120_000);
    assert.equal(final.state, 'completed', JSON.stringify(final.error));
    assert.equal(final.migrationId, started.migrationId);
    assert.equal(final.progress, 100);
    assert.ok(final.downtimeMs !== null && final.downtimeMs >= 0, 'downtime reported');
    await assertOnlyOn(B, A, name);
    // the guest goes on working on the destination
    const p1 = await readGuestProgress(B.libvirtUri, name);
    await sleep(1000);
    const p2 = await readGuestProgress(B.libvirtUri, name);
    assert.ok(p1 >= before && p2 > p1, `guest progress on destination: ${before} -> ${p1} -> ${p2}`);
    // the status is kept after the end
    const kept = await call<Status>(agent(A), 'VM.migrateStatus', { vmId: name });
    assert.equal(kept.state, 'completed');
    await destroyGuest(B.libvirtUri, name);
  });

  test('a destination given only by its libvirt URI (no agent there to ask) works too', async () => {
    const name = 'byuri1';
    await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 8, rateMiB: 4 });
    await call(agent(A), 'VM.migrate', { vmId: name, dst: { libvirtUri: B.libvirtUri } });
    const final = await followToEnd(A, name, 120_000);
    assert.equal(final.state, 'completed', JSON.stringify(final.error));
    await assertOnlyOn(B, A, name);
    await destroyGuest(B.libvirtUri, name);
  });

  test('a libvirt failure on the way ends the migration failed, with the VM still on the source', async () => {
    const name = 'fail1';
    await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 8, rateMiB: 4 });
    await call(agent(A), 'VM.migrate', { vmId: name, dst: { libvirtUri: `qemu+unix:///system?socket=${labDir()}/nonexistent/libvirt-sock` } });
    const final = await followToEnd(A, name, 60_000);
    assert.equal(final.state, 'failed');
    assert.equal(final.error?.name, 'MIGRATION_FAILED');
    assert.match(final.error?.message ?? '', /nonexistent|connect/i);
    await assertOnlyOn(A, B, name);
    await destroyGuest(A.libvirtUri, name);
  });

  test('bad requests get stable error codes and leave the VM where it was', async () => {
    const name = 'stay1';
    await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 8, rateMiB: 4 });
    const unknown = await callError(agent(A), 'VM.migrate', { vmId: 'no-such-vm', dst: agent(B) });
    assert.equal(unknown.code, 1001);
    assert.equal(unknown.data?.name, 'VM_NOT_FOUND');
    assert.match(unknown.message, /no-such-vm/);

    const malformed = await callError(agent(A), 'VM.migrate', { vmId: name, dst: agent(B), bandwidth: 'fast' });
    assert.equal(malformed.code, -32602);
    assert.match(malformed.message, /bandwidth/);

    const missing = await callError(agent(A), 'VM.migrate', { vmId: name });
    assert.equal(missing.code, -32602);
    assert.match(missing.message, /dst/);

    const unreachable = await callError(agent(A), 'VM.migrate', { vmId: name, dst: 'wss://127.0.0.1:9' });
    assert.equal(unreachable.code, 1004);
    assert.equal(unreachable.data?.name, 'DESTINATION_UNREACHABLE');
    assert.match(unreachable.message, /127\.0\.0\.1:9/);

    const toSelf = await callError(agent(A), 'VM.migrate', { vmId: name, dst: agent(A) });
    assert.equal(toSelf.data?.name, 'SAME_HOST');

    const noStatus = await callError(agent(A), 'VM.migrateStatus', { vmId: name });
    assert.equal(noStatus.data?.name, 'NO_MIGRATION');

    const unknownVerb = await callError(agent(A), 'VM.teleport', {});
    assert.equal(unknownVerb.code, -32601);

    await assertOnlyOn(A, B, name);
    await destroyGuest(A.libvirtUri, name);
  });

  test('cancel mid-flight leaves the guest running on the source; migrate while migrating is refused', async () => {
    const name = 'cancel1';
    await startSlowMigration(name);

    const again = await callError(agent(A), 'VM.migrate', { vmId: name, dst: agent(B) });
    assert.equal(again.code, 1003);
    assert.equal(again.data?.name, 'MIGRATION_IN_PROGRESS');

    const cancelled = await call<Status>(agent(A), 'VM.migrateCancel', { vmId: name });
    assert.equal(cancelled.state, 'cancelled');
    await assertOnlyOn(A, B, name);
    await assertAdvancing(A, name);
    const late = await callError(agent(A), 'VM.migrateCancel', { vmId: name });
    assert.equal(late.data?.name, 'NOT_CANCELLABLE');
    await destroyGuest(A.libvirtUri, name);
  });

  test('the CLI lists, migrates with --json, and reports errors with the stable name', async () => {
    const name = 'cli1';
    await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 8, rateMiB: 4 });
    const listed = await cli(['--agent', agent(A), '--json', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok((JSON.parse(listed.stdout) as ListedVm[]).some((v) => v.name === name && v.state === 'running'));
    const migrated = await cli(['--agent', agent(A), '--json', 'migrate', name, agent(B)]);
    assert.equal(migrated.code, 0, migrated.stderr);
    const final = JSON.parse(migrated.stdout) as Status;
    assert.equal(final.state, 'completed');
    await assertOnlyOn(B, A, name);
    const missing = await cli(['--agent', agent(A), 'migrate', 'no-such-vm', agent(B)]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /VM_NOT_FOUND.*no-such-vm/);
    const badFlag = await cli(['--agent', agent(A), 'migrate', name, agent(B), '--bandwidth', 'lots']);
    assert.notEqual(badFlag.code, 0);
    assert.match(badFlag.stderr, /bandwidth.*lots/);
    await destroyGuest(B.libvirtUri, name);
  });

  test('an agent killed mid-migration: its restarted successor adopts it (same migrationId) and can cancel it', async () => {
    const name = 'orphan1';
    await startSlowMigration(name);
    const before = await call<Status>(agent(A), 'VM.migrateStatus', { vmId: name });
    const pid = A.agentPid ?? assert.fail('lab did not report the agent pid');
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => { try { process.kill(pid, 0); return false; } catch { return true; } }, (gone) => gone, 10_000, 100);
    // libvirt carries the migration on without the agent that started it
    assert.match(await virsh(A.libvirtUri, ['domjobinfo', name]), /Outgoing migration/);
    const lab = await labUp({ agents: true }); // restarts the missing agent
    A = lab.hosts.find((h) => h.name === 'a') ?? assert.fail('host a');
    assert.notEqual(A.agentPid, pid);
    const adopted = await call<Status & { adoption?: { steering: string } }>(agent(A), 'VM.migrateStatus', { vmId: name });
    assert.equal(adopted.migrationId, before.migrationId);
    assert.equal(adopted.state, 'running');
    assert.equal(adopted.adoption?.steering, 'stock');
    // the new agent steers it: a cancel leaves the VM on the source
    assert.equal((await call<Status>(agent(A), 'VM.migrateCancel', { vmId: name })).state, 'cancelled');
    await waitFor(() => virsh(A.libvirtUri, ['domjobinfo', name]), (out) => /Job type:\s+None/.test(out), 30_000);
    await assertOnlyOn(A, B, name);
    await assertAdvancing(A, name);
    // the new agent can migrate it again
    await call(agent(A), 'VM.migrate', { vmId: name, dst: agent(B) });
    assert.equal((await followToEnd(A, name, 180_000)).state, 'completed');
    await assertOnlyOn(B, A, name);
    await destroyGuest(B.libvirtUri, name);
  });

  test('a dirtying guest migrates with auto-converge and completes', async () => {
    const name = 'dirty1';
    // 256 MiB dirtied at 200 MiB/s over a 50 MiB/s link: plain pre-copy cannot finish
    await defineGuest({ host: 'a', name, ramMiB: 512, wsMiB: 256, rateMiB: 200 });
    await sleep(1000);
    await call(agent(A), 'VM.migrate', { vmId: name, dst: agent(B), bandwidth: 50 });
    const final = await followToEnd(A, name, 240_000);
    assert.equal(final.state, 'completed', JSON.stringify(final.error));
    assert.ok(final.iteration >= 2, `needed ${final.iteration} passes`);
    await assertOnlyOn(B, A, name);
    await destroyGuest(B.libvirtUri, name);
  });
});
