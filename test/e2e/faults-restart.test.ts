// End to end on the lab: an agent restarted mid-migration re-attaches (issue 8, items 2 and 6).
// Real libvirt and QEMU; the agents are real vmigrated processes, killed with SIGKILL and restarted
// by labUp(); the client is the independent raw one (test/helpers/raw-rpc.ts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { readFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { defineGuest, destroyGuest, labDir, labDown, labUp, virsh, type LabHostInfo } from '../../src/lab/index.js';
import { call, callError, useClientTls, waitFor } from '../helpers/raw-rpc.js';
import { agentUrl, runningOn, type ListedVm } from '../helpers/lab-hosts.js';

const execFileP = promisify(execFile);

interface Status {
  migrationId: string;
  state: string;
  progress: number;
  iteration: number;
  error: { code: number; name: string; message: string } | null;
  actions: { at: string; action: { type: string; reason: string; params?: Record<string, number> }; applied: boolean }[];
  adoption?: { adoptedAt: string; steering: string; reason: string };
}

const isRoot = process.getuid?.() === 0;
let A: LabHostInfo;
let B: LabHostInfo;
const agent = agentUrl;
const stateDirOf = (host: string): string => join(labDir(), host, 'agent-state');


async function assertOnlyOn(host: LabHostInfo, other: LabHostInfo, name: string): Promise<void> {
  assert.ok(await runningOn(host, name), `${name} should be running on ${host.name}`);
  assert.ok(!(await call<ListedVm[]>(agent(other), 'VM.list')).some((v) => v.name === name && v.state === 'running'), `${name} must not run on ${other.name}`);
}

const status = (name: string): Promise<Status> => call<Status>(agent(A), 'VM.migrateStatus', { vmId: name });
const ended = (s: Status): boolean => ['completed', 'failed', 'cancelled'].includes(s.state);

async function gone(pid: number): Promise<void> {
  await waitFor(async () => { try { process.kill(pid, 0); return false; } catch { return true; } }, (g) => g, 15_000, 100);
}

/** SIGKILL host a's agent, the way a crash or the OOM killer ends it. */
async function killAgentA(): Promise<number> {
  const pid = A.agentPid ?? assert.fail('lab did not report the agent pid');
  process.kill(pid, 'SIGKILL');
  await gone(pid);
  return pid;
}

/** labUp() restarts the agent that is missing. */
async function restartAgents(): Promise<void> {
  const lab = await labUp({ agents: true });
  A = lab.hosts.find((h) => h.name === 'a') ?? assert.fail('host a');
  B = lab.hosts.find((h) => h.name === 'b') ?? assert.fail('host b');
}

/** QEMU's migration parameters on host a, as QEMU reports them. */
async function qemuParams(name: string): Promise<Record<string, number | boolean>> {
  const out = await virsh(A.libvirtUri, ['qemu-monitor-command', name, '{"execute":"query-migrate-parameters"}']);
  return (JSON.parse(out) as { return: Record<string, number | boolean> }).return;
}

async function incomingOnB(): Promise<number> {
  const text = await (await fetch(B.metricsUrl ?? assert.fail('no metrics'))).text();
  const m = /^vmigrate_migrations_incoming (\d+)/m.exec(text);
  return Number(m?.[1] ?? Number.NaN);
}

