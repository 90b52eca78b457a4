// sd_notify against real datagram sockets, and the unit file against systemd-analyze.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { receiveDatagrams } from '../../src/common/unix-dgram.js';
import { notifyReady, notifyStopping, startWatchdog, watchdogIntervalMs } from '../../src/daemon/systemd.js';

const UNIT = new URL('../../../systemd/vmigrated.service', import.meta.url);
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const python = spawnSync('python3', ['--version']).status === 0;

/** A bound notify socket collecting datagrams, like PID 1's /run/systemd/notify. */
function notifySocket(): { path: string; messages: string[]; close(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'vmigrate-notify-'));
  const path = join(dir, 'notify');
  const messages: string[] = [];
  const rx = receiveDatagrams(path, (buf) => messages.push(buf.toString()));
  return {
    path,
    messages,
    close() {
      rx.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('sd_notify', () => {
  it('is a no-op without NOTIFY_SOCKET', () => {
    assert.equal(notifyReady(undefined, {}), false);
    assert.equal(startWatchdog({ WATCHDOG_USEC: '1000000' }), null);
  });

  it('sends READY=1 and STOPPING=1 to a path socket', async () => {
    const s = notifySocket();
    try {
      const env = { NOTIFY_SOCKET: s.path };
      assert.equal(notifyReady('listening on 127.0.0.1:4411', env), true);
      assert.equal(notifyStopping(undefined, env), true);
      await until(() => s.messages.length === 2);
      assert.deepEqual(s.messages, ['READY=1\nSTATUS=listening on 127.0.0.1:4411', 'STOPPING=1']);
    } finally {
      s.close();
    }
  });

  it('pings WATCHDOG=1 at half the interval, only for its own pid', async () => {
    const s = notifySocket();
    try {
      assert.equal(watchdogIntervalMs({ NOTIFY_SOCKET: s.path, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' }), null);
      const wd = startWatchdog({ NOTIFY_SOCKET: s.path, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) });
      assert.ok(wd);
      assert.equal(wd.intervalMs, 200);
      const t0 = Date.now();
      await until(() => s.messages.length >= 4);
      wd.stop();
      assert.ok(Date.now() - t0 >= 250, 'pings are spaced ~100 ms apart');
      assert.ok(s.messages.every((m) => m === 'WATCHDOG=1'));
    } finally {
      s.close();
    }
  });

  it('reaches an abstract socket (@name) via systemd-notify', { skip: python ? false : 'python3 needed to bind an abstract socket' }, async () => {
    const name = `vmigrate-test-${process.pid}`;
    // Node cannot bind abstract datagram sockets, so a tiny receiver plays systemd
    const rx = spawn('python3', [
      '-c',
      `import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind('\\0'+sys.argv[1])\nprint('ok',flush=True)\ns.settimeout(5)\nprint(s.recv(4096).decode().replace('\\n','|'),flush=True)`,
      name,
    ]);
    let out = '';
    rx.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => out.startsWith('ok'));
    assert.equal(notifyReady('up', { NOTIFY_SOCKET: `@${name}` }), true);
    await new Promise((r) => rx.once('exit', r));
    assert.equal(out.split('\n')[1], 'READY=1|STATUS=up');
  });
});

describe('systemd/vmigrated.service', { skip: hasAnalyze ? false : 'systemd-analyze not installed' }, () => {
  // verify insists that ExecStart exists: check a copy pointing at a binary this machine has
  function copyWithExec(): { dir: string; file: string } {
    const dir = mkdtempSync(join(tmpdir(), 'vmigrate-unit-'));
    const file = join(dir, 'vmigrated.service');
    const text = readFileSync(UNIT, 'utf8');
    assert.match(text, /^ExecStart=\/usr\/local\/bin\/vmigrated /m);
    writeFileSync(file, text.replace(/^ExecStart=\/usr\/local\/bin\/vmigrated/m, `ExecStart=${process.execPath}`));
    return { dir, file };
  }

  it('passes systemd-analyze verify', () => {
    const { dir, file } = copyWithExec();
    try {
      const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const about = (r.stdout + r.stderr).split('\n').filter((l) => l.includes('vmigrated.service'));
      assert.deepEqual(about, [], 'no warnings about the unit');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps systemd-analyze security exposure at or below 2.0', () => {
    const { dir, file } = copyWithExec();
    try {
      const r = spawnSync('systemd-analyze', ['security', '--offline=yes', file], { encoding: 'utf8' });
      const m = /Overall exposure level for vmigrated\.service: ([\d.]+)/.exec(r.stdout);
      assert.ok(m, r.stdout + r.stderr);
      assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('does not deny W+X memory (V8 JIT)', () => {
    assert.doesNotMatch(readFileSync(UNIT, 'utf8'), /^MemoryDenyWriteExecute=(yes|true|1)/m);
    assert.ok(existsSync(UNIT));
  });
});
