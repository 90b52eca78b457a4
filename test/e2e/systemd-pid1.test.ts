// vmigrated.service under a real systemd PID 1 (a systemd-nspawn machine, test/helpers/nspawn.ts):
// installed by systemd/install.sh, started with systemctl, and checked for Type=notify readiness,
// the watchdog, the sandbox not blocking the agent, and restarts that survive a crash loop.
// There is no libvirtd in the machine: the agent serves anyway (libvirt "not reachable yet").
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureCa, issueCert, type KeyPair } from '../../src/common/pki.js';
import { bootMachine, ensureTree, nspawnSkipReason, NODE_IN_MACHINE, REPO, SRC_IN_MACHINE, type Machine } from '../helpers/nspawn.js';
import { sleep } from '../helpers/raw-rpc.js';

const skip = nspawnSkipReason() ?? false;
const UNIT = 'vmigrated.service';
const PORT = 4411;
const DROPIN_DIR = `/run/systemd/system/${UNIT}.d`;
const RPC_ONCE = join(REPO, 'dist/test/helpers/rpc-once.js');

/** The PKI on the host: a CA, the agent's certificate (server on 127.0.0.1) and the operator's. */
const pkiDir = mkdtempSync(join(tmpdir(), 'vmigrate-pid1-pki-'));
let ca: KeyPair;
const pkiPair = (name: string): KeyPair => ({ cert: join(pkiDir, `${name}.pem`), key: join(pkiDir, `${name}-key.pem`) });

async function issueAgentCert(cn: string): Promise<KeyPair> {
  return issueCert(ca, pkiPair('agent'), { cn, ou: 'vmigrate-peer', san: ['IP:127.0.0.1', 'DNS:localhost'], usage: ['serverAuth', 'clientAuth'] });
}

function copyIn(m: Machine, from: string, to: string, mode: string): void {
  const r = m.run(['sh', '-c', `umask 077; mkdir -p "$(dirname ${to})" && cat > ${to} && chmod ${mode} ${to}`], { input: readFileSync(from, 'utf8') });
  assert.equal(r.status, 0, r.stderr);
}

/** The agent's TLS material where its defaults look for it (/etc/vmigrate/pki). */
function installAgentCert(m: Machine): void {
  copyIn(m, ca.cert, '/etc/vmigrate/pki/ca.pem', '0644');
  copyIn(m, pkiPair('agent').cert, '/etc/vmigrate/pki/agent.pem', '0644');
  copyIn(m, pkiPair('agent').key, '/etc/vmigrate/pki/agent-key.pem', '0600');
}

/**
 * The agent's configuration inside the machine: the one place to change when the agent's defaults
 * change. TLS is on by default, with the material installAgentCert() put in /etc/vmigrate/pki.
 */
function writeAgentConfig(m: Machine): void {
  installAgentCert(m);
  const config = { listen: `127.0.0.1:${PORT}`, metricsListen: 'off', libvirtUri: 'qemu:///system', localSocket: '/run/vmigrate/vmigrated.sock' };
  const r = m.run(['sh', '-c', 'cat > /etc/vmigrate/vmigrated.json'], { input: `${JSON.stringify(config)}\n` });
  assert.equal(r.status, 0, r.stderr);
}

type Reply = { result?: { ok?: boolean; name?: string }; error?: { code: number; message: string; data?: { name?: string } } };

/** One JSON-RPC call to the agent on the machine's loopback; null when nothing answers. */
function rpc(m: Machine, method: string, params: unknown = {}): Reply | null {
  // rpc-once takes the operator's certificate from VMIGRATE_CA/CERT/KEY (set in before())
  const r = m.runInNet([process.execPath, RPC_ONCE, `wss://127.0.0.1:${PORT}`, method, JSON.stringify(params)]);
  return r.status === 0 ? (JSON.parse(r.stdout) as Reply) : null;
}

