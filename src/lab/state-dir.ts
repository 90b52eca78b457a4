// Each lab agent keeps its stateDir (its ledger of running migrations) on a small tmpfs of its own,
// as /run/vmigrate is on a real host. That makes "the stateDir is full" a real ENOSPC the suite can
// cause and undo (a filler file) without touching the files or locks the agent holds.
import { open, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError, requireRoot } from './errors.js';
import { run } from './exec.js';
import { hostPlan, labDir, portBase, type HostName, type HostPlan } from './paths.js';

export const STATE_DIR_SIZE = '4m';
const FILLER = '.lab-filler';

export const agentStateDir = (p: HostPlan): string => join(p.dir, 'agent-state');

/** Mount points (root namespace) at or under `dir`, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  // field 5 is the mount point, with space, tab, newline and backslash escaped as octal
  const points = info.split('\n').map((l) => l.split(' ')[4]).filter((p): p is string => !!p)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  return [...new Set(points.filter((p) => p === dir || p.startsWith(dir + '/')))].sort((x, y) => y.length - x.length);
}

/** Puts the agent's stateDir on its own tmpfs, unless it already is. */
export async function mountStateDir(p: HostPlan): Promise<void> {
  const path = agentStateDir(p);
  await mkdir(path, { recursive: true, mode: 0o700 });
  if ((await mountsUnder(path)).includes(path)) return;
  const r = await run('mount', ['-t', 'tmpfs', '-o', `size=${STATE_DIR_SIZE},mode=0700`, 'vmigrate-lab-state', path]);
  if (r.code !== 0) throw new LabError(`cannot mount a tmpfs on ${path}: ${r.stderr.trim()}`);
}

/** Unmounts everything mounted under the lab dir (lazily: a process may still hold a file open). */
export async function unmountAll(dir: string): Promise<string[]> {
  const left: string[] = [];
  for (const m of await mountsUnder(dir)) {
    if ((await run('umount', ['-l', m])).code !== 0) left.push(m);
  }
  return left;
}

function statePath(host: HostName, o: { dir?: string }): string {
  const dir = labDir(o.dir);
  return agentStateDir(hostPlan(dir, host, portBase()));
}

/** Fills the host agent's stateDir until writes fail with ENOSPC. Idempotent. Returns bytes added. */
export async function fillStateDir(host: HostName, o: { dir?: string } = {}): Promise<number> {
  requireRoot('lab statedir');
  const path = statePath(host, o);
  if (!(await mountsUnder(path)).includes(path)) throw new LabError(`${path} is not the lab's tmpfs (is the lab up?)`);
  const fh = await open(join(path, FILLER), 'a');
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let written = 0;
  try {
    for (;;) {
      try {
        const { bytesWritten } = await fh.write(chunk);
        written += bytesWritten;
        if (bytesWritten === 0) break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw e;
      }
    }
    // the last partial block: byte by byte is cheap at this point
    for (;;) {
      try {
        const { bytesWritten } = await fh.write(Buffer.alloc(1, 0x5a));
        if (bytesWritten === 0) break;
        written += bytesWritten;
      } catch {
        break;
      }
    }
  } finally {
    await fh.close();
  }
  return written;
}

/** Frees the space fillStateDir took. Idempotent. */
export async function freeStateDir(host: HostName, o: { dir?: string } = {}): Promise<void> {
  await rm(join(statePath(host, o), FILLER), { force: true });
}

/** Is the host agent's stateDir filled by fillStateDir? */
export async function stateDirFilled(host: HostName, o: { dir?: string } = {}): Promise<boolean> {
  return stat(join(statePath(host, o), FILLER)).then(() => true, () => false);
}
