// One agent per state directory: two agents on one stateDir would adopt (or abort) each other's
// migrations. proper-lockfile's lock (an atomic mkdir, kept fresh by mtime updates) plus the
// holder's pid, so that a crashed agent's lock does not make its successor wait out the staleness
// period: systemd restarts it within seconds.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';

/** the lock is stale (its holder hung or died) when not refreshed for this long */
const STALE_MS = 10_000;
const UPDATE_MS = 2_000;

export class StateDirBusyError extends Error {
  constructor(
    readonly dir: string,
    readonly holderPid: number | null,
  ) {
    super(
      `state directory ${dir} is in use by another vmigrated${holderPid !== null ? ` (pid ${holderPid})` : ''}; ` +
        'each agent needs its own stateDir (set --state-dir), or stop the other agent first',
    );
    this.name = 'StateDirBusyError';
  }
}

export interface StateLock {
  release(): Promise<void>;
}

/** What is known of the process named in the lock's owner file. */
export interface Holder {
  pid: number | null;
  /** the process exists */
  alive: boolean;
  /** its command line is a vmigrated's */
  isAgent: boolean;
}

/** Pure: what to do about a lock someone holds. */
export function holderVerdict(h: Holder, selfPid: number): 'busy' | 'crashed' | 'wait-stale' {
  if (h.pid === null) return 'wait-stale'; // between the holder's mkdir and its owner file, or an older agent
  if (h.pid === selfPid || !h.alive) return 'crashed';
  return h.isAgent ? 'busy' : 'wait-stale'; // pid reused by something else: the lock goes stale by itself
}

function readHolder(ownerFile: string): Holder {
  let pid: number | null = null;
  try {
    const n = Number.parseInt(readFileSync(ownerFile, 'utf8').trim(), 10);
    pid = Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return { pid: null, alive: false, isAgent: false };
  }
  if (pid === null) return { pid, alive: false, isAgent: false };
  let alive = true;
  try {
    process.kill(pid, 0);
  } catch (err) {
    alive = (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  let isAgent = false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    isAgent = /vmigrated|daemon\/main\.js/.test(cmdline);
  } catch {
    // gone, or no /proc: unknown
  }
  return { pid, alive, isAgent };
}

const isLocked = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ELOCKED';

/**
 * Takes the state directory's lock or throws StateDirBusyError. `onCompromised` is called if the
 * lock is lost later (its directory removed, or not refreshed for too long).
 */
export async function lockStateDir(dir: string, onCompromised: (err: Error) => void): Promise<StateLock> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lockPath = join(dir, 'agent.lock');
  const ownerFile = join(dir, 'agent.pid');
  const options = { lockfilePath: lockPath, realpath: false, stale: STALE_MS, update: UPDATE_MS, onCompromised };
  const attempt = (retries: number): Promise<() => Promise<void>> =>
    lockfile.lock(dir, { ...options, retries: { retries, minTimeout: 500, maxTimeout: 1000, factor: 1 } });
  let release: () => Promise<void>;
  try {
    release = await attempt(0);
  } catch (err) {
    if (!isLocked(err)) throw err;
    const holder = readHolder(ownerFile);
    const verdict = holderVerdict(holder, process.pid);
    if (verdict === 'busy') throw new StateDirBusyError(dir, holder.pid);
    if (verdict === 'crashed') rmSync(lockPath, { recursive: true, force: true });
    try {
      // a crashed holder's lock is gone now; otherwise it goes stale within STALE_MS
      release = await attempt(Math.ceil(STALE_MS / 500) + 4);
    } catch (again) {
      if (isLocked(again)) throw new StateDirBusyError(dir, readHolder(ownerFile).pid);
      throw again;
    }
  }
  const tmp = `${ownerFile}.${process.pid}.tmp`;
  writeFileSync(tmp, `${process.pid}\n`);
  renameSync(tmp, ownerFile);
  return {
    async release() {
      rmSync(ownerFile, { force: true });
      await release().catch(() => {});
    },
  };
}
