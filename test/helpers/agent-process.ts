// Starts a real `vmigrated` (dist/src/daemon/main.js) as a child process with any flags/env, for
// e2e tests that need an agent configured differently from the lab's (limits, log target, ...).
// Optionally logs natively to a private journald (test/helpers/journald.ts) as unit vmigrated.service:
// the daemon always sends to /run/systemd/journal/socket, so it runs in its own mount namespace
// where /run/systemd is a temp dir whose journal/socket links to the private journald's socket.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Journald } from './journald.js';
import { labAllowedLibvirtUris } from '../../src/lab/agents.js';
import { labAgentTls } from '../../src/lab/lab-pki.js';
import { labDir } from '../../src/lab/paths.js';
import { stoppable } from './child.js';

export const DAEMON_MAIN = fileURLToPath(new URL('../../src/daemon/main.js', import.meta.url));

export interface AgentProcessOptions {
  name: string;
  libvirtUri: string;
  /** RPC port on 127.0.0.1 */
  port: number;
  /** metrics port on 127.0.0.1; omitted/null: --metrics-listen off */
  metricsPort?: number | null;
  /** more flags, e.g. ['--max-incoming', '1'] */
  args?: string[];
  /** extra environment (e.g. VMIGRATED_MAX_OUTGOING) */
  env?: Record<string, string>;
  /** log natively to this journald (adds --log-target journal) */
  journald?: Journald;
  /** cgroup.procs files to join first, so journald files the lines under that unit */
  cgroupProcs?: string[];
  startTimeoutMs?: number;
  /** the lab whose CA signs this agent's certificate and whose sockets it may migrate to (default: labDir()) */
  labDir?: string;
}

export interface AgentProcess {
  readonly url: string;
  readonly metricsUrl: string | null;
  readonly pid: number;
  /** what the daemon wrote to stdout/stderr so far (last 64 KiB) */
  output(): string;
  /** SIGTERM (SIGKILL after 10 s); resolves with the exit code */
  stop(): Promise<number | null>;
}

export function tcpAccepts(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    s.setTimeout(1000, () => (s.destroy(), resolve(false)));
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export async function startAgentProcess(o: AgentProcessOptions): Promise<AgentProcess> {
  if (await tcpAccepts(o.port)) throw new Error(`port 127.0.0.1:${o.port} is already in use`);
  // a peer of the lab's agents: a certificate from the lab's CA, and the lab's destinations allowed
  const lab = o.labDir ?? labDir();
  const tls = await labAgentTls(lab, o.name);
  // each agent needs a stateDir of its own (a lock refuses a second one): a temporary one unless given
  const stateDir = o.args?.includes('--state-dir') ? null : mkdtempSync(join(tmpdir(), 'vmigrate-agent-state-'));
  const daemonArgs = [
    DAEMON_MAIN,
    '--name', o.name,
    '--libvirt-uri', o.libvirtUri,
    '--listen', `127.0.0.1:${o.port}`,
    '--metrics-listen', o.metricsPort ? `127.0.0.1:${o.metricsPort}` : 'off',
    '--log-target', o.journald ? 'journal' : 'stdout',
    ...(stateDir ? ['--state-dir', stateDir] : []),
    '--tls-ca', tls.ca, '--tls-cert', tls.cert, '--tls-key', tls.key,
    '--allowed-libvirt-uris', JSON.stringify(labAllowedLibvirtUris(lab)),
    ...(o.args ?? []),
  ];
  // no config file of the machine may leak in
  const env: NodeJS.ProcessEnv = { ...process.env, VMIGRATED_CONFIG: '', ...(o.env ?? {}) };
  delete env.JOURNAL_STREAM;
  delete env.NOTIFY_SOCKET;
  let runDir: string | null = null;
  let child: ChildProcess;
  if (o.journald || o.cgroupProcs?.length) {
    const steps: string[] = [];
    const shArgs: string[] = [];
    for (const p of o.cgroupProcs ?? []) {
      shArgs.push(p);
      steps.push(`echo $$ > "$${shArgs.length}"`);
    }
    if (o.journald) {
      runDir = mkdtempSync(join(tmpdir(), 'vmigrate-agent-run-'));
      mkdirSync(join(runDir, 'journal'));
      symlinkSync(o.journald.socketPath, join(runDir, 'journal', 'socket'));
      shArgs.push(runDir);
      // mount -n: libmount must not create /run/mount in the real /run
      steps.push(`mount -n --bind "$${shArgs.length}" /run/systemd`);
    }
    const script = `${steps.join(' && ')} && shift ${shArgs.length} && exec "$@"`;
    child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...shArgs, process.execPath, ...daemonArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
  } else {
    child = spawn(process.execPath, daemonArgs, { stdio: ['ignore', 'pipe', 'pipe'], env });
  }
  let out = '';
  const keep = (d: Buffer): void => void (out = (out + d.toString()).slice(-65536));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const proc = stoppable(child, 10_000);
  const stop = async (): Promise<number | null> => {
    const code = await proc.stop();
    if (runDir) rmSync(runDir, { recursive: true, force: true });
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    return code;
  };

  const deadline = Date.now() + (o.startTimeoutMs ?? 30_000);
  while (!(await tcpAccepts(o.port))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`vmigrated ${o.name} did not start listening on ${o.port}:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `wss://127.0.0.1:${o.port}`,
    metricsUrl: o.metricsPort ? `http://127.0.0.1:${o.metricsPort}/metrics` : null,
    pid: child.pid!,
    output: () => out,
    stop,
  };
}