function dropIn(m: Machine, name: string, text: string): void {
  m.sh(`mkdir -p ${DROPIN_DIR} && cat > ${DROPIN_DIR}/${name}.conf <<'EOF'\n${text}\nEOF\nsystemctl daemon-reload`);
}

function clearDropIns(m: Machine): void {
  m.sh(`rm -rf ${DROPIN_DIR} && systemctl daemon-reload && { systemctl reset-failed ${UNIT} 2>/dev/null || true; }`);
}

async function until<T>(what: string, fn: () => T | false | null | undefined, timeoutMs: number, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(stepMs);
  }
}

type JournalEntry = Record<string, unknown>;

/** The unit's journal entries (systemd's and the agent's) since a CLOCK_MONOTONIC time in µs. */
function journal(m: Machine, sinceMonoUs = 0): JournalEntry[] {
  const out = m.sh(`journalctl -b -u ${UNIT} -o json --no-pager`);
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as JournalEntry)
    .filter((e) => Number(e.__MONOTONIC_TIMESTAMP) >= sinceMonoUs);
}

const monotonicUs = (m: Machine): number => Math.round(Number(m.sh('cut -d" " -f1 /proc/uptime')) * 1e6);
const text = (e: JournalEntry): string => [e.MESSAGE, e.ERR].filter((x) => typeof x === 'string').join(' ');

/** Waits until the unit is active with a main PID other than `not`; returns that PID. */
async function activeMain(m: Machine, not: number, timeoutMs = 30_000): Promise<number> {
  return until(
    `${UNIT} active with a new main PID`,
    () => {
      const s = m.show(UNIT, ['ActiveState', 'SubState', 'MainPID']);
      const pid = Number(s.MainPID);
      return s.ActiveState === 'active' && s.SubState === 'running' && pid > 0 && pid !== not ? pid : false;
    },
    timeoutMs,
  );
}

