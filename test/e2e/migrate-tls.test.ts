// End to end on the lab: VM.migrate with tls: true encrypts QEMU's migration stream with the lab CA's
// certificates (qemu.conf migrate_tls_x509_cert_dir), and a destination with a certificate from
// another CA is refused. Driven by the independent JSON-RPC client, like migrate.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineGuest, destroyGuest, labDir, labDown, readGuestProgress, virsh, type LabHostInfo } from '../../src/lab/index.js';
import { migrationTlsDir } from '../../src/lab/lab-pki.js';
import { ensureCa, issueCert } from '../../src/common/pki.js';
import { call, callError, sleep, waitFor } from '../helpers/raw-rpc.js';
import { twoHosts } from '../helpers/lab-hosts.js';

interface Status {
  state: string;
  tls: boolean;
  error: { name: string; message: string } | null;
}
interface Vm {
  name: string;
  state: string;
}
/** QEMU's migration parameters that say whether and how the stream is encrypted. */
interface TlsParams {
  'tls-creds': string;
  'tls-hostname': string;
}

const isRoot = process.getuid?.() === 0;
let A: LabHostInfo;
let B: LabHostInfo;
const agent = (h: LabHostInfo): string => h.agentUrl ?? assert.fail(`lab host ${h.name} has no agent`);

async function runningOn(h: LabHostInfo, name: string): Promise<boolean> {
  return (await call<Vm[]>(agent(h), 'VM.list')).some((v) => v.name === name && v.state === 'running');
}

async function tlsParams(h: LabHostInfo, name: string): Promise<TlsParams | null> {
  try {
    const reply = await virsh(h.libvirtUri, ['qemu-monitor-command', name, '{"execute":"query-migrate-parameters"}']);
    return (JSON.parse(reply) as { return: TlsParams }).return;
  } catch {
    return null; // the domain left this host
  }
}

/** Migrates with tls: true, watching the source QEMU's parameters until the migration ends. */
async function migrateWatchingTls(name: string): Promise<{ final: Status; seen: TlsParams[] }> {
  await call(agent(A), 'VM.migrate', { vmId: name, dst: agent(B), tls: true, bandwidth: 16, postcopy: false });
  const seen: TlsParams[] = [];
  const final = await waitFor(
    async () => {
      const p = await tlsParams(A, name);
      if (p) seen.push(p);
      return call<Status>(agent(A), 'VM.migrateStatus', { vmId: name });
    },
    (s) => ['completed', 'failed', 'cancelled'].includes(s.state),
    120_000,
    200,
  );
  return { final, seen };
}

describe('encrypted migration stream on the lab', { skip: isRoot ? false : 'needs root (lab hosts)' }, () => {
  before(async () => {
    ({ A, B } = await twoHosts());
  });

  after(async () => {
    await labDown();
  });

  test('tls: true sends the stream over TLS to the destination\'s migration address; the VM keeps working on b only', async () => {
    const caps = await call<{ migrationFeatures: string[] }>(agent(A), 'Host.getCapabilities');
    assert.ok(caps.migrationFeatures.includes('tls'));
    const bad = await callError(agent(A), 'VM.migrate', { vmId: 'x', dst: agent(B), tls: 'yes' });
    assert.equal(bad.code, -32602);
    assert.match(bad.message, /tls/);

    const name = 'tls1';
    // 96 MiB written at 4 MiB/s over a 16 MiB/s cap: about 6 s, long enough to look at QEMU several
    // times (a virsh call takes up to a second on a busy host; with 32 MiB, CI once saw only two looks,
    // both before libvirt had set the migration's parameters)
    await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 96, rateMiB: 4 });
    const { final, seen } = await migrateWatchingTls(name);
    assert.equal(final.state, 'completed', JSON.stringify(final.error));
    assert.equal(final.tls, true);
    // libvirt attaches its tls-creds-x509 object to the migration only with VIR_MIGRATE_TLS (else "")
    const during = seen.filter((p) => p['tls-creds'] !== '');
    assert.ok(during.length > 0, `source QEMU never had TLS credentials set: ${JSON.stringify(seen)}`);
    assert.equal(during[0]!['tls-hostname'], B.migrationAddress, 'certificate checked against the destination address');

    assert.ok(await runningOn(B, name), `${name} should run on b`);
    assert.ok(!(await runningOn(A, name)), `${name} must not run on a`);
    const p1 = await readGuestProgress(B.libvirtUri, name);
    await sleep(1000);
    assert.ok((await readGuestProgress(B.libvirtUri, name)) > p1, 'guest still works on b');
    await destroyGuest(B.libvirtUri, name);
  });

  test('a destination with credentials from another CA fails the handshake; the VM stays on a', async () => {
    const name = 'tls2';
    await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 8, rateMiB: 4 });
    const dir = migrationTlsDir(labDir(), B.name);
    const keep = await mkdtemp(join(tmpdir(), 'vmigrate-tls-keep-'));
    const rogue = await mkdtemp(join(tmpdir(), 'vmigrate-tls-rogue-'));
    const files = ['ca-cert.pem', 'server-cert.pem', 'server-key.pem'];
    try {
      for (const f of files) await copyFile(join(dir, f), join(keep, f));
      // b consistent in itself (so its QEMU accepts its own credentials), same name and address, another
      // CA: only checking the peer's certificate against the lab CA can refuse it
      const ca = await ensureCa(rogue);
      await copyFile(ca.cert, join(dir, 'ca-cert.pem'));
      await issueCert(ca, { cert: join(dir, 'server-cert.pem'), key: join(dir, 'server-key.pem') }, { cn: 'b migration', san: [`IP:${B.migrationAddress}`], usage: ['serverAuth'] });
      const { final } = await migrateWatchingTls(name);
      assert.equal(final.state, 'failed');
      assert.equal(final.error?.name, 'MIGRATION_FAILED');
      assert.match(final.error?.message ?? '', /certificate|TLS|tls/i);
    } finally {
      for (const f of files) await copyFile(join(keep, f), join(dir, f));
      await rm(keep, { recursive: true, force: true });
      await rm(rogue, { recursive: true, force: true });
    }
    assert.ok(await runningOn(A, name), `${name} should still run on a`);
    assert.ok(!(await runningOn(B, name)), `${name} must not run on b`);
    await destroyGuest(A.libvirtUri, name);
  });
});
