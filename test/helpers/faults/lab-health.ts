// Puts the lab back to a clean state between cases, whatever the last case left: the link restored,
// the stateDirs freed, extra agents stopped, dead daemons started again, every guest gone.
import {
  destroyGuest, freeStateDir, labProcesses, listDomains, restartAgent, restartLibvirtd, restoreNetwork,
} from '../../../src/lab/index.js';
import { hostPlan } from '../../../src/lab/paths.js';
import { terminate } from '../../../src/lab/procs.js';
import { isEnded, readStatus } from './agent-status.js';
import { virshRawFacts } from '../virsh-facts.js';

export async function healLab(dir: string, portBase: number): Promise<string[]> {
  const done: string[] = [];
  await restoreNetwork('a', 'b', { dir, portBase });
  for (const h of ['a', 'b'] as const) await freeStateDir(h, { dir });
  const procs = await labProcesses({ dir });
  for (const h of procs.hosts) {
    if (h.otherAgents.length) {
      await terminate(h.otherAgents, 5_000);
      done.push(`stopped extra agents ${h.otherAgents.join(' ')} on ${h.name}`);
    }
    if (!h.libvirtd.answers) {
      await restartLibvirtd(h.name, { dir });
      done.push(`restarted libvirtd ${h.name}`);
    }
    if (!h.agent.accepts) {
      await restartAgent(h.name, { dir });
      done.push(`restarted agent ${h.name}`);
    }
  }
  const after = await labProcesses({ dir });
  const destroyed = new Set<string>();
  for (const h of after.hosts) {
    const uri = hostPlan(dir, h.name, portBase).libvirtUri;
    for (const d of await listDomains(uri).catch(() => [] as string[])) {
      await virshRawFacts(uri, ['domjobabort', d], 10_000);
      await destroyGuest(uri, d);
      destroyed.add(d);
      done.push(`destroyed ${d} on ${h.name}`);
    }
  }
  // a migration an agent still calls active once its guest is gone holds a slot for ever (e.g. a
  // request left `pending` by a failed write): only a new agent process frees it
  for (const h of after.hosts) {
    const url = `wss://127.0.0.1:${hostPlan(dir, h.name, portBase).agentPort}`;
    const stuck: string[] = [];
    for (const vm of destroyed) {
      let r = await readStatus(url, vm, 5_000);
      for (let i = 0; r.ok && !isEnded(r.status.state) && i < 10; i++) {
        await new Promise((res) => setTimeout(res, 500));
        r = await readStatus(url, vm, 5_000);
      }
      if (r.ok && !isEnded(r.status.state)) stuck.push(`${vm} (${r.status.state})`);
    }
    if (stuck.length) {
      await restartAgent(h.name, { dir });
      done.push(`restarted agent ${h.name}: it still had ${stuck.join(', ')} active with the guest gone`);
    }
  }
  return done;
}

