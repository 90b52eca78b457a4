// Starts a real, private systemd-journald for tests: a journal namespace instance (systemd >= 245)
// in its own mount namespace with /run and /var/log bind-mounted from a temp dir, so it neither
// sees nor touches the machine's journal. Its sockets and files are reachable through the temp dir.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stoppable } from './child.js';

const JOURNALD = '/lib/systemd/systemd-journald';
const execFileP = promisify(execFile);

/** One entry as `journalctl -o json` prints it (binary fields come as byte arrays). */
export type JournalRecord = Record<string, string | number[] | undefined>;

export interface Journald {
  /** native protocol socket (what JOURNAL_SOCKET is under systemd) */
  readonly socketPath: string;
  /** stream socket that systemd connects services' stdout to */
  readonly stdoutSocketPath: string;
  readonly namespace: string;
  /** directory with this instance's journal files, for journalctl -D */
  readonly journalDir: string;
  /** journalctl -D <dir> -o json <args> */
  read(args?: string[]): Promise<JournalRecord[]>;
  /** polls read(args) until at least `count` entries match */
  waitFor(args: string[], count: number, timeoutMs?: number): Promise<JournalRecord[]>;
  stop(): Promise<void>;
}

/** Why a private journald cannot run here, or null when it can. */
export function journaldSkipReason(): string | null {
  if (process.platform !== 'linux') return 'journald needs Linux';
  if (process.getuid?.() !== 0) return 'a private journald needs root (mount namespace)';
  if (!existsSync(JOURNALD)) return `${JOURNALD} not installed`;
  if (!existsSync('/usr/bin/unshare') && !existsSync('/bin/unshare')) return 'unshare(1) not installed';
  if (!existsSync('/etc/machine-id')) return '/etc/machine-id missing';
  return null;
}

export async function startJournald(): Promise<Journald> {
  const root = mkdtempSync(join(tmpdir(), 'vmigrate-journald-'));
  const runDir = join(root, 'run');
  const logDir = join(root, 'log');
  mkdirSync(join(runDir, 'systemd'), { recursive: true });
  mkdirSync(join(logDir, 'journal'), { recursive: true }); // exists -> persistent storage in logDir
  const namespace = `vmt${process.pid}x${Math.floor(Math.random() * 1e6)}`;
  const machineId = readFileSync('/etc/machine-id', 'utf8').trim();
  const journalDir = join(logDir, 'journal', `${machineId}.${namespace}`);
  const sockDir = join(runDir, 'systemd', `journal.${namespace}`);

  // mount -n: don't let libmount create /run/mount in the real /run
  const script = 'mount -n --bind "$1" /run && mount -n --bind "$2" /var/log && exec "$3" "$4"';
  const child: ChildProcess = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', runDir, logDir, JOURNALD, namespace],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const proc = stoppable(child, 5000);

  const stop = async (): Promise<void> => {
    await proc.stop();
    rmSync(root, { recursive: true, force: true });
  };

  const socketPath = join(sockDir, 'socket');
  const deadline = Date.now() + 10_000;
  while (!existsSync(socketPath) || !existsSync(journalDir)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`systemd-journald did not start: ${stderr.trim() || 'timeout'}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const read = async (args: string[] = []): Promise<JournalRecord[]> => {
    const { stdout } = await execFileP('journalctl', ['-D', journalDir, '-o', 'json', '--no-pager', ...args], {
      maxBuffer: 64 * 1024 * 1024,
    }).catch((err: { stdout?: string; code?: number }) => {
      // journalctl exits 1 when the filter matched nothing yet
      if (typeof err.stdout === 'string') return { stdout: err.stdout };
      throw err;
    });
    return stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as JournalRecord);
  };

  return {
    socketPath,
    stdoutSocketPath: join(sockDir, 'stdout'),
    namespace,
    journalDir,
    read,
    async waitFor(args, count, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const got = await read(args);
        if (got.length >= count || Date.now() > end) return got;
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop,
  };
}

export interface UnitCgroup {
  /** cgroup.procs files a process writes its pid to, to count as the unit */
  readonly procsFiles: string[];
  /** removes the cgroups (their processes must have exited) */
  remove(): void;
}

/**
 * journald derives _SYSTEMD_UNIT (what `journalctl -u` matches) from the sender's cgroup. This makes
 * `<unique>.slice/<unit>` cgroups so a child process can pose as the unit without systemd as PID 1.
 * Returns null when the cgroup tree is not writable.
 */
export function createUnitCgroup(unit: string): UnitCgroup | null {
  const hierarchies = existsSync('/sys/fs/cgroup/cgroup.procs')
    ? ['/sys/fs/cgroup']
    : ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd'].filter((d) => existsSync(join(d, 'cgroup.procs')));
  if (hierarchies.length === 0) return null;
  const slice = `vmigrate-test-${process.pid}.slice`;
  const made: string[] = [];
  try {
    for (const h of hierarchies) {
      mkdirSync(join(h, slice, unit), { recursive: true });
      made.push(join(h, slice));
    }
  } catch {
    removeCgroups(made, unit);
    return null;
  }
  return {
    procsFiles: hierarchies.map((h) => join(h, slice, unit, 'cgroup.procs')),
    remove: () => removeCgroups(made, unit),
  };
}

// cgroup dirs go with rmdir, leaf first (their control files cannot be unlinked)
function removeCgroups(slices: string[], unit: string): void {
  for (const d of slices) {
    for (const dir of [join(d, unit), d]) {
      try {
        rmdirSync(dir);
      } catch {
        /* gone already, or still busy: leave it rather than fail the test */
      }
    }
  }
}