describe('vmigrated.service under systemd as PID 1 (systemd-nspawn --boot)', { skip, timeout: 600_000 }, () => {
  let m: Machine | undefined;
  let treeInfo = '';
  let bootMs = 0;

  before(async () => {
    ca = await ensureCa(join(pkiDir, 'ca'));
    await issueAgentCert('agent');
    const operator = await issueCert(ca, pkiPair('operator'), { cn: 'operator', ou: 'vmigrate-manager', usage: ['clientAuth'] });
    Object.assign(process.env, { VMIGRATE_CA: ca.cert, VMIGRATE_CERT: operator.cert, VMIGRATE_KEY: operator.key });
    const tree = ensureTree((msg) => console.log(`# ${msg}`));
    treeInfo = `${tree.dir} (${tree.built ? `built in ${(tree.ms / 1000).toFixed(1)} s` : 'cached'})`;
    const t0 = Date.now();
    m = await bootMachine(tree.dir);
    bootMs = Date.now() - t0;
  });

  after(async () => {
    rmSync(pkiDir, { recursive: true, force: true });
    await m?.stop();
  });

  const machine = (): Machine => {
    assert.ok(m, 'machine booted');
    return m;
  };

  it('boots with systemd as PID 1 and installs the unit with systemd/install.sh', (t) => {
    const m = machine();
    t.diagnostic(`tree ${treeInfo}; boot to basic.target ${bootMs} ms`);
    assert.equal(m.sh('readlink /proc/1/exe').trim().replace(/^\/usr/, ''), '/lib/systemd/systemd');
    assert.match(m.sh('systemctl is-system-running || true'), /^(running|degraded)$/m);
    const r = m.run(['sh', `${SRC_IN_MACHINE}/systemd/install.sh`, '--node', NODE_IN_MACHINE]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /installed; start with/, 'install.sh saw systemd running and ran daemon-reload');
    writeAgentConfig(m);
    const s = m.show(UNIT, ['LoadState', 'FragmentPath', 'Type', 'NotifyAccess']);
    assert.deepEqual(s, { LoadState: 'loaded', FragmentPath: `/etc/systemd/system/${UNIT}`, Type: 'notify', NotifyAccess: 'main' });
    const warnings = journal(m).filter((e) => /vmigrated\.service:\d+:|Unknown (key|section)|ignoring/i.test(text(e)));
    assert.deepEqual(warnings.map(text), [], 'PID 1 has no complaints about the unit file');
  });

  it('Type=notify: the start completes on READY=1, and not before', async () => {
    const m = machine();
    clearDropIns(m);
    const start = m.run(['systemctl', 'start', UNIT]);
    assert.equal(start.status, 0, start.stderr + m.sh(`journalctl -b -u ${UNIT} --no-pager -n 30`));
    const s = m.show(UNIT, ['ActiveState', 'SubState', 'StatusText', 'MainPID', 'WatchdogUSec', 'ExecMainStartTimestampMonotonic', 'ActiveEnterTimestampMonotonic']);
    assert.equal(s.ActiveState, 'active');
    assert.equal(s.WatchdogUSec, '30s', "the unit's watchdog is armed");
    assert.equal(s.SubState, 'running');
    // STATUS= only ever comes from sd_notify: the datagrams get from the sandbox to PID 1
    assert.equal(s.StatusText, `serving on wss://127.0.0.1:${PORT}`);
    assert.ok(Number(s.ActiveEnterTimestampMonotonic) > Number(s.ExecMainStartTimestampMonotonic));
    assert.equal(rpc(m, 'Host.ping')?.result?.ok, true);

    // Control: the same agent with its notifications sent nowhere serves, but the unit stays
    // "activating" until TimeoutStartSec, so "active" above came from READY=1 and nothing else.
    m.sh(`systemctl stop ${UNIT}`);
    dropIn(m, '90-no-ready', '[Service]\nEnvironment=NOTIFY_SOCKET=/run/vmigrate-test-nowhere\nTimeoutStartSec=5s\nWatchdogSec=0\nRestart=no');
    try {
      m.sh(`systemctl start --no-block ${UNIT}`);
      await until('agent answers without READY=1 reaching PID 1', () => rpc(m, 'Host.ping')?.result?.ok, 15_000, 200);
      const pending = m.show(UNIT, ['ActiveState', 'SubState']);
      assert.deepEqual(pending, { ActiveState: 'activating', SubState: 'start' }, 'serving, yet not active without READY=1');
      const failed = await until(
        'start timeout',
        () => {
          const f = m.show(UNIT, ['ActiveState', 'Result']);
          return f.ActiveState === 'failed' ? f : false;
        },
        15_000,
        250,
      );
      assert.equal(failed.Result, 'timeout');
    } finally {
      clearDropIns(m);
    }
  });

  it('the sandbox is in force and does not block the agent', async () => {
    const m = machine();
    clearDropIns(m);
    const since = monotonicUs(m);
    m.sh(`systemctl restart ${UNIT}`);
    const pid = Number(m.show(UNIT, ['MainPID']).MainPID);
    assert.ok(pid > 0);
    const status = m.sh(`cat /proc/${pid}/status`);
    assert.match(status, /^Seccomp:\s+2$/m, 'SystemCallFilter= applied');
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    assert.match(status, /^CapEff:\s+0+$/m, 'no capabilities');
    assert.match(status, /^CapBnd:\s+0+$/m);
    const rootMount = m.sh(`cat /proc/${pid}/mountinfo`).split('\n').find((l) => l.split(' ')[4] === '/');
    assert.match(rootMount?.split(' ')[5] ?? '', /^ro(,|$)/, `ProtectSystem=strict: / read-only (${rootMount})`);
    assert.equal(m.sh('stat -c %F /run/vmigrate').trim(), 'directory', 'RuntimeDirectory=vmigrate');

    assert.equal(rpc(m, 'Host.ping')?.result?.ok, true);
    // libvirt calls go through the addon's AF_UNIX connect to /run/libvirt: refused for the real
    // reason (no libvirtd here), not by the sandbox
    const list = rpc(m, 'VM.list');
    assert.ok(list, 'VM.list answered');
    assert.equal(list.error?.data?.name, 'LIBVIRT_ERROR', JSON.stringify(list));
    assert.doesNotMatch(list.error?.message ?? '', /not permitted|permission denied|EPERM|EACCES|read-only/i);
    await sleep(500);
    const entries = journal(m, since);
    assert.ok(entries.some((e) => /vmigrated ready/.test(text(e))), 'agent logged to the journal');
    const blocked = entries.filter((e) => /SIGSYS|bad system call|operation not permitted|permission denied|EPERM|EACCES|read-only file system/i.test(text(e)));
    assert.deepEqual(blocked.map(text), [], 'nothing in the journal of the agent hitting the sandbox');
    assert.equal(m.show(UNIT, ['ActiveState']).ActiveState, 'active');
  });

  it('systemctl reload re-reads the certificates in place; the local socket serves root inside the sandbox', async () => {
    const m = machine();
    clearDropIns(m);
    m.sh(`systemctl restart ${UNIT}`);
    const pid = m.show(UNIT, ['MainPID']).MainPID;
    const since = monotonicUs(m);
    await issueAgentCert('agent-rotated');
    installAgentCert(m);
    const reload = m.run(['systemctl', 'reload', UNIT]);
    assert.equal(reload.status, 0, reload.stderr);
    await until('the agent logs the reload', () => journal(m, since).some((e) => /TLS material reloaded/.test(text(e))), 10_000);
    assert.equal(m.show(UNIT, ['MainPID']).MainPID, pid, 'reloaded, not restarted');
    assert.equal(rpc(m, 'Host.ping')?.result?.ok, true, 'new connections are served with the new certificate');
    assert.equal(m.sh('stat -c %a /run/vmigrate/vmigrated.sock').trim(), '600');
    const local = m.run([NODE_IN_MACHINE, `${SRC_IN_MACHINE}/dist/test/helpers/rpc-once.js`, 'ws+unix:///run/vmigrate/vmigrated.sock:/', 'VM.migrateStatus', '{"vmId":"none"}']);
    assert.equal(local.status, 0, local.stderr);
    assert.equal((JSON.parse(local.stdout) as Reply).error?.data?.name, 'NO_MIGRATION', 'the local socket caller is a manager: the verb ran');
  });

  it('WatchdogSec=: pings keep a live agent up; a frozen one is killed and restarted', async () => {
    const m = machine();
    dropIn(m, '50-fast-watchdog', '[Service]\nWatchdogSec=3s');
    try {
      m.sh(`systemctl restart ${UNIT}`);
      const pid = Number(m.show(UNIT, ['MainPID']).MainPID);
      const n0 = Number(m.show(UNIT, ['NRestarts']).NRestarts);
      await sleep(7000); // more than two watchdog periods: WATCHDOG=1 pings arrive
      assert.deepEqual(m.show(UNIT, ['MainPID', 'NRestarts', 'ActiveState']), { MainPID: String(pid), NRestarts: String(n0), ActiveState: 'active' });

      const since = monotonicUs(m);
      m.sh(`systemctl kill -s SIGSTOP ${UNIT}`);
      const next = await activeMain(m, pid, 30_000);
      assert.equal(Number(m.show(UNIT, ['NRestarts']).NRestarts), n0 + 1);
      const entries = journal(m, since);
      assert.ok(entries.some((e) => e.UNIT_RESULT === 'watchdog'), `Result=watchdog in the journal:\n${entries.map(text).join('\n')}`);
      assert.ok(entries.some((e) => /Watchdog timeout \(limit 3s\)/.test(text(e))));
      assert.ok(next !== pid);
      assert.equal(rpc(m, 'Host.ping')?.result?.ok, true, 'the restarted agent serves');
    } finally {
      clearDropIns(m);
    }
  });

  /** SIGKILLs the running agent each time it is back, until it is failed or `max` kills were done. */
  async function crashLoop(m: Machine, max: number): Promise<{ kills: number; state: Record<string, string> }> {
    let pid = await activeMain(m, 0);
    let kills = 0;
    for (;;) {
      m.sh(`systemctl kill -s SIGKILL ${UNIT}`);
      kills++;
      const back = await until(
        'restart or give-up after SIGKILL',
        () => {
          const s = m.show(UNIT, ['ActiveState', 'SubState', 'MainPID', 'Result', 'NRestarts']);
          if (s.ActiveState === 'failed') return s;
          return s.ActiveState === 'active' && s.SubState === 'running' && Number(s.MainPID) > 0 && Number(s.MainPID) !== pid ? s : false;
        },
        30_000,
      );
      if (back.ActiveState === 'failed' || kills >= max) return { kills, state: back };
      pid = Number(back.MainPID);
    }
  }

  it('a crash loop does not leave the unit failed for good (StartLimitIntervalSec=0)', async () => {
    const m = machine();
    clearDropIns(m);
    const cfg = m.show(UNIT, ['Restart', 'RestartUSec', 'StartLimitIntervalUSec']);
    assert.equal(cfg.Restart, 'on-failure');
    assert.equal(cfg.StartLimitIntervalUSec, '0', 'start rate limit off');
    m.sh(`systemctl restart ${UNIT}`);
    const n0 = Number(m.show(UNIT, ['NRestarts']).NRestarts);
    const since = monotonicUs(m);
    const t0 = Date.now();
    // 6 crashes: one more than the burst of 5 that used to stop the restarts (see the control below)
    const { kills, state } = await crashLoop(m, 6);
    assert.equal(state.ActiveState, 'active', `after ${kills} crashes: ${JSON.stringify(state)}`);
    assert.equal(Number(state.NRestarts), n0 + 6);
    const perRestart = (Date.now() - t0) / kills;
    assert.ok(perRestart >= 5000, `RestartSec=${cfg.RestartUSec} paces the loop (${perRestart.toFixed(0)} ms per restart)`);
    assert.equal(rpc(m, 'Host.ping')?.result?.ok, true);
    assert.ok(!journal(m, since).some((e) => /start-limit|Start request repeated too quickly/i.test(text(e))));
  });

  it('control: the previous StartLimitBurst=5 in 120 s with RestartSec=2s gave up for good', async () => {
    const m = machine();
    dropIn(m, '50-old-limits', '[Unit]\nStartLimitIntervalSec=120\nStartLimitBurst=5\n[Service]\nRestartSec=2s');
    try {
      m.sh(`systemctl reset-failed ${UNIT}; systemctl restart ${UNIT}`);
      const n0 = Number(m.show(UNIT, ['NRestarts']).NRestarts);
      const since = monotonicUs(m);
      const { kills, state } = await crashLoop(m, 8);
      assert.equal(state.ActiveState, 'failed', JSON.stringify(state));
      assert.equal(kills, 5, 'the 6th start in 120 s is refused');
      // systemd 252 keeps the last crash's Result (signal) and says why it stopped in the journal
      assert.ok(journal(m, since).some((e) => /Start request repeated too quickly/.test(text(e))));
      await sleep(6000); // three RestartSec: nothing retries any more
      assert.deepEqual(m.show(UNIT, ['ActiveState', 'MainPID', 'NRestarts']), { ActiveState: 'failed', MainPID: '0', NRestarts: String(n0 + 5) });
      assert.equal(m.sh('systemctl list-jobs --no-legend | wc -l').trim(), '0', 'no restart queued');
      assert.equal(rpc(m, 'Host.ping'), null, 'nothing serves');
    } finally {
      clearDropIns(m);
    }
  });
});
