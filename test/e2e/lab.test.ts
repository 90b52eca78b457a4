// End-to-end: two real libvirt hosts, the dirtying guest, a manual live migration, teardown.
// Needs root, libvirt 9 + QEMU (TCG). Uses its own lab dir and ports so a running lab is untouched.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'node:net';
import {
  defineGuest,
  destroyGuest,
  hostUuid,
  labDown,
  labStatus,
  labUp,
  listDomains,
  measureGuestRate,
  readGuestProgress,
  readGuestStatus,
  virsh,
  type LabInfo,
} from '../../src/lab/index.js';
import { daemonMain } from '../../src/lab/paths.js';

const isRoot = process.getuid?.() === 0;
const dir = process.env.VMIGRATE_LAB_E2E_DIR ?? '/tmp/vmigrate-lab-e2e';
const portBase = Number(process.env.VMIGRATE_LAB_E2E_PORT_BASE ?? 27300);
const agents = existsSync(daemonMain()) && process.env.VMIGRATE_LAB_E2E_AGENTS !== '0';

async function waitUntil<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await sleep(250);
  }
}

function tcpAccepts(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = connect({ host: u.hostname, port: Number(u.port) });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Processes of this lab: libvirtd/QEMU naming the lab dir, or living in a recorded namespace. */
async function labProcesses(namespaces: Set<string>): Promise<string[]> {
  const found: string[] = [];
  for (const n of await readdir('/proc')) {
    if (!/^\d+$/.test(n) || Number(n) === process.pid) continue;
    const cmd = await readFile(`/proc/${n}/cmdline`, 'utf8').catch(() => '');
    if (!cmd) continue; // gone or zombie
    const ns = await readlink(`/proc/${n}/ns/mnt`).catch(() => '');
    const argv = cmd.split('\0');
    const ours = argv.some((a) => a.includes(dir + '/')) && /libvirtd|qemu-system|daemon\/main\.js/.test(cmd);
    if (ours || namespaces.has(ns)) found.push(`${n}: ${argv.join(' ')}`);
  }
  return found;
}

describe('lab (two libvirt hosts on one machine)', { skip: isRoot ? false : 'needs root (mount namespaces, libvirtd)' }, () => {
  let lab: LabInfo;
  const namespaces = new Set<string>();
  const uri = (name: 'a' | 'b') => lab.hosts.find((h) => h.name === name)!.libvirtUri;

  before(async () => {
    const t0 = Date.now();
    lab = await labUp({ dir, portBase, agents });
    console.log(`lab up (agents: ${agents}) in ${Date.now() - t0} ms`);
    for (const h of lab.hosts) {
      if (h.libvirtdPid) namespaces.add(await readlink(`/proc/${h.libvirtdPid}/ns/mnt`));
    }
    namespaces.delete(await readlink('/proc/self/ns/mnt'));
  });

  after(async () => {
    const r = await labDown({ dir });
    assert.deepEqual(r.survivors, []);
  });

  it('brings up two answering hosts with distinct host UUIDs', async () => {
    assert.equal(lab.dir, dir);
    assert.deepEqual(lab.hosts.map((h) => h.name), ['a', 'b']);
    assert.deepEqual(lab.hosts.map((h) => h.migrationAddress), ['127.0.0.10', '127.0.0.11']);
    const uuids = await Promise.all(lab.hosts.map((h) => hostUuid(h.libvirtUri)));
    assert.notEqual(uuids[0], uuids[1]);
    assert.deepEqual(uuids, lab.hosts.map((h) => h.hostUuid));
    if (agents) {
      for (const h of lab.hosts) assert.ok(await tcpAccepts(h.agentUrl!), `agent ${h.name} accepts on ${h.agentUrl}`);
    }
    const again = await labUp({ dir, portBase, agents });
    assert.equal(again.alreadyUp, true);
    const st = await labStatus({ dir });
    assert.equal(st.up, true);
  });

  it('boots the dirtying guest; progress grows and the rate ceiling holds', async (t) => {
    const rate = 100;
    const t0 = Date.now();
    await defineGuest({ dir, host: 'a', name: 'rate', ramMiB: 384, wsMiB: 128, rateMiB: rate, libvirtUri: uri('a') });
    await waitUntil('guest progress', 30_000, async () => ((await readGuestProgress(uri('a'), 'rate')) > 0n ? true : undefined));
    t.diagnostic(`guest boot to first progress: ${Date.now() - t0} ms`);
    const s = await readGuestStatus(uri('a'), 'rate');
    assert.equal(s.wsPages, 128 * 256);
    assert.equal(s.rateMiB, rate);
    assert.ok(s.tscKhz > 100_000, `calibrated TSC ${s.tscKhz} kHz`);
    await sleep(2_000); // past the first pass (host first-touch of guest RAM is slow)
    const measured = await measureGuestRate(uri('a'), 'rate', 4_000);
    t.diagnostic(`measured dirty rate ${measured.toFixed(1)} MiB/s, ceiling ${rate} MiB/s`);
    // Ceiling: never much above. Floor: generous, the machine is shared and TCG is slow.
    assert.ok(measured <= rate * 1.15, `rate ${measured} above ceiling ${rate}`);
    assert.ok(measured >= rate * 0.1, `rate ${measured} far below ceiling ${rate}`);
    await destroyGuest(uri('a'), 'rate');
  });

  it('live-migrates a light guest a -> b with virsh --p2p; the counter continues on b', async (t) => {
    await defineGuest({ dir, host: 'a', name: 'mig', ramMiB: 256, wsMiB: 16, rateMiB: 10, libvirtUri: uri('a') });
    await waitUntil('guest progress', 30_000, async () => ((await readGuestProgress(uri('a'), 'mig')) > 0n ? true : undefined));
    await sleep(1_000);
    const before = await readGuestProgress(uri('a'), 'mig');
    const t0 = Date.now();
    await virsh(uri('a'), ['migrate', '--live', '--p2p', 'mig', uri('b')], 120_000);
    t.diagnostic(`virsh migrate --live --p2p (256 MiB guest): ${Date.now() - t0} ms`);
    assert.deepEqual(await listDomains(uri('a')), []);
    assert.equal((await virsh(uri('b'), ['domstate', 'mig'])).trim(), 'running');
    const p1 = await readGuestProgress(uri('b'), 'mig');
    assert.ok(p1 >= before, `counter went back: ${p1} < ${before}`);
    await sleep(1_500);
    const p2 = await readGuestProgress(uri('b'), 'mig');
    assert.ok(p2 > p1, `counter not increasing on b: ${p1} -> ${p2}`);
  });

  it('lab down leaves no libvirtd/QEMU of the lab behind', async () => {
    assert.ok((await labProcesses(namespaces)).length > 0, 'lab processes visible before down');
    const r = await labDown({ dir });
    assert.equal(r.wasUp, true);
    assert.deepEqual(r.survivors, []);
    const left = await waitUntil('lab processes gone', 10_000, async () => {
      const l = await labProcesses(namespaces);
      return l.length === 0 ? l : undefined;
    }).catch(async () => labProcesses(namespaces));
    assert.deepEqual(left, []);
    assert.equal((await labStatus({ dir })).up, false);
  });
});