describe('an agent restarted mid-migration re-attaches', { skip: isRoot ? false : 'needs root (lab hosts)' }, () => {
  before(async () => {
    const lab = await labUp({ agents: true });
    useClientTls(lab.tls);
    await restartAgents();
  });

  after(async () => {
    await labDown();
  });

  test('SIGKILL of the source agent while the controller steers: the successor goes on to completion under the same migrationId', { timeout: 180_000 }, async () => {
    const name = 'adopt1';
    // 128 MiB dirtied at 200 MiB/s over a 20 MiB/s link: it needs the controller's throttle, and takes a while
    await defineGuest({ host: 'a', name, ramMiB: 256, wsMiB: 128, rateMiB: 200 });
    const started = await call<{ migrationId: string }>(agent(A), 'VM.migrate', { vmId: name, dst: agent(B), bandwidth: 20 });
    const steered = await waitFor(() => status(name), (s) => s.state === 'running' && s.actions.some((a) => a.applied && a.action.type === 'set-throttle'), 90_000);
    assert.ok(await incomingOnB() >= 1, 'the destination admitted it');
    await killAgentA();
    const killedAt = Date.now();
    // libvirt carries the migration on without the agent that started it
    assert.match(await virsh(A.libvirtUri, ['domjobinfo', name]), /Outgoing migration/);
    await restartAgents();

    const adopted = await status(name);
    assert.equal(adopted.migrationId, started.migrationId, 'same migrationId on the new process');
    assert.equal(adopted.adoption?.steering, 'resumed', JSON.stringify(adopted.adoption));
    assert.ok(adopted.actions.length >= steered.actions.length, 'the actions before the restart are kept');
    // the destination's admission is taken again (the dead process's connection had freed it)
    if (!ended(adopted)) assert.equal(await incomingOnB(), 1, 're-admitted on the destination');
    // The controller planned this guest (it outruns the link) at the ceiling during the first pass, so on
    // its own it may have nothing left to change: a lowered ceiling (one that still converges) asks the resumed controller to act,
    // from the state it was given (its knobs, the throttle QEMU holds).
    assert.ok(!ended(adopted), `still migrating after the restart (${adopted.state})`);
    await call<Status>(agent(A), 'VM.migrateChangeParams', { vmId: name, maxThrottle: 97 });

    let last = 0;
    const final = await waitFor(async () => {
      const s = await status(name);
      assert.ok(s.progress >= last, `progress went back from ${last} to ${s.progress}`);
      last = s.progress;
      return s;
    }, ended, 150_000);
    assert.equal(final.state, 'completed', JSON.stringify(final.error));
    assert.equal(final.migrationId, started.migrationId);
    const afterRestart = final.actions.filter((a) => Date.parse(a.at) > killedAt);
    assert.ok(
      afterRestart.some((a) => a.applied && a.action.type === 'set-throttle' && a.action.params?.['max-cpu-throttle'] === 97),
      `the resumed controller capped the throttle at 97 % (actions: ${final.actions.map((a) => `${a.at} ${a.action.type} ${JSON.stringify(a.action)}`).join(', ')})`,
    );
    await assertOnlyOn(B, A, name);
    await waitFor(incomingOnB, (n) => n === 0, 10_000);
    await destroyGuest(B.libvirtUri, name);
  });

  test('SIGKILL of the source agent, and the migration fails while no agent runs: the successor tells the truth and puts the parameters back', { timeout: 120_000 }, async () => {
    const name = 'adopt2';
    await defineGuest({ host: 'a', name, ramMiB: 256, wsMiB: 128, rateMiB: 200 });
    const started = await call<{ migrationId: string }>(agent(A), 'VM.migrate', { vmId: name, dst: agent(B), bandwidth: 10 });
    await waitFor(() => status(name), (s) => s.state === 'running' && s.actions.some((a) => a.applied && a.action.type === 'set-throttle'), 90_000);
    await killAgentA();
    const changed = await qemuParams(name);
    assert.ok(changed['max-cpu-throttle'] !== 99 || changed['throttle-trigger-threshold'] !== 50, `the controller changed QEMU's parameters: ${JSON.stringify(changed)}`);
    // the migration ends while no agent runs (here: aborted by hand)
    await virsh(A.libvirtUri, ['domjobabort', name]);
    await waitFor(() => virsh(A.libvirtUri, ['domjobinfo', name]), (out) => /Job type:\s+None/.test(out), 30_000);
    await restartAgents();

    const final = await waitFor(() => status(name), ended, 30_000);
    assert.equal(final.migrationId, started.migrationId);
    assert.equal(final.state, 'failed');
    assert.equal(final.error?.name, 'MIGRATION_FAILED');
    assert.match(final.error?.message ?? '', /still on this host/);
    assert.match(final.adoption?.reason ?? '', /ended while no agent ran/);
    const restored = await waitFor(() => qemuParams(name), (p) => p['max-cpu-throttle'] === 99 && p['throttle-trigger-threshold'] === 50, 15_000);
    assert.equal(restored['downtime-limit'], 300);
    await assertOnlyOn(A, B, name);
    assert.equal(await incomingOnB(), 0, 'no admission slot left held');
    // the agent can migrate it again
    await call(agent(A), 'VM.migrate', { vmId: name, dst: agent(B) });
    // (no bandwidth cap: done in seconds)
    assert.equal((await waitFor(() => status(name), (s) => ended(s) && s.migrationId !== started.migrationId, 120_000)).state, 'completed');
    await destroyGuest(B.libvirtUri, name);
  });

  test('a second agent on the same stateDir refuses to start, and the first keeps its migration', { timeout: 120_000 }, async () => {
    const name = 'lock1';
    await defineGuest({ host: 'a', name, ramMiB: 256, wsMiB: 128, rateMiB: 200 });
    const started = await call<{ migrationId: string }>(agent(A), 'VM.migrate', { vmId: name, dst: agent(B), bandwidth: 20, policy: 'stock' });
    await waitFor(() => status(name), (s) => s.state === 'running', 60_000);
    // the same command line as host a's agent, on other ports: only the stateDir is shared
    const pid = A.agentPid ?? assert.fail('no agent pid');
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(1);
    const swap = (flag: string, value: string): void => {
      const i = args.indexOf(flag);
      assert.ok(i >= 0, flag);
      args[i + 1] = value;
    };
    swap('--listen', '127.0.0.1:0');
    swap('--metrics-listen', '127.0.0.1:0');
    swap('--local-socket', join(labDir(), 'a', 'second-agent.sock'));
    assert.ok(args.includes(stateDirOf('a')));
    const second = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    second.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => { second.kill('SIGKILL'); resolve(null); }, 20_000);
      second.once('exit', (c) => { clearTimeout(timer); resolve(c); });
    });
    assert.equal(code, 3, `the second agent exits with 3 (stderr: ${stderr})`);
    assert.match(stderr, new RegExp(`state directory ${stateDirOf('a')} is in use by another vmigrated \\(pid ${pid}\\)`));
    // the first agent still has its migration
    const s = await status(name);
    assert.equal(s.migrationId, started.migrationId);
    assert.equal(s.state, 'running');
    assert.match(await virsh(A.libvirtUri, ['domjobinfo', name]), /Outgoing migration/);
    const cancelled = await call<Status>(agent(A), 'VM.migrateCancel', { vmId: name });
    assert.equal(cancelled.state, 'cancelled');
    await assertOnlyOn(A, B, name);
    await destroyGuest(A.libvirtUri, name);
  });

  test('a full stateDir: VM.migrate fails with STATE_WRITE_FAILED, nothing is pending, and the agent stops cleanly', { timeout: 120_000 }, async () => {
    const name = 'full1';
    const dir = stateDirOf('a');
    // the agent's stateDir on a 1 MiB tmpfs of its own (mounted while no agent runs there)
    const pid = A.agentPid ?? assert.fail('no agent pid');
    process.kill(pid, 'SIGTERM');
    await gone(pid);
    await execFileP('mount', ['-n', '-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', dir]);
    try {
      await restartAgents();
      await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 8, rateMiB: 4 });
      const fd = openSync(join(dir, 'filler'), 'w');
      try {
        for (;;) writeSync(fd, Buffer.alloc(64 << 10));
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
      } finally {
        closeSync(fd);
      }
      const err = await callError(agent(A), 'VM.migrate', { vmId: name, dst: agent(B) });
      assert.equal(err.code, 1016, JSON.stringify(err));
      assert.equal((err.data as { name?: string } | undefined)?.name, 'STATE_WRITE_FAILED');
      assert.match(err.message, /state directory.*not started/);
      const none = await callError(agent(A), 'VM.migrateStatus', { vmId: name });
      assert.equal((none.data as { name?: string } | undefined)?.name, 'NO_MIGRATION', 'nothing pending');
      assert.equal(await incomingOnB(), 0, 'the destination\'s admission was released');
      await assertOnlyOn(A, B, name);
      assert.match(await virsh(A.libvirtUri, ['domjobinfo', name]), /Job type:\s+None/);
      // the agent stops cleanly on SIGTERM
      const agentPid = A.agentPid ?? assert.fail('no agent pid');
      const t0 = Date.now();
      process.kill(agentPid, 'SIGTERM');
      await gone(agentPid);
      assert.ok(Date.now() - t0 < 10_000, `stopped in ${Date.now() - t0} ms`);
      const log = readFileSync(join(labDir(), 'a', 'agent.log'), 'utf8');
      assert.match(log.slice(log.lastIndexOf('starting agent a')), /"event":"agent.stopped"/);
    } finally {
      await execFileP('umount', ['-n', dir]).catch(() => execFileP('umount', ['-l', '-n', dir]));
    }
    await restartAgents();
    await destroyGuest(A.libvirtUri, name);
  });
});
