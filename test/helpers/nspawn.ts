// A throwaway machine with systemd as its real PID 1, for testing vmigrated.service the way a host
// runs it: a minimal tree of the host's own Debian release (debootstrap, cached), booted read-only
// under `systemd-nspawn --boot --volatile=overlay` (writes land in a tmpfs and vanish with the
// machine), with the checkout and the Node binary bind-mounted read-only. Commands run inside
// through nsenter(1): the host needs no systemd, D-Bus or machined of its own.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './raw-rpc.js';

/** Bump to rebuild every cached tree (e.g. after changing what goes into it). */
const TREE_VERSION = 1;
/** On top of debootstrap's minbase: PID 1, and libvirt's client library for the native addon. */
export const TREE_PACKAGES = ['systemd', 'libvirt0'];
export const CACHE_DIR = process.env.VMIGRATE_NSPAWN_CACHE ?? '/var/tmp/vmigrate-nspawn';
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** where the checkout and Node appear inside the machine */
export const SRC_IN_MACHINE = '/mnt/vmigrate-src';
export const NODE_IN_MACHINE = '/usr/bin/node';

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Why the machine cannot run here (the test then skips), or null when it can. */
export function nspawnSkipReason(): string | null {
  if (process.platform !== 'linux') return 'systemd-nspawn needs Linux';
  if (process.getuid?.() !== 0) return 'booting a machine with systemd-nspawn needs root';
  for (const [cmd, pkg] of [['systemd-nspawn', 'systemd-container'], ['debootstrap', 'debootstrap'], ['nsenter', 'util-linux']] as const) {
    if (!have(cmd)) return `${cmd} not installed (Debian package ${pkg})`;
  }
  if (!existsSync(join(REPO, 'dist/src/daemon/main.js')) || !existsSync(join(REPO, 'node_modules'))) return 'checkout not built (npm ci && npm run build)';
  return null;
}

export interface AptSource {
  uri: string;
  suite: string;
  keyring?: string;
}

/**
 * The host's main Debian archive and release, read from its apt sources (deb822 first, then the
 * one-line format), so the tree matches the release the native addon was built on.
 */
export function hostAptSource(): AptSource {
  const codename = /^VERSION_CODENAME=(.*)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1]?.replace(/"/g, '');
  const found: AptSource[] = [];
  const dir = '/etc/apt/sources.list.d';
  const deb822 = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.sources')).sort() : [];
  for (const f of deb822) {
    for (const stanza of readFileSync(join(dir, f), 'utf8').split(/\n\s*\n/)) {
      const field = (k: string): string[] =>
        (new RegExp(`^${k}:[ \\t]*(.*)$`, 'mi').exec(stanza.split('\n').filter((l) => !l.startsWith('#')).join('\n'))?.[1] ?? '').split(/\s+/).filter(Boolean);
      if (!field('Types').includes('deb') || /^no$/i.test(field('Enabled')[0] ?? '')) continue;
      const uri = field('URIs')[0];
      const keyring = field('Signed-By')[0];
      for (const suite of field('Suites')) if (uri) found.push({ uri, suite, ...(keyring?.startsWith('/') ? { keyring } : {}) });
    }
  }
  const list = '/etc/apt/sources.list';
  if (existsSync(list)) {
    for (const line of readFileSync(list, 'utf8').split('\n')) {
      const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
      if (m?.[1] && m[2]) found.push({ uri: m[1], suite: m[2] });
    }
  }
  const main = found.find((s) => s.suite === codename) ?? found.find((s) => !s.suite.includes('-') && !s.suite.includes('/'));
  if (!main) throw new Error(`no apt source for the host's release (${codename ?? 'unknown'}) in ${dir}/*.sources or ${list}`);
  return main;
}

export interface Tree {
  dir: string;
  /** true when this call ran debootstrap */
  built: boolean;
  ms: number;
}

/**
 * The cached minimal tree under CACHE_DIR, built on first use (debootstrap --variant=minbase) into a
 * temporary directory and renamed into place when complete, so an interrupted build is never used.
 * Trees of other versions are removed.
 */
