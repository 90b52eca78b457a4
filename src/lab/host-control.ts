// Faults and repairs on one lab host, for the fault-injection suite and `lab restart|kill`:
// restart a host's agent or libvirtd on its own (its domains keep running), kill -9 its agent,
// libvirtd or a domain's QEMU.
import { startAgent, stopAgent } from './agents.js';
import { LabError, requireRoot } from './errors.js';
import { waitFor } from './exec.js';
import { spawnLibvirtd, waitLibvirtd } from './host.js';
import { hostPlan, labDir, type HostName } from './paths.js';
import { qemuPid } from './processes.js';
import { isAlive, procInfo, signal, terminate } from './procs.js';
import { readState, withLabLock, writeState, type HostRecord, type LabState } from './state.js';

export interface HostControlOptions {
  dir?: string;
}

export interface KillResult {
  host: HostName;
  what: 'agent' | 'libvirtd' | 'qemu';
  pid: number;
  domain?: string;
}

export interface RestartResult {
  host: HostName;
  what: 'agent' | 'libvirtd';
  /** the process that was stopped, null when none was running */
  oldPid: number | null;
  pid: number;
}

async function labState(dir: string): Promise<LabState> {
  const s = await readState(dir);
  if (!s) throw new LabError(`lab is not up in ${dir} (run \`vmigrate lab up\`)`);
  return s;
}

function hostRecord(s: LabState, host: HostName): HostRecord {
  const h = s.hosts.find((x) => x.name === host);
  if (!h) throw new LabError(`lab host ${host} is not recorded in ${s.dir}`);
  return h;
}

/** The recorded libvirtd pid when it is still this host's libvirtd (not a reused pid). */
async function liveLibvirtd(s: LabState, h: HostRecord): Promise<number | null> {
  if (!h.libvirtdPid) return null;
  const info = await procInfo(h.libvirtdPid);
  const marker = hostPlan(s.dir, h.name, s.portBase).dir + '/';
  return info && info.exe === 'libvirtd' && info.cmdline.some((a) => a.startsWith(marker)) && (await isAlive(h.libvirtdPid)) ? h.libvirtdPid : null;
}

async function liveAgent(h: HostRecord): Promise<number | null> {
  if (!h.agentPid) return null;
  const info = await procInfo(h.agentPid);
  return info && info.cmdline.includes(h.libvirtUri) && info.cmdline.some((a) => a.endsWith('daemon/main.js')) && (await isAlive(h.agentPid)) ? h.agentPid : null;
}

async function killAndWait(pid: number, what: string): Promise<void> {
  signal(pid, 'SIGKILL');
  await waitFor(`${what} (pid ${pid}) to die`, 10_000, async () => ((await isAlive(pid)) ? undefined : true), 50);
}

/** kill -9 of the host's agent. */
export async function killAgent(host: HostName, o: HostControlOptions = {}): Promise<KillResult> {
  requireRoot('lab kill');
  const s = await labState(labDir(o.dir));
  const pid = await liveAgent(hostRecord(s, host));
  if (!pid) throw new LabError(`the agent of host ${host} is not running`);
  await killAndWait(pid, `agent ${host}`);
  return { host, what: 'agent', pid };
}

/** kill -9 of the host's libvirtd; its QEMUs go on running. */
export async function killLibvirtd(host: HostName, o: HostControlOptions = {}): Promise<KillResult> {
  requireRoot('lab kill');
  const s = await labState(labDir(o.dir));
  const pid = await liveLibvirtd(s, hostRecord(s, host));
  if (!pid) throw new LabError(`libvirtd of host ${host} is not running`);
  await killAndWait(pid, `libvirtd ${host}`);
  return { host, what: 'libvirtd', pid };
}

/** kill -9 of the QEMU running `domain` on the host (found from libvirt's pid file). */
export async function killQemu(host: HostName, domain: string, o: HostControlOptions = {}): Promise<KillResult> {
  requireRoot('lab kill');
  const s = await labState(labDir(o.dir));
  const pid = await qemuPid(hostPlan(s.dir, host, s.portBase).dir, domain);
  if (!pid) throw new LabError(`no QEMU of domain ${domain} runs on host ${host}`);
  await killAndWait(pid, `QEMU of ${domain} on ${host}`);
  return { host, what: 'qemu', pid, domain };
}

/** Stops the host's agent (TERM, then KILL) if it runs, and starts a new one; its pid is recorded. */
export async function restartAgent(host: HostName, o: HostControlOptions & { agentArgs?: readonly string[] } = {}): Promise<RestartResult> {
  requireRoot('lab restart');
  const dir = labDir(o.dir);
  return withLabLock(dir, async () => {
    const s = await labState(dir);
    if (!s.agents) throw new LabError(`the lab in ${dir} runs without agents (--no-agents)`);
    const h = hostRecord(s, host);
    const oldPid = await liveAgent(h);
    const left = await stopAgent(h.name, h.libvirtUri, h.agentPid);
    if (left.length) throw new LabError(`could not stop the agent of host ${host}: pids ${left.join(' ')} survive`);
    h.agentPid = await startAgent(hostPlan(dir, host, s.portBase), dir, undefined, o.agentArgs);
    await writeState(dir, s);
    return { host, what: 'agent', oldPid, pid: h.agentPid };
  });
}

/** Stops the host's libvirtd (TERM, then KILL) if it runs, and starts a new one on the same state
 *  (its run dir is kept, so it finds the running domains again); its pid and namespace are recorded. */
export async function restartLibvirtd(host: HostName, o: HostControlOptions = {}): Promise<RestartResult> {
  requireRoot('lab restart');
  const dir = labDir(o.dir);
  return withLabLock(dir, async () => {
    const s = await labState(dir);
    const h = hostRecord(s, host);
    const oldPid = await liveLibvirtd(s, h);
    if (oldPid) {
      const left = await terminate([oldPid], 6_000);
      if (left.length) throw new LabError(`could not stop libvirtd of host ${host} (pid ${oldPid})`);
    }
    const plan = hostPlan(dir, host, s.portBase);
    h.libvirtdPid = spawnLibvirtd(plan, s.qemuRoot ?? null);
    await writeState(dir, s);
    h.mntNs = await waitLibvirtd(plan, h.libvirtdPid);
    await writeState(dir, s);
    return { host, what: 'libvirtd', oldPid, pid: h.libvirtdPid };
  });
}
