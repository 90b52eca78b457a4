import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { agentSocket, requireDaemonBuilt, startAgent, stopAgent, tcpAccepts } from './agents.js';
import { labClientTls, labClientTlsPaths, labMigrationTls } from './lab-pki.js';
import type { TlsMaterial } from '../common/pki.js';
import { LabError, requireRoot } from './errors.js';
import { prepareHost, spawnLibvirtd, stopHost, waitLibvirtd } from './host.js';
import { DEFAULT_HOST_COUNT, HOST_NAMES, hostNames, hostPlan, labDir, portBase, stateFile, type HostName, type HostPlan } from './paths.js';
import { isAlive, labQemus, terminate } from './procs.js';
import { readState, withLabLock, writeState, type HostRecord, type LabState } from './state.js';
import { libvirtAnswers, listDomains, virshRaw } from './virsh.js';
import { readGuestStatus, type GuestStatus } from './guest-progress.js';
import { dropAllCuts } from './netcut.js';
import { activeShapes, dropAllShapes, type UplinkShape } from './shape.js';
import { mountStateDir, unmountAll } from './state-dir.js';
import { qemuVersion, resolveQemuRoot } from './qemu-engine.js';

export interface LabHostInfo {
  name: HostName;
  libvirtUri: string;
  /** wss:// URL of the host's agent; null when the lab runs without agents (--no-agents). */
  agentUrl: string | null;
  /** the agent's local endpoint, a Unix socket for root (ws+unix:// URL) */
  agentSocketUrl: string | null;
  metricsUrl: string | null;
  migrationAddress: string;
  hostUuid: string;
  libvirtdPid?: number;
  agentPid?: number;
}

export interface LabInfo {
  dir: string;
  hosts: LabHostInfo[];
  /** the operator's client certificate (role manager) and the lab CA: paths */
  tls: TlsMaterial;
  /** the QEMU the hosts run: its version, and the tree bind-mounted over the system's (null: the system's) */
  qemu: { version: string; root: string | null };
  /** true when `up` found the lab already running. */
  alreadyUp?: boolean;
}

export interface LabUpOptions {
  dir?: string;
  /** Start one vmigrated per host (default true). */
  agents?: boolean;
  portBase?: number;
  /** Leave a failed start in place for debugging instead of tearing it down. */
  keepOnFailure?: boolean;
  /** Number of hosts (a, b, c...). Unset: a running lab is kept whatever its size, a new one has 2. */
  hosts?: number;
}

export interface LabDomainStatus {
  name: string;
  state: string;
  progress?: GuestStatus;
}

export interface LabHostStatus extends LabHostInfo {
  libvirtdRunning: boolean;
  libvirtdAnswers: boolean;
  agentRunning: boolean;
  domains: LabDomainStatus[];
}

export interface LabStatus {
  dir: string;
  up: boolean;
  hosts: LabHostStatus[];
  /** shaped migration uplinks (`lab shape`) */
  shapes: UplinkShape[];
}

export interface LabDownResult {
  dir: string;
  wasUp: boolean;
  /** Processes that would not die (should be empty). */
  survivors: number[];
}

function info(s: LabState, tls: TlsMaterial, alreadyUp?: boolean): LabInfo {
  return {
    dir: s.dir,
    tls,
    qemu: { version: s.qemuVersion ?? 'unknown', root: s.qemuRoot ?? null },
    hosts: s.hosts.map((h) => ({
      name: h.name,
      libvirtUri: h.libvirtUri,
      agentUrl: s.agents ? `wss://127.0.0.1:${h.agentPort}` : null,
      agentSocketUrl: s.agents ? `ws+unix://${agentSocket(hostPlan(s.dir, h.name, s.portBase))}:/` : null,
      metricsUrl: s.agents ? `http://127.0.0.1:${h.metricsPort}/metrics` : null,
      migrationAddress: h.migrationAddress,
      hostUuid: h.hostUuid,
      ...(h.libvirtdPid ? { libvirtdPid: h.libvirtdPid } : {}),
      ...(h.agentPid ? { agentPid: h.agentPid } : {}),
    })),
    ...(alreadyUp !== undefined ? { alreadyUp } : {}),
  };
}

function record(p: HostPlan): HostRecord {
  return {
    name: p.name,
    hostUuid: p.uuid,
    libvirtUri: p.libvirtUri,
    socket: p.socket,
    migrationAddress: p.migrationAddress,
    agentPort: p.agentPort,
    metricsPort: p.metricsPort,
  };
}

async function hostHealthy(h: HostRecord): Promise<boolean> {
  return (await isAlive(h.libvirtdPid)) && (await libvirtAnswers(h.libvirtUri));
}

