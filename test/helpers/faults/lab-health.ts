// Puts the lab back to a clean state between cases, whatever the last case left: the link restored,
// the stateDirs freed, extra agents stopped, dead daemons started again, every guest gone.
import {
  destroyGuest, freeStateDir, labProcesses, listDomains, restartAgent, restartLibvirtd, restoreNetwork,
} from '../../../src/lab/index.js';
import { hostPlan } from '../../../src/lab/paths.js';
import { terminate } from '../../../src/lab/procs.js';
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
  for (const h of after.hosts) {
    const uri = hostPlan(dir, h.name, portBase).libvirtUri;
    for (const d of await listDomains(uri).catch(() => [] as string[])) {
      await virshRawFacts(uri, ['domjobabort', d], 10_000);
      await destroyGuest(uri, d);
      done.push(`destroyed ${d} on ${h.name}`);
    }
  }
  return done;
}
