// The outgoing FIFO on the lab: a source agent limited to one outgoing migration (a second vmigrated
// on host a, --max-outgoing 1) keeps a slow migration running while others ask: one waits at
// position 1 and completes once the slot frees; queue:false is refused at once; a waiting one is
// cancelled; one with a short queueTimeoutSec ends with TOO_MANY_MIGRATIONS. Real libvirt and QEMU.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { defineGuest, destroyGuest, labDown, readGuestProgress, type LabHostInfo } from '../../src/lab/index.js';
import { portBase } from '../../src/lab/paths.js';
import { startAgentProcess, type AgentProcess } from '../helpers/agent-process.js';
import { agentUrl, runningOn, twoHosts } from '../helpers/lab-hosts.js';
import { call, callError, operatorTlsPaths, waitFor } from '../helpers/raw-rpc.js';
import { AgentClient, type Notification } from 'vmigrate/client';
import { readTlsPaths } from '../../src/client/tls.js';

const isRoot = process.getuid?.() === 0;
// the limited agent of this file: base+41 (RPC), base+42 (metrics)
const PORT_LIMITED = portBase() + 41;
const METRICS_LIMITED = portBase() + 42;

interface Status {
  migrationId: string;
  state: string;
  queuePosition?: number;
  error: { code: number; name: string; message: string } | null;
  vmLocation: string | null;
}

interface Started {
  migrationId: string;
  vmName: string;
  state: string;
  queuePosition?: number;
}

let A: LabHostInfo;
let B: LabHostInfo;
let limited: AgentProcess | undefined;
const SLOW = 'q-slow';
const NEXT = 'q-next';
const OTHER = 'q-other';

async function guest(name: string, ramMiB: number, wsMiB: number, rateMiB: number): Promise<void> {
  await defineGuest({ host: 'a', name, ramMiB, wsMiB, rateMiB });
  await waitFor(() => readGuestProgress(A.libvirtUri, name).catch(() => 0n), (p) => p > 0n, 30_000, 250);
}

const status = (vm: string): Promise<Status> => call<Status>(limited!.url, 'VM.migrateStatus', { vmId: vm });

async function metric(name: string): Promise<number> {
  const text = await (await fetch(limited!.metricsUrl!)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1));
}

describe('outgoing migrations beyond the limit wait in a FIFO', { skip: isRoot ? false : 'needs root (lab hosts)' }, () => {
  before(async () => {
    ({ A, B } = await twoHosts());
    limited = await startAgentProcess({
      name: 'a-queue',
      libvirtUri: A.libvirtUri,
      port: PORT_LIMITED,
      metricsPort: METRICS_LIMITED,
      args: ['--max-outgoing', '1', '--migration-address', '127.0.0.10'],
    });
    await Promise.all([guest(SLOW, 256, 128, 200), guest(NEXT, 128, 8, 4), guest(OTHER, 128, 8, 4)]);
  });

  after(async () => {
    await limited?.stop();
    for (const vm of [SLOW, NEXT, OTHER]) {
      await destroyGuest(A.libvirtUri, vm).catch(() => {});
      await destroyGuest(B.libvirtUri, vm).catch(() => {});
    }
    await labDown();
  });

  test('queued at position 1, refused with queue:false, cancelled, timed out; the head starts when the slot frees and completes', { timeout: 180_000 }, async () => {
    const url = limited!.url;
    const dst = agentUrl(B);
    // a subscriber sees the queue: queued with its place, then the start and the end
    const subscriber = await AgentClient.connect(url, { tls: readTlsPaths(operatorTlsPaths()) });
    const notes: Notification[] = [];
    subscriber.on('notification', (n) => notes.push(n));
    await subscriber.subscribe({ topics: ['migration.state', 'migration.progress'] });
    // cannot finish at 20 MiB/s without steering: it holds the only slot until cancelled
    await call(url, 'VM.migrate', { vmId: SLOW, dst, bandwidth: 20, policy: 'stock' });
    await waitFor(() => status(SLOW), (s) => s.state === 'running', 60_000);

    const next = await call<Started>(url, 'VM.migrate', { vmId: NEXT, dst });
    assert.equal(next.state, 'queued');
    assert.equal(next.queuePosition, 1);
    const waiting = await status(NEXT);
    assert.equal(waiting.state, 'queued');
    assert.equal(waiting.queuePosition, 1);
    assert.equal(waiting.migrationId, next.migrationId);
    assert.equal(await metric('vmigrate_migrations_queued'), 1);

    // today's refusal, when asked for
    const refused = await callError(url, 'VM.migrate', { vmId: OTHER, dst, queue: false });
    assert.equal(refused.code, 1007, JSON.stringify(refused));
    assert.equal(refused.data?.name, 'TOO_MANY_MIGRATIONS');
    assert.equal(refused.data?.direction, 'outgoing');

    // behind NEXT, then cancelled: out of the queue at once, the guest untouched
    const other = await call<Started>(url, 'VM.migrate', { vmId: OTHER, dst });
    assert.equal(other.queuePosition, 2);
    const cancelled = await call<Status>(url, 'VM.migrateCancel', { vmId: OTHER });
    assert.equal(cancelled.state, 'cancelled');
    assert.equal(cancelled.vmLocation, 'source');
    assert.equal((await status(NEXT)).queuePosition, 1);

    // a short wait: it gives up with TOO_MANY_MIGRATIONS in its status
    const t0 = Date.now();
    await call(url, 'VM.migrate', { vmId: OTHER, dst, queueTimeoutSec: 1 });
    const expired = await waitFor(() => status(OTHER), (s) => s.state !== 'queued', 10_000, 200);
    assert.equal(expired.state, 'failed');
    assert.equal(expired.error?.name, 'TOO_MANY_MIGRATIONS');
    assert.equal(expired.error?.code, 1007);
    assert.ok(Date.now() - t0 < 5_000, `timed out after ${Date.now() - t0} ms`);
    assert.ok(await runningOn(A, OTHER), `${OTHER} keeps running on the source`);
    assert.equal((await status(NEXT)).state, 'queued', 'the head still waits: the slot is still held');

    // the slot frees: the head is admitted by the destination, migrates and completes
    assert.equal((await call<Status>(url, 'VM.migrateCancel', { vmId: SLOW })).state, 'cancelled');
    const done = await waitFor(() => status(NEXT), (s) => !['queued', 'pending', 'running'].includes(s.state), 90_000);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    assert.equal(done.migrationId, next.migrationId);
    assert.equal(done.queuePosition, undefined);
    assert.ok(await runningOn(B, NEXT), `${NEXT} runs on the destination`);
    const seen = notes.map((n) => n.params as Status & { vmName: string }).filter((st) => st.vmName === NEXT && st.migrationId === next.migrationId);
    const states = seen.map((st) => `${st.state}${st.queuePosition ?? ''}`);
    assert.equal(states[0], 'queued1', states.join(' '));
    assert.ok(states.includes('running') && states.at(-1) === 'completed', states.join(' '));
    await subscriber.close();
    assert.equal(await metric('vmigrate_migrations_queued'), 0);
    assert.equal(await metric('vmigrate_migrations_dequeued_total'), 1);
  });
});
