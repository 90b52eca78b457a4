// What runs for each lab host: libvirtd, the agent (and any other agent on the host's libvirt URI),
// and one QEMU per domain (from libvirt's pid files). Read-only; `lab procs` prints it.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tcpAccepts } from './agents.js';
import { activeCuts } from './netcut.js';
import { hostPlan, labDir, type HostName } from './paths.js';
import { isAlive, labQemus, listProcs, procInfo, type ProcInfo } from './procs.js';
import { readState, type HostRecord } from './state.js';
import { libvirtAnswers } from './virsh.js';

export interface LabProcess {
  /** null when nothing is recorded */
  pid: number | null;
  alive: boolean;
}

export interface LabQemuProcess extends LabProcess {
  domain: string;
}

export interface LabHostProcesses {
  name: HostName;
  libvirtd: LabProcess & { answers: boolean };
  agent: LabProcess & { accepts: boolean };
  /** agents on this host's libvirt URI other than the recorded one (e.g. a second agent) */
  otherAgents: number[];
  /** QEMU per domain, from <host>/run/libvirt/qemu/<domain>.pid */
  qemus: LabQemuProcess[];
}

export interface LabProcesses {
  dir: string;
  up: boolean;
  hosts: LabHostProcesses[];
  /** QEMUs of this lab (their command line names the lab dir) that no host's pid file names */
  strayQemus: number[];
  /** migration-network cuts in place */
  cuts: [HostName, HostName][];
}

export const qemuPidDir = (hostDir: string): string => join(hostDir, 'run', 'libvirt', 'qemu');

const isAgentOf = (p: ProcInfo, uri: string): boolean => p.cmdline.includes(uri) && p.cmdline.some((a) => a.endsWith('daemon/main.js'));

/** The QEMU of `domain` on a host, when its pid file names a live QEMU of that domain. */
export async function qemuPid(hostDir: string, domain: string): Promise<number | null> {
  const raw = await readFile(join(qemuPidDir(hostDir), `${domain}.pid`), 'utf8').catch(() => '');
  const pid = Number(raw.trim());
  if (!Number.isInteger(pid) || pid <= 1) return null;
  const info = await procInfo(pid);
  // guards against a reused pid: the process must be QEMU running this domain
  return info && info.exe.startsWith('qemu-system') && info.cmdline.some((a) => a.startsWith(`guest=${domain},`) || a === `guest=${domain}`) ? pid : null;
}

async function qemusOf(hostDir: string): Promise<LabQemuProcess[]> {
  const names = await readdir(qemuPidDir(hostDir)).catch(() => [] as string[]);
  const out: LabQemuProcess[] = [];
  // a domain libvirt runs has both <name>.pid and its status <name>.xml (driver.pid is the driver's own)
  const domains = names.filter((n) => n.endsWith('.pid') && names.includes(n.replace(/\.pid$/, '.xml'))).map((n) => n.slice(0, -'.pid'.length));
  for (const domain of domains.sort()) {
    const pid = await qemuPid(hostDir, domain);
    out.push({ domain, pid, alive: pid !== null && (await isAlive(pid)) });
  }
  return out;
}

async function hostProcesses(dir: string, base: number, h: HostRecord, procs: ProcInfo[]): Promise<LabHostProcesses> {
  const plan = hostPlan(dir, h.name, base);
  const libvirtdAlive = await isAlive(h.libvirtdPid);
  const agentAlive = await isAlive(h.agentPid);
  return {
    name: h.name,
    libvirtd: { pid: h.libvirtdPid ?? null, alive: libvirtdAlive, answers: libvirtdAlive && (await libvirtAnswers(h.libvirtUri, 3_000)) },
    agent: { pid: h.agentPid ?? null, alive: agentAlive, accepts: agentAlive && (await tcpAccepts(h.agentPort)) },
    otherAgents: procs.filter((p) => isAgentOf(p, h.libvirtUri) && p.pid !== h.agentPid).map((p) => p.pid),
    qemus: await qemusOf(plan.dir),
  };
}

/** Each host's processes, pids and liveness. */
export async function labProcesses(opts: { dir?: string } = {}): Promise<LabProcesses> {
  const dir = labDir(opts.dir);
  const s = await readState(dir);
  if (!s) return { dir, up: false, hosts: [], strayQemus: [], cuts: await activeCuts(dir) };
  const procs = await listProcs();
  const hosts = await Promise.all(s.hosts.map((h) => hostProcesses(dir, s.portBase, h, procs)));
  const owned = new Set(hosts.flatMap((h) => h.qemus.map((q) => q.pid)));
  const strayQemus = (await labQemus(dir)).map((p) => p.pid).filter((p) => !owned.has(p));
  const up = hosts.every((h) => h.libvirtd.answers && (!s.agents || h.agent.accepts));
  return { dir, up, hosts, strayQemus, cuts: await activeCuts(dir) };
}
