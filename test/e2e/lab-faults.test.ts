// End to end: the lab's fault tools on real hosts. Restarting a host's agent or libvirtd on its own,
// kill -9 of an agent, a libvirtd or a domain's QEMU, the process report, a cut of the migration
// network that stalls a real migration and a restore that lets it finish, and `lab down` cleaning up.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import {
  activeCuts, cutNetwork, defineGuest, destroyGuest, fillStateDir, freeStateDir, killAgent, killLibvirtd, killQemu, labDown,
  labProcesses, labUp, netcutTable, readGuestProgress, restartAgent, restartLibvirtd, restoreNetwork, agentStateDir, hostPlan,
  type LabHostInfo, type LabInfo, type LabProcesses,
} from '../../src/lab/index.js';
import { call, sleep, useClientTls, waitFor } from '../helpers/raw-rpc.js';
import { domainPlaces, jobStats } from '../helpers/lab-facts.js';
import { virsh, virshRawFacts } from '../helpers/virsh-facts.js';

const isRoot = process.getuid?.() === 0;
let lab: LabInfo;
let A: LabHostInfo;
let B: LabHostInfo;

const hostOf = (r: LabProcesses, name: 'a' | 'b') => r.hosts.find((h) => h.name === name) ?? assert.fail(`host ${name} in report`);

async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/\) [ZX] /.test(stat);
}

async function advancing(uri: string, dom: string): Promise<boolean> {
  const p1 = await readGuestProgress(uri, dom);
  await sleep(700);
  return (await readGuestProgress(uri, dom)) > p1;
}

async function nftTables(): Promise<string> {
  return new Promise((resolve) => spawn('nft', ['list', 'tables']).stdout.on('data', (d: Buffer) => resolve(String(d))).on('end', () => resolve('')));
}

