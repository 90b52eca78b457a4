import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabError } from './errors.js';
import { migrationTlsDir } from './lab-pki.js';

/** Every name a lab host may have; a lab of N hosts uses the first N. */
export const HOST_NAMES = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'] as const;
export type HostName = (typeof HOST_NAMES)[number];
/** Two hosts unless `lab up --hosts N` asks for more. */
export const DEFAULT_HOST_COUNT = 2;
export const MAX_HOST_COUNT = HOST_NAMES.length;

/** The names of a lab of `count` hosts: a, b, c... */
export function hostNames(count: number = DEFAULT_HOST_COUNT): HostName[] {
  if (!Number.isInteger(count) || count < 1 || count > MAX_HOST_COUNT) {
    throw new LabError(`a lab has 1 to ${MAX_HOST_COUNT} hosts, not ${count}`);
  }
  return HOST_NAMES.slice(0, count);
}

export const DEFAULT_LAB_DIR = '/tmp/vmigrate-lab';
export const DEFAULT_PORT_BASE = 17100;

/** Lab state dir. Must be visible from both hosts' namespaces, which overmount /run, /var, /etc. */
export function labDir(override?: string): string {
  const dir = resolve(override ?? process.env.VMIGRATE_LAB_DIR ?? DEFAULT_LAB_DIR);
  for (const hidden of ['/run', '/var', '/etc']) {
    if (dir === hidden || dir.startsWith(hidden + '/')) {
      throw new LabError(`lab dir ${dir} is under ${hidden}, which each host's namespace replaces; use e.g. /tmp/vmigrate-lab`);
    }
  }
  if (dir === '/') throw new LabError('lab dir must not be /');
  return dir;
}

/** Agent port = base+1.., metrics = base+101.. (a=17101/17201, b=17102/17202, c=17103/17203 by default);
 * migration ports base+500+32i.. (8 hosts use base+500..base+755). */
export function portBase(override?: number): number {
  const raw = override ?? (process.env.VMIGRATE_LAB_PORT_BASE ? Number(process.env.VMIGRATE_LAB_PORT_BASE) : DEFAULT_PORT_BASE);
  if (!Number.isInteger(raw) || raw < 1024 || raw > 65_000) throw new LabError(`bad VMIGRATE_LAB_PORT_BASE: ${raw}`);
  return raw;
}

/** Package root (the dir holding package.json), found from this compiled file's location. */
export function pkgRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(d, 'package.json'))) return d;
    const up = dirname(d);
    if (up === d) throw new Error('package root not found');
    d = up;
  }
}

export function daemonMain(): string {
  return join(pkgRoot(), 'dist', 'src', 'daemon', 'main.js');
}

export interface HostPlan {
  name: HostName;
  dir: string; // <lab>/<name>
  socket: string;
  libvirtUri: string;
  uuid: string;
  agentPort: number;
  metricsPort: number;
  migrationAddress: string;
  migrationPortMin: number;
  migrationPortMax: number;
  /** qemu.conf migrate_tls_x509_cert_dir (written by labMigrationTls) */
  migrationTlsDir: string;
  libvirtdLog: string;
  agentLog: string;
}

export function libvirtUriFor(socket: string): string {
  return `qemu+unix:///system?socket=${socket}`;
}

/** Stable per (lab dir, host) so restarts keep the same identity; distinct so libvirt
 * does not refuse a migration "to the same host". */
export function hostUuidFor(dir: string, name: string): string {
  const h = createHash('sha256').update(`vmigrate-lab:${dir}:${name}`).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function hostPlan(dir: string, name: HostName, base: number): HostPlan {
  const i = HOST_NAMES.indexOf(name);
  const hdir = join(dir, name);
  const socket = join(hdir, 'run', 'libvirt', 'libvirt-sock');
  return {
    name,
    dir: hdir,
    socket,
    libvirtUri: libvirtUriFor(socket),
    uuid: hostUuidFor(dir, name),
    agentPort: base + 1 + i,
    metricsPort: base + 101 + i,
    // 127.0.0.1 is refused by libvirt as "the local machine"; other 127/8 addresses route via lo.
    migrationAddress: `127.0.0.${10 + i}`,
    // Derived from the port base so that labs with different bases never compete for ports.
    migrationPortMin: base + 500 + i * 32,
    migrationPortMax: base + 500 + i * 32 + 31,
    migrationTlsDir: migrationTlsDir(dir, name),
    libvirtdLog: join(hdir, 'libvirtd.log'),
    agentLog: join(hdir, 'agent.log'),
  };
}

export const guestDir = (dir: string) => join(dir, 'guest');
export const stateFile = (dir: string) => join(dir, 'lab.json');