export function ensureTree(log: (msg: string) => void = () => {}): Tree {
  const t0 = Date.now();
  const src = hostAptSource();
  const key = createHash('sha256').update(JSON.stringify([TREE_VERSION, src.suite, TREE_PACKAGES])).digest('hex').slice(0, 12);
  const name = `${src.suite}-${key}`;
  const dir = join(CACHE_DIR, name);
  const marker = join(dir, '.vmigrate-tree');
  if (existsSync(marker)) return { dir, built: false, ms: Date.now() - t0 };

  mkdirSync(CACHE_DIR, { recursive: true });
  // drop other versions and abandoned partial builds; leave a build still running in another process
  for (const entry of readdirSync(CACHE_DIR)) {
    const builder = /\.partial-(\d+)$/.exec(entry)?.[1];
    if (entry === name || (builder && entry.startsWith(`${name}.`) && pidAlive(Number(builder)))) continue;
    rmSync(join(CACHE_DIR, entry), { recursive: true, force: true });
  }
  const partial = `${dir}.partial-${process.pid}`;
  log(`building ${dir}: debootstrap --variant=minbase ${src.suite} + ${TREE_PACKAGES.join(', ')}`);
  const r = spawnSync(
    'debootstrap',
    ['--variant=minbase', `--include=${TREE_PACKAGES.join(',')}`, ...(src.keyring ? [`--keyring=${src.keyring}`] : []), src.suite, partial, src.uri],
    { encoding: 'utf8', timeout: 15 * 60_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } },
  );
  if (r.status !== 0) {
    rmSync(partial, { recursive: true, force: true });
    throw new Error(`debootstrap failed (${r.error?.message ?? `exit ${r.status}`}):\n${(r.stdout + r.stderr).slice(-3000)}`);
  }
  // empty: each boot gets its own machine id (from the random UUID nspawn hands it), none frozen in the cache
  writeFileSync(join(partial, 'etc/machine-id'), '');
  rmSync(join(partial, 'var/cache/apt/archives'), { recursive: true, force: true });
  mkdirSync(join(partial, 'var/cache/apt/archives/partial'), { recursive: true });
  writeFileSync(join(partial, '.vmigrate-tree'), `${JSON.stringify({ version: TREE_VERSION, ...src, packages: TREE_PACKAGES, built: new Date().toISOString() })}\n`);
  try {
    renameSync(partial, dir);
  } catch (err) {
    rmSync(partial, { recursive: true, force: true }); // a concurrent run finished first
    if (!existsSync(marker)) throw err;
  }
  return { dir, built: true, ms: Date.now() - t0 };
}

export interface Machine {
  readonly name: string;
  /** PID of the machine's init (systemd) as the host sees it */
  readonly initPid: number;
  /** run a command in all of the machine's namespaces, with a clean environment */
  run(args: string[], opts?: { input?: string; timeoutMs?: number }): SpawnSyncReturns<string>;
  /** run() and throw unless it exits 0; returns stdout */
  sh(script: string): string;
  /** run a command in the machine's network namespace only (host files, machine's loopback) */
  runInNet(args: string[], timeoutMs?: number): SpawnSyncReturns<string>;
  /** `systemctl show -p ...` as a record */
  show(unit: string, props: string[]): Record<string, string>;
  /** what nspawn printed (console), for failure messages */
  console(): string;
  /** power off (SIGTERM to nspawn), SIGKILL after graceMs; removes every trace on the host */
  stop(graceMs?: number): Promise<void>;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Boots `tree` with systemd as PID 1 (default target basic.target: nothing but journald runs) and
 * waits until the boot finished. Always pair with stop() in a finally/after hook.
 */
export async function bootMachine(tree: string, opts: { bootTimeoutMs?: number } = {}): Promise<Machine> {
  const name = `vmigrate-e2e-${process.pid}`;
  const work = mkdtempSync(join(tmpdir(), 'vmigrate-nspawn-'));
  const consoleFile = join(work, 'console.log');
  const fd = openSync(consoleFile, 'w');
  // --register=no/--keep-unit: no machined/D-Bus needed, and nothing registered to clean up.
  // Without systemd on the host, --keep-unit also keeps nspawn from asking for a scope over D-Bus.
  const hostSystemd = existsSync('/run/systemd/system');
  const args = [
    `--directory=${tree}`,
    '--volatile=overlay',
    `--machine=${name}`,
    '--register=no',
    ...(hostSystemd ? [] : ['--keep-unit']),
    '--private-network',
    '--link-journal=no',
    '--console=read-only',
    `--bind-ro=${REPO.replace(/\/$/, '')}:${SRC_IN_MACHINE}`,
    `--bind-ro=${process.execPath}:${NODE_IN_MACHINE}`,
    '--boot',
    '--',
    'systemd.unit=basic.target',
  ];
  // setpriv: should this process die without stop(), nspawn gets SIGTERM and powers the machine off
  const cmd = have('setpriv') ? ['setpriv', '--pdeathsig', 'SIGTERM', '--', 'systemd-nspawn', ...args] : ['systemd-nspawn', ...args];
  const nspawn: ChildProcess = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let exited = false;
  const exitP = new Promise<void>((resolve) => nspawn.once('exit', () => ((exited = true), resolve())));
  const consoleText = (): string => {
    try {
      return readFileSync(consoleFile, 'utf8');
    } catch {
      return '';
    }
  };

  /** resolves when nspawn exited or after ms, leaving no timer behind */
  const exitedWithin = async (ms: number): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exitP, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  };

