// Brings up a lab with agents for an e2e file and points the raw client at its operator certificate.
import assert from 'node:assert/strict';
import { destroyGuest, labUp, type LabHostInfo, type LabInfo, type LabUpOptions } from '../../src/lab/index.js';
import { call, useClientTls, waitFor } from './raw-rpc.js';

export interface TwoHosts {
  lab: LabInfo;
  A: LabHostInfo;
  B: LabHostInfo;
}

export async function twoHosts(opts: Omit<LabUpOptions, 'agents'> = {}): Promise<TwoHosts> {
  const lab = await labUp({ ...opts, agents: true });
  useClientTls(lab.tls);
  const [A, B] = lab.hosts;
  assert.ok(A?.agentUrl && B?.agentUrl, 'lab hosts a and b with agents');
  return { lab, A, B };
}

/** Migrates a running guest A -> B through the agents, expects it completed, and removes it from B. */
export async function migrateCompletes(A: LabHostInfo, B: LabHostInfo, vm: string): Promise<void> {
  await call(A.agentUrl!, 'VM.migrate', { vmId: vm, dst: B.agentUrl! });
  const done = await waitFor(
    () => call<{ state: string; error: unknown }>(A.agentUrl!, 'VM.migrateStatus', { vmId: vm }),
    (s) => !['queued', 'pending', 'running'].includes(s.state),
    120_000,
  );
  assert.equal(done.state, 'completed', JSON.stringify(done.error));
  await destroyGuest(B.libvirtUri, vm);
}

/** A VM as `VM.list` returns it. */
export interface ListedVm {
  name: string;
  state: string;
}

/** The agent URL of a lab host started with agents. */
export const agentUrl = (h: LabHostInfo): string => h.agentUrl ?? assert.fail(`lab host ${h.name} has no agent`);

export async function vmsOn(h: LabHostInfo): Promise<ListedVm[]> {
  return call<ListedVm[]>(agentUrl(h), 'VM.list');
}

/** The host's agent lists the VM as running. */
export async function runningOn(h: LabHostInfo, name: string): Promise<boolean> {
  return (await vmsOn(h)).some((v) => v.name === name && v.state === 'running');
}