/** Brings up hosts a, b (c...) and their agents; returns what `lab up --json` prints. */
export async function labUp(opts: LabUpOptions = {}): Promise<LabInfo> {
  requireRoot('lab up');
  const dir = labDir(opts.dir);
  const base = portBase(opts.portBase);
  const agents = opts.agents ?? true;
  const names = opts.hosts === undefined ? undefined : hostNames(opts.hosts);
  if (agents) requireDaemonBuilt();
  await mkdir(dir, { recursive: true });
  return withLabLock(dir, async () => {
    const operator = await labClientTls(dir, 'manager');
    const existing = await readState(dir);
    if (existing) {
      const healthy = (await Promise.all(existing.hosts.map(hostHealthy))).every(Boolean) && (names === undefined || existing.hosts.length === names.length);
      if (healthy) {
        if (agents) {
          existing.agents = true;
          for (const h of existing.hosts) {
            if (!(await isAlive(h.agentPid)) || !(await tcpAccepts(h.agentPort))) {
              await mountStateDir(hostPlan(dir, h.name, existing.portBase));
              h.agentPid = await startAgent(hostPlan(dir, h.name, existing.portBase), dir);
              await writeState(dir, existing);
            }
          }
        }
        return info(existing, operator, true);
      }
    }
    // Partial/crashed lab, or a lost lab.json: stop whatever of this lab still runs, start clean.
    await teardown(dir, existing);

    const plans = (names ?? hostNames()).map((n) => hostPlan(dir, n, base));
    const qemuRoot = resolveQemuRoot();
    const state: LabState = {
      version: 1,
      dir,
      createdAt: new Date().toISOString(),
      portBase: base,
      agents,
      qemuRoot,
      qemuVersion: await qemuVersion(qemuRoot),
      hosts: plans.map(record),
    };
    await writeState(dir, state);
    try {
      // one after the other: the first creates the lab CA (qemu.conf of each host names its directory)
      for (const p of plans) await labMigrationTls(dir, p);
      await Promise.all(
        plans.map(async (p, i) => {
          await prepareHost(p);
          const h = state.hosts[i]!;
          h.libvirtdPid = spawnLibvirtd(p, qemuRoot);
          await writeState(dir, state);
          h.mntNs = await waitLibvirtd(p, h.libvirtdPid);
          await writeState(dir, state);
        }),
      );
      if (agents) {
        for (const [i, p] of plans.entries()) {
          await mountStateDir(p);
          state.hosts[i]!.agentPid = await startAgent(p, dir);
          await writeState(dir, state);
        }
      }
    } catch (e) {
      if (!opts.keepOnFailure) await teardown(dir, state).catch(() => undefined);
      throw e;
    }
    return info(state, operator, false);
  });
}

/** Stops everything recorded for (or recognisably started by) the lab in `dir`. */
async function teardown(dir: string, s: LabState | undefined): Promise<number[]> {
  const base = s?.portBase ?? portBase();
  // No state: every host whose directory exists may have something running.
  const records: HostRecord[] = s?.hosts.length
    ? s.hosts
    : HOST_NAMES.filter((n, i) => i < DEFAULT_HOST_COUNT || existsSync(hostPlan(dir, n, base).dir)).map((n) => record(hostPlan(dir, n, base)));
  const survivors: number[] = [];
  for (const h of records) survivors.push(...(await stopAgent(h.name, h.libvirtUri, h.agentPid)));
  const stopped = await Promise.all(
    records.map((h) =>
      stopHost({ name: h.name, hostDir: hostPlan(dir, h.name, base).dir, libvirtUri: h.libvirtUri, mntNs: h.mntNs }),
    ),
  );
  survivors.push(...stopped.flat());
  survivors.push(...(await terminate((await labQemus(dir)).map((p) => p.pid), 3_000)));
  // faults the lab may have left in place: a shaped uplink, a cut migration network, the agents' stateDir tmpfs
  await dropAllShapes(dir);
  await dropAllCuts(dir);
  const mounts = await unmountAll(dir);
  if (mounts.length) throw new LabError(`could not unmount ${mounts.join(', ')}`);
  await rm(stateFile(dir), { force: true });
  return [...new Set(survivors)];
}

export async function labDown(opts: { dir?: string } = {}): Promise<LabDownResult> {
  requireRoot('lab down');
  const dir = labDir(opts.dir);
  if (!existsSync(dir)) return { dir, wasUp: false, survivors: [] }; // sockets live there: nothing can run
  return withLabLock(dir, async () => {
    const s = await readState(dir);
    const survivors = await teardown(dir, s);
    return { dir, wasUp: !!s, survivors };
  });
}

export async function labStatus(opts: { dir?: string; progress?: boolean } = {}): Promise<LabStatus> {
  const dir = labDir(opts.dir);
  const s = await readState(dir);
  if (!s) return { dir, up: false, hosts: [], shapes: await activeShapes(dir) };
  const base = info(s, labClientTlsPaths(dir, 'manager'));
  const hosts = await Promise.all(
    s.hosts.map(async (h, i): Promise<LabHostStatus> => {
      const libvirtdRunning = await isAlive(h.libvirtdPid);
      const answers = libvirtdRunning && (await libvirtAnswers(h.libvirtUri));
      const domains: LabDomainStatus[] = [];
      if (answers) {
        for (const name of await listDomains(h.libvirtUri).catch(() => [] as string[])) {
          const st = (await virshRaw(h.libvirtUri, ['domstate', name])).stdout.trim() || 'unknown';
          const d: LabDomainStatus = { name, state: st };
          if (st === 'running' && opts.progress !== false) {
            const g = await readGuestStatus(h.libvirtUri, name).catch(() => undefined);
            if (g) d.progress = g;
          }
          domains.push(d);
        }
      }
      return {
        ...base.hosts[i]!,
        libvirtdRunning,
        libvirtdAnswers: answers,
        agentRunning: (await isAlive(h.agentPid)) && (await tcpAccepts(h.agentPort)),
        domains,
      };
    }),
  );
  return { dir, up: hosts.length > 0 && hosts.every((h) => h.libvirtdAnswers && (!s.agents || h.agentRunning)), hosts, shapes: await activeShapes(dir) };
}
