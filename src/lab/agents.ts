import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, openSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { tailFile, waitFor } from './exec.js';
import { LabError } from './errors.js';
import { daemonMain, type HostPlan } from './paths.js';
import { labAgentTls } from './lab-pki.js';
import type { TlsMaterial } from '../common/pki.js';
import { isAlive, listProcs, procInfo, terminate } from './procs.js';
import { agentStateDir } from './state-dir.js';

/** libvirt URIs the lab's agents accept as destinations: the default TLS transport, and the
 *  hosts' Unix sockets (which live under the lab dir). */
export function labAllowedLibvirtUris(labDir: string): string[] {
  return ['qemu+tls://*/system', `qemu+unix:///system?socket=${labDir}/*`];
}

export function agentArgs(p: HostPlan, tls: TlsMaterial, labDir: string): string[] {
  return [
    daemonMain(), '--name', p.name, '--libvirt-uri', p.libvirtUri,
    '--listen', `127.0.0.1:${p.agentPort}`, '--metrics-listen', `127.0.0.1:${p.metricsPort}`,
    // The lab has no journald; the log goes to <host>/agent.log.
    '--log-target', 'stdout',
    '--migration-address', p.migrationAddress,
    '--state-dir', agentStateDir(p),
    '--tls-ca', tls.ca, '--tls-cert', tls.cert, '--tls-key', tls.key,
    '--local-socket', agentSocket(p),
    '--allowed-libvirt-uris', JSON.stringify(labAllowedLibvirtUris(labDir)),
  ];
}

/** The agent's local endpoint (root only): `ws+unix://<path>:/` */
export const agentSocket = (p: HostPlan): string => join(p.dir, 'agent.sock');

export function requireDaemonBuilt(): void {
  if (!existsSync(daemonMain())) {
    throw new LabError(`agent daemon not built (${daemonMain()} missing): run \`npm run build\`, or use --no-agents`);
  }
}

export function tcpAccepts(port: number, host = '127.0.0.1', timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Starts vmigrated for one host, detached, logging to <host>/agent.log; waits for its port. */
/** `extraArgs`: more vmigrated flags (e.g. --memory-capacity for a host that looks full). */
export async function startAgent(p: HostPlan, labDir: string, timeoutMs = 30_000, extraArgs: readonly string[] = []): Promise<number> {
  requireDaemonBuilt();
  const tls = await labAgentTls(labDir, p.name);
  if (await tcpAccepts(p.agentPort)) throw new LabError(`port 127.0.0.1:${p.agentPort} for agent ${p.name} is already in use (set VMIGRATE_LAB_PORT_BASE)`);
  appendFileSync(p.agentLog, `--- vmigrate lab: starting agent ${p.name} at ${new Date().toISOString()}\n`);
  const fd = openSync(p.agentLog, 'a');
  let pid: number;
  try {
    const child = spawn(process.execPath, [...agentArgs(p, tls, labDir), ...extraArgs], { detached: true, stdio: ['ignore', fd, fd] });
    child.unref();
    if (!child.pid) throw new Error(`failed to spawn agent ${p.name}`);
    pid = child.pid;
  } finally {
    closeSync(fd);
  }
  await waitFor(`agent ${p.name} on 127.0.0.1:${p.agentPort}`, timeoutMs, async () => {
    if (!(await isAlive(pid))) throw new Error(`agent ${p.name} exited during start; ${p.agentLog}:\n${await tailFile(p.agentLog)}`);
    return (await tcpAccepts(p.agentPort)) ? true : undefined;
  });
  return pid;
}

/** Is `pid` the agent we started for this host (guards against pid reuse)? */
async function isOurAgent(pid: number, name: string, uri: string): Promise<boolean> {
  const i = await procInfo(pid);
  return !!i && i.cmdline.some((a) => a.endsWith('daemon/main.js')) && i.cmdline.includes(uri) && i.cmdline.includes(name);
}

/** Stops the recorded agent, plus any agent started with this host's libvirt URI. */
export async function stopAgent(name: string, uri: string, pid?: number): Promise<number[]> {
  const pids: number[] = [];
  if (pid && (await isOurAgent(pid, name, uri))) pids.push(pid);
  for (const p of await listProcs()) {
    if (p.cmdline.includes(uri) && p.cmdline.some((a) => a.endsWith('daemon/main.js'))) pids.push(p.pid);
  }
  return terminate(pids, 5_000);
}
