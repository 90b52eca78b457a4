import { spawn } from 'node:child_process';
import { openSync, closeSync, appendFileSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, writeFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { libvirtdConf, qemuConf, withLibvirtGroups, withLibvirtQemuUser } from './config.js';
import { tailFile, waitFor } from './exec.js';
import type { HostPlan } from './paths.js';
import { QEMU_BIND_TARGETS } from './qemu-engine.js';
import { isAlive, listProcs, procInfo, terminate } from './procs.js';
import { libvirtAnswers, listDomains, virshRaw } from './virsh.js';

/** Per-host trees bind-mounted over /etc/libvirt, /run and /var inside the namespace. */
function hostPaths(p: HostPlan) {
  return {
    etc: join(p.dir, 'etc', 'libvirt'),
    passwd: join(p.dir, 'etc', 'passwd'),
    group: join(p.dir, 'etc', 'group'),
    run: join(p.dir, 'run'),
    var: join(p.dir, 'var'),
    conf: join(p.dir, 'etc', 'libvirt', 'libvirtd.conf'),
  };
}

async function ensureSymlink(target: string, path: string): Promise<void> {
  try {
    await lstat(path);
  } catch {
    await symlink(target, path);
  }
}

export async function prepareHost(p: HostPlan): Promise<void> {
  const h = hostPaths(p);
  await rm(h.run, { recursive: true, force: true }); // stale sockets / pid files from a crash
  for (const d of [h.etc, join(h.run, 'lock'), join(h.run, 'libvirt'), join(h.var, 'lib', 'libvirt'), join(h.var, 'cache', 'libvirt'), join(h.var, 'log', 'libvirt', 'qemu'), join(h.var, 'tmp')]) {
    await mkdir(d, { recursive: true });
  }
  // /var/run and /var/lock are symlinks into /run on Debian; keep them working under the per-host /var.
  await ensureSymlink('/run', join(h.var, 'run'));
  await ensureSymlink('/run/lock', join(h.var, 'lock'));
  await writeFile(h.conf, libvirtdConf(p));
  await writeFile(join(h.etc, 'qemu.conf'), qemuConf(p));
  for (const f of ['libvirt.conf', 'libvirt-admin.conf']) {
    await writeFile(join(h.etc, f), await readFile(join('/etc/libvirt', f), 'utf8').catch(() => ''));
  }
  await writeFile(h.passwd, withLibvirtQemuUser(await readFile('/etc/passwd', 'utf8')));
  await writeFile(h.group, withLibvirtGroups(await readFile('/etc/group', 'utf8')));
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Starts libvirtd in a private mount namespace; the returned pid is libvirtd itself
 * (unshare and sh both exec). */
export function spawnLibvirtd(p: HostPlan, qemuRoot: string | null): number {
  const h = hostPaths(p);
  // mount -n: do not touch /run/mount (utab) of the real /run.
  const script = [
    'set -e',
    `mount -n --bind ${sq(h.passwd)} /etc/passwd`,
    `mount -n --bind ${sq(h.group)} /etc/group`,
    `mount -n --bind ${sq(h.etc)} /etc/libvirt`,
    `mount -n --bind ${sq(h.run)} /run`,
    `mount -n --bind ${sq(h.var)} /var`,
    // the lab's QEMU (qemu-engine.ts) over the system's, for this libvirtd and the QEMUs it starts
    ...(qemuRoot === null ? [] : QEMU_BIND_TARGETS.map((t) => `mount -n --bind ${sq(join(qemuRoot, t))} ${t}`)),
    `exec /usr/sbin/libvirtd --config ${sq(h.conf)}`,
  ].join('\n');
  appendFileSync(p.libvirtdLog, `--- vmigrate lab: starting libvirtd for host ${p.name} at ${new Date().toISOString()}\n`);
  const fd = openSync(p.libvirtdLog, 'a');
  try {
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
      detached: true, // own session: survives the CLI
      stdio: ['ignore', fd, fd],
    });
    child.unref();
    if (!child.pid) throw new Error('failed to spawn unshare');
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** Waits until libvirtd answers on its socket; fails early if it died. Returns its mount ns. */
export async function waitLibvirtd(p: HostPlan, pid: number, timeoutMs = 90_000): Promise<string> {
  await waitFor(`libvirtd of host ${p.name}`, timeoutMs, async () => {
    if (!(await isAlive(pid))) {
      throw new Error(`libvirtd of host ${p.name} exited during start; ${p.libvirtdLog}:\n${await tailFile(p.libvirtdLog)}`);
    }
    return (await libvirtAnswers(p.libvirtUri)) ? true : undefined;
  }, 300);
  const info = await procInfo(pid);
  if (!info || info.exe !== 'libvirtd') throw new Error(`pid ${pid} is not libvirtd (${info?.exe ?? 'gone'})`);
  return info.mntNs;
}

export interface StopHostOptions {
  name: string;
  hostDir: string;
  libvirtUri: string;
  mntNs?: string | undefined;
}

/** Destroys domains, TERMs this host's libvirtd (found by its command line), then kills anything left in its mount namespace (QEMU shares it:
 * qemu.conf namespaces = [ ]). Returns pids that survived. */
export async function stopHost(o: StopHostOptions): Promise<number[]> {
  const marker = o.hostDir + '/';
  if (await libvirtAnswers(o.libvirtUri, 3_000)) {
    const doms = await listDomains(o.libvirtUri, false).catch(() => [] as string[]);
    await Promise.all(doms.map((d) => virshRaw(o.libvirtUri, ['destroy', d], 15_000)));
  }
  const procs = await listProcs();
  // The command line names this host's dir (--config <hostDir>/etc/...): safe against pid reuse.
  const daemons = procs.filter((p) => p.exe === 'libvirtd' && p.cmdline.some((a) => a.startsWith(marker)));
  const namespaces = new Set(daemons.map((d) => d.mntNs).filter(Boolean));
  // The recorded namespace (libvirtd already dead, QEMU orphaned) counts only if no foreign
  // libvirtd lives in it: a freed namespace inode can be reused.
  if (o.mntNs && !procs.some((p) => p.mntNs === o.mntNs && p.exe === 'libvirtd' && !p.cmdline.some((a) => a.startsWith(marker)))) {
    namespaces.add(o.mntNs);
  }
  const hostNs = await procInfo(process.pid).then((i) => i?.mntNs);
  if (hostNs) namespaces.delete(hostNs); // never the root namespace
  await terminate(daemons.map((d) => d.pid), 4_000);

  const left = (await listProcs()).filter((p) => namespaces.has(p.mntNs));
  const survivors = await terminate(left.map((p) => p.pid), 3_000);
  await rm(join(o.hostDir, 'run'), { recursive: true, force: true });
  await rm(join(o.hostDir, 'var', 'lib'), { recursive: true, force: true });
  await rm(join(o.hostDir, 'etc'), { recursive: true, force: true });
  return survivors;
}
