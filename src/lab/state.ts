import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { LabError } from './errors.js';
import { isAlive } from './procs.js';
import { HOST_NAMES, stateFile } from './paths.js';

const HostRecord = z.object({
  name: z.enum(HOST_NAMES),
  hostUuid: z.string(),
  libvirtUri: z.string(),
  socket: z.string(),
  migrationAddress: z.string(),
  agentPort: z.number().int(),
  metricsPort: z.number().int(),
  libvirtdPid: z.number().int().optional(),
  mntNs: z.string().optional(),
  agentPid: z.number().int().optional(),
});
export type HostRecord = z.infer<typeof HostRecord>;

const LabState = z.object({
  version: z.literal(1),
  dir: z.string(),
  createdAt: z.string(),
  portBase: z.number().int(),
  agents: z.boolean(),
  /** the QEMU tree bind-mounted over the system's (qemu-engine.ts); null or absent: the system's */
  qemuRoot: z.string().nullable().optional(),
  qemuVersion: z.string().optional(),
  hosts: z.array(HostRecord),
});
export type LabState = z.infer<typeof LabState>;

export async function readState(dir: string): Promise<LabState | undefined> {
  let raw: string;
  try {
    raw = await readFile(stateFile(dir), 'utf8');
  } catch {
    return undefined;
  }
  const parsed = LabState.safeParse(JSON.parse(raw));
  if (!parsed.success) throw new LabError(`${stateFile(dir)} is not a vmigrate lab state: ${parsed.error.message}`);
  return parsed.data;
}

/** Written after every step of `up`, so `down` can undo a partial start. */
let writes = 0;
export async function writeState(dir: string, s: LabState): Promise<void> {
  // Unique temp name: both hosts' start steps write concurrently; each snapshot is complete.
  const tmp = `${stateFile(dir)}.${process.pid}.${writes++}.tmp`;
  await writeFile(tmp, JSON.stringify(s, null, 2) + '\n');
  await rename(tmp, stateFile(dir));
}

/** Exclusive lock on the lab dir for up/down; a lock held by a dead process is taken over. */
export async function withLabLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const path = join(dir, 'lab.lock');
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw e;
      const holder = Number(readFileSync(path, 'utf8').trim());
      if (await isAlive(holder)) throw new LabError(`lab ${dir} is busy (pid ${holder} holds ${path})`);
      unlinkSync(path);
    }
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(path);
    } catch {
      /* removed with the dir */
    }
  }
}
