// The logger against a real systemd-journald: priorities, searchable fields, `-u` by unit, and the
// JOURNAL_STREAM auto-detection with its <N>-prefixed stdout fallback.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/common/logger.js';
import { createUnitCgroup, journaldSkipReason, startJournald, type Journald } from '../helpers/journald.js';

const skip = journaldSkipReason() ?? false;
const LOGGER_URL = new URL('../../src/common/logger.js', import.meta.url).href;

type Line = [level: 'debug' | 'info' | 'warn' | 'error' | 'fatal', fields: Record<string, unknown>, msg: string];

interface ChildOpts {
  destination: 'auto' | 'journal' | 'stdout';
  journalSocket: string;
  lines: Line[];
  cgroupProcs?: string[];
  /** set JOURNAL_STREAM from fstat(1), as systemd does */
  setJournalStream?: boolean;
}

// A separate process, so it can join a cgroup or have its stdout on journald's stream socket.
const CHILD = `
import { writeFileSync, fstatSync } from 'node:fs';
const [loggerUrl, json] = process.argv.slice(1);
const o = JSON.parse(json);
for (const p of o.cgroupProcs ?? []) writeFileSync(p, String(process.pid));
if (o.setJournalStream) { const st = fstatSync(1); process.env.JOURNAL_STREAM = st.dev + ':' + st.ino; }
const { createLogger } = await import(loggerUrl);
const log = createLogger({ destination: o.destination, journalSocket: o.journalSocket, level: 'debug' });
for (const [level, fields, msg] of o.lines) log[level](fields, msg);
`;

async function runChild(opts: ChildOpts, stdout: 'ignore' | Socket = 'ignore'): Promise<void> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, LOGGER_URL, JSON.stringify(opts)], {
    stdio: ['ignore', stdout, 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, `child failed: ${stderr}`);
}

/** A connection to journald's stdout stream socket, as systemd hands a service (header first). */
async function journalStream(path: string, identifier: string): Promise<Socket> {
  const sock = createConnection(path);
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  // identifier, unit id, default priority, level_prefix, forward to syslog/kmsg/console
  await new Promise<void>((resolve) => sock.write(`${identifier}\n\n6\n1\n0\n0\n0\n`, () => resolve()));
  return sock;
}

const field = (r: Record<string, unknown>, k: string): string | undefined =>
  typeof r[k] === 'string' ? (r[k] as string) : undefined;

describe('logger -> real journald', { skip }, () => {
  let jd: Journald;
  before(async () => {
    jd = await startJournald();
  });
  after(async () => {
    await jd?.stop();
  });

  it('files native entries with priority and searchable VM fields', async () => {
    const log = createLogger({ destination: 'journal', journalSocket: jd.socketPath, level: 'debug' });
    const web1 = { vmId: '6f1c-web1', vmName: 'web1', migrationId: 'mig-1' };
    log.debug({ ...web1, event: 'migration.sample', iteration: 3 }, 'sample');
    log.info({ ...web1, event: 'migration.started', destination: 'hostB' }, 'migration started');
    log.warn({ ...web1, event: 'migration.throttle', throttlePercent: 40 }, 'raising throttle');
    log.info({ vmId: '9a2e-db1', vmName: 'db1', migrationId: 'mig-2', event: 'migration.started' }, 'other vm');
    const err = new Error('libvirt said no');
    log.error({ ...web1, event: 'migration.failed', err }, 'migration failed');
    log.fatal({ event: 'daemon.crash' }, 'cannot continue');

    const all = await jd.waitFor(['-t', 'vmigrated'], 6);
    assert.equal(all.length, 6);
    for (const r of all) assert.equal(r._TRANSPORT, 'journal');

    const warnings = await jd.read(['-p', 'warning']);
    assert.deepEqual(
      warnings.map((r) => [r.MESSAGE, r.PRIORITY]),
      [
        ['raising throttle', '4'],
        ['migration failed', '3'],
        ['cannot continue', '2'],
      ],
    );

    const byVm = await jd.read(['VM_NAME=web1']);
    assert.deepEqual(
      byVm.map((r) => r.EVENT),
      ['migration.sample', 'migration.started', 'migration.throttle', 'migration.failed'],
    );
    assert.deepEqual(
      (await jd.read(['VM_ID=9a2e-db1', 'MIGRATION_ID=mig-2'])).map((r) => r.MESSAGE),
      ['other vm'],
    );
    const debug = byVm[0]!;
    assert.equal(debug.PRIORITY, '7');
    assert.equal(debug.ITERATION, '3');

    const failed = byVm[3]!;
    assert.equal(failed.ERR_MESSAGE, 'libvirt said no');
    assert.equal(failed.ERR_TYPE, 'Error');
    // multi-line values use the binary-safe length-prefixed encoding
    assert.match(field(failed, 'ERR_STACK') ?? '', /^Error: libvirt said no\n\s+at /);
    const json = JSON.parse(field(failed, 'VMIGRATE_JSON') ?? '{}') as Record<string, unknown>;
    assert.equal(json.migrationId, 'mig-1');
    assert.equal(json.level, 50);
  });

  it('is found by `journalctl -u vmigrated -p warning` when the sender runs as the unit', async (t) => {
    const cg = createUnitCgroup('vmigrated.service');
    if (!cg) {
      t.skip('cgroup tree not writable: cannot pose as a unit');
      return;
    }
    try {
      await runChild({
        destination: 'journal',
        journalSocket: jd.socketPath,
        cgroupProcs: cg.procsFiles,
        lines: [
          ['info', { vmName: 'unit-vm', event: 'x' }, 'unit info'],
          ['warn', { vmName: 'unit-vm', event: 'y' }, 'unit warning'],
        ],
      });
    } finally {
      cg.remove();
    }
    const got = await jd.waitFor(['-u', 'vmigrated', '-p', 'warning'], 1);
    assert.deepEqual(
      got.map((r) => [r.MESSAGE, r._SYSTEMD_UNIT, r.VM_NAME]),
      [['unit warning', 'vmigrated.service', 'unit-vm']],
    );
    assert.equal((await jd.read(['-u', 'vmigrated'])).length, 2);
  });

  it('auto-detects JOURNAL_STREAM and goes native; falls back to <N>-prefixed stdout', async () => {
    const native = await journalStream(jd.stdoutSocketPath, 'vmigrated');
    await runChild(
      {
        destination: 'auto',
        journalSocket: jd.socketPath,
        setJournalStream: true,
        lines: [['warn', { vmName: 'auto-vm', event: 'auto' }, 'auto native']],
      },
      native,
    );
    native.destroy();

    const stream = await journalStream(jd.stdoutSocketPath, 'vmigrated');
    await runChild(
      {
        destination: 'auto',
        journalSocket: `${jd.socketPath}.missing`, // native send fails -> stdout stream
        setJournalStream: true,
        lines: [['warn', { vmName: 'stream-vm', event: 'fallback' }, 'stream fallback']],
      },
      stream,
    );
    stream.end();

    const [viaNative] = await jd.waitFor(['VM_NAME=auto-vm'], 1);
    assert.equal(viaNative?._TRANSPORT, 'journal');
    assert.equal(viaNative?.PRIORITY, '4');

    const [viaStream] = await jd.waitFor(['-t', 'vmigrated', '_TRANSPORT=stdout'], 1);
    assert.equal(viaStream?.PRIORITY, '4');
    const line = JSON.parse(field(viaStream ?? {}, 'MESSAGE') ?? '{}') as Record<string, unknown>;
    assert.equal(line.vmName, 'stream-vm');
    assert.equal(line.msg, 'stream fallback');
  });
});