describe('lab fault tools', { skip: isRoot ? false : 'needs root (lab hosts, nftables, tmpfs)' }, () => {
  before(async () => {
    lab = await labUp({ agents: true });
    useClientTls(lab.tls);
    [A, B] = [lab.hosts[0]!, lab.hosts[1]!];
  });

  after(async () => {
    await restoreNetwork('a', 'b').catch(() => undefined);
    await labDown();
  });

  test('the process report names each host\'s libvirtd, agent and one QEMU per domain', async () => {
    await defineGuest({ host: 'a', name: 'procs1', ramMiB: 64, wsMiB: 8, rateMiB: 4 });
    const r = await labProcesses();
    assert.equal(r.up, true);
    for (const name of ['a', 'b'] as const) {
      const h = hostOf(r, name);
      assert.ok(h.libvirtd.alive && h.libvirtd.answers && h.libvirtd.pid, `libvirtd of ${name}`);
      assert.ok(h.agent.alive && h.agent.accepts && h.agent.pid, `agent of ${name}`);
      assert.deepEqual(h.otherAgents, []);
    }
    const q = hostOf(r, 'a').qemus.find((x) => x.domain === 'procs1') ?? assert.fail('QEMU of procs1 reported');
    assert.ok(q.alive && q.pid && (await alive(q.pid)));
    assert.match(await readFile(`/proc/${q.pid}/cmdline`, 'utf8'), /guest=procs1/);
    assert.deepEqual(hostOf(r, 'b').qemus, []);
    assert.deepEqual(r.strayQemus, []);
    assert.deepEqual(r.cuts, []);
    await destroyGuest(A.libvirtUri, 'procs1');
  });

  test('restart of an agent on its own: a new process serves, the other host is untouched', async () => {
    const before = await labProcesses();
    const r = await restartAgent('a');
    assert.equal(r.oldPid, hostOf(before, 'a').agent.pid);
    assert.notEqual(r.pid, r.oldPid);
    assert.equal(await alive(r.oldPid!), false);
    const ping = await call<{ ok: boolean; name: string }>(A.agentUrl!, 'Host.ping');
    assert.deepEqual([ping.ok, ping.name], [true, 'a']);
    const now = await labProcesses();
    assert.equal(hostOf(now, 'a').agent.pid, r.pid);
    assert.equal(hostOf(now, 'b').agent.pid, hostOf(before, 'b').agent.pid, 'agent b kept');
    assert.equal(hostOf(now, 'a').libvirtd.pid, hostOf(before, 'a').libvirtd.pid, 'libvirtd a kept');
  });

  test('restart of a libvirtd on its own: its running guest keeps its QEMU and goes on working', async () => {
    await defineGuest({ host: 'a', name: 'lvd1', ramMiB: 64, wsMiB: 8, rateMiB: 4 });
    const before = await labProcesses();
    const qemu = hostOf(before, 'a').qemus.find((q) => q.domain === 'lvd1')!.pid!;
    const r = await restartLibvirtd('a');
    assert.equal(r.oldPid, hostOf(before, 'a').libvirtd.pid);
    assert.equal(await alive(r.oldPid!), false);
    const after = await labProcesses();
    assert.equal(hostOf(after, 'a').libvirtd.pid, r.pid);
    assert.ok(hostOf(after, 'a').libvirtd.answers);
    assert.equal(hostOf(after, 'a').qemus.find((q) => q.domain === 'lvd1')?.pid, qemu, 'same QEMU');
    assert.deepEqual(await domainPlaces([A, B], 'lvd1'), [{ host: 'a', state: 'running (booted)' }]);
    assert.ok(await advancing(A.libvirtUri, 'lvd1'), 'the guest works after the restart');
    assert.equal(hostOf(after, 'b').libvirtd.pid, hostOf(before, 'b').libvirtd.pid, 'libvirtd b kept');
  });

  test('kill -9 of a libvirtd, an agent and a QEMU; the report shows each dead, a restart brings it back', async () => {
    const lv = await killLibvirtd('a');
    let r = await labProcesses();
    assert.equal(hostOf(r, 'a').libvirtd.alive, false);
    assert.equal(r.up, false);
    const q = hostOf(r, 'a').qemus.find((x) => x.domain === 'lvd1')!;
    assert.ok(q.alive, 'QEMU survives its libvirtd');
    const lv2 = await restartLibvirtd('a');
    assert.equal(lv2.oldPid, null, 'nothing left to stop');
    assert.notEqual(lv2.pid, lv.pid);
    assert.deepEqual(await domainPlaces([A, B], 'lvd1'), [{ host: 'a', state: 'running (booted)' }]);

    const ag = await killAgent('b');
    assert.equal(await alive(ag.pid), false);
    r = await labProcesses();
    assert.equal(hostOf(r, 'b').agent.alive, false);
    await assert.rejects(killAgent('b'), /not running/);
    const ag2 = await restartAgent('b');
    assert.equal(ag2.oldPid, null);
    assert.equal((await call<{ ok: boolean }>(B.agentUrl!, 'Host.ping')).ok, true);

    const qk = await killQemu('a', 'lvd1');
    assert.equal(qk.pid, q.pid);
    await waitFor(() => domainPlaces([A, B], 'lvd1'), (p) => p.length === 0, 10_000, 200);
    r = await labProcesses();
    assert.equal(hostOf(r, 'a').qemus.some((x) => x.domain === 'lvd1' && x.alive), false);
    assert.equal(r.up, true);
    await assert.rejects(killQemu('a', 'lvd1'), /no QEMU of domain lvd1/);
  });

  test('a cut stalls a real migration without touching RPC or libvirt; the restore lets it finish', async (t) => {
    const dom = 'cut1';
    await defineGuest({ host: 'a', name: dom, ramMiB: 256, wsMiB: 96, rateMiB: 8 });
    // 96 MiB of written pages at 8 MiB/s: the first pass alone takes about 12 s
    const mig = virshRawFacts(A.libvirtUri, ['migrate', '--live', '--p2p', '--bandwidth', '8', dom, B.libvirtUri], 300_000);
    const processed = async () => (await jobStats(A.libvirtUri, dom)).data_processed ?? 0;
    await waitFor(processed, (n) => n > 8 << 20, 30_000, 250);

    await cutNetwork('a', 'b');
    await cutNetwork('b', 'a'); // idempotent: still one cut
    assert.deepEqual(await activeCuts(), [['a', 'b']]);
    await sleep(2_000); // what was in flight fills the socket buffers
    const frozen = await processed();
    await sleep(4_000);
    const stillFrozen = await processed();
    t.diagnostic(`during the cut: ${frozen} -> ${stillFrozen} bytes processed in 4 s`);
    assert.ok(stillFrozen - frozen < 1 << 20, `the stream moved ${stillFrozen - frozen} bytes during the cut`);
    // the agents' RPC and libvirt's sockets still work, and the migration is still on
    assert.equal((await call<{ ok: boolean }>(A.agentUrl!, 'Host.ping')).ok, true);
    assert.equal((await call<{ ok: boolean }>(B.agentUrl!, 'Host.ping')).ok, true);
    assert.match(await virsh(B.libvirtUri, ['list']), new RegExp(dom));
    assert.equal((await jobStats(A.libvirtUri, dom)).type, 2, 'job still unbounded (running)');

    await restoreNetwork('a', 'b');
    await restoreNetwork('a', 'b'); // idempotent
    assert.deepEqual(await activeCuts(), []);
    assert.doesNotMatch(await nftTables(), new RegExp(netcutTable(lab.dir)), 'an empty table is removed');
    const resumed = await waitFor(processed, (n) => n > stillFrozen + (2 << 20), 30_000, 250);
    t.diagnostic(`after the restore: ${resumed} bytes processed`);
    // let it finish
    await virsh(A.libvirtUri, ['migrate-setspeed', dom, '1000']);
    await virsh(A.libvirtUri, ['migrate-setmaxdowntime', dom, '2000']);
    const done = await mig;
    assert.equal(done.code, 0, done.stderr);
    assert.deepEqual((await domainPlaces([A, B], dom)).map((p) => p.host), ['b']);
    assert.ok(await advancing(B.libvirtUri, dom));
    await destroyGuest(B.libvirtUri, dom);
  });

  test('the stateDir fills (ENOSPC) and frees on demand', async () => {
    const dir = agentStateDir(hostPlan(lab.dir, 'a', 0));
    await fillStateDir('a');
    await assert.rejects(writeFile(`${dir}/probe`, 'x'), /ENOSPC/);
    await freeStateDir('a');
    await writeFile(`${dir}/probe`, 'x');
    await rm(`${dir}/probe`);
  });

  test('lab down removes a cut, the stateDir mounts, and every process', async () => {
    await cutNetwork('a', 'b');
    await fillStateDir('b');
    const before = await labProcesses();
    const pids = before.hosts.flatMap((h) => [h.libvirtd.pid, h.agent.pid]).filter((p): p is number => !!p);
    const r = await labDown();
    assert.deepEqual(r.survivors, []);
    assert.deepEqual(await activeCuts(), []);
    assert.doesNotMatch(await nftTables(), new RegExp(netcutTable(lab.dir)));
    assert.doesNotMatch(await readFile('/proc/self/mountinfo', 'utf8'), new RegExp(`${lab.dir}/`));
    for (const p of pids) assert.equal(await alive(p), false, `pid ${p} gone`);
  });
});