  let initPid = 0;
  const stop = async (graceMs = 20_000): Promise<void> => {
    if (!exited && nspawn.pid) {
      nspawn.kill('SIGTERM'); // nspawn asks the machine's systemd to power off
      await exitedWithin(graceMs);
      if (!exited) {
        if (initPid) {
          try {
            process.kill(initPid, 'SIGKILL'); // PID 1 of the namespace: takes everything inside along
          } catch {
            /* gone */
          }
        }
        nspawn.kill('SIGKILL');
        await exitedWithin(5000);
      }
    }
    rmSync(`/run/systemd/nspawn/propagate/${name}`, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  };

  const run: Machine['run'] = (cmd, o = {}) =>
    spawnSync('nsenter', [`--target=${initPid}`, '--all', '--', 'env', '-i', `PATH=${PATH}`, 'LANG=C.UTF-8', 'SYSTEMD_PAGER=', 'SYSTEMD_COLORS=0', ...cmd], {
      encoding: 'utf8',
      timeout: o.timeoutMs ?? 60_000,
      ...(o.input !== undefined ? { input: o.input } : {}),
    });
  const sh = (script: string): string => {
    const r = run(['sh', '-ec', script]);
    if (r.status !== 0) throw new Error(`in ${name}: ${script}\nexit ${r.status ?? r.error?.message}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  try {
    const deadline = Date.now() + (opts.bootTimeoutMs ?? 60_000);
    while (!initPid) {
      if (exited) throw new Error(`systemd-nspawn exited during boot:\n${consoleText().slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`no init process under systemd-nspawn:\n${consoleText().slice(-3000)}`);
      const child = childrenOf(nspawn.pid ?? 0)[0];
      if (child && readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'systemd') initPid = child;
      else await sleep(50);
    }
    let state = '';
    while (!['running', 'degraded'].includes(state)) {
      if (exited) throw new Error(`machine ${name} died during boot:\n${consoleText().slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`machine ${name} did not finish booting (state "${state}"):\n${consoleText().slice(-3000)}`);
      await sleep(100);
      state = run(['systemctl', 'is-system-running'], { timeoutMs: 5000 }).stdout.trim();
    }
  } catch (err) {
    await stop(5000);
    throw err;
  }

  return {
    name,
    initPid,
    run,
    sh,
    runInNet: (cmd, timeoutMs = 30_000) => spawnSync('nsenter', [`--target=${initPid}`, '--net', '--', ...cmd], { encoding: 'utf8', timeout: timeoutMs }),
    show(unit, props) {
      const out = sh(`systemctl show ${unit} ${props.map((p) => `-p ${p}`).join(' ')}`);
      const rec: Record<string, string> = {};
      for (const line of out.split('\n')) {
        const i = line.indexOf('=');
        if (i > 0) rec[line.slice(0, i)] = line.slice(i + 1);
      }
      return rec;
    },
    console: consoleText,
    stop,
  };
}
