import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from './errors.js';
import { ensureGuestKernel } from './guest-build.js';
import { PROGRESS_ADDR } from './guest-progress.js';
import { guestCmdline, guestXml } from './guest-xml.js';
import { defineLinuxGuest, type DefineLinuxGuestOptions, type LinuxGuestInfo } from './linux-guest.js';
import { guestDir, HOST_NAMES, hostPlan, labDir, portBase, type HostName } from './paths.js';
import { virsh } from './virsh.js';

export interface DefineGuestOptions {
  /** Lab host to start it on (default "a"); ignored when libvirtUri is given. */
  host?: HostName;
  libvirtUri?: string;
  name: string;
  ramMiB?: number;
  vcpus?: number;
  wsMiB?: number;
  rateMiB?: number;
  reportMs?: number;
  /** Persistent definition (define + start) instead of a transient domain (create). */
  persistent?: boolean;
  dir?: string;
}

export interface GuestInfo {
  name: string;
  host: HostName | null;
  libvirtUri: string;
  kernel: string;
  cmdline: string;
  serialLog: string;
  xmlPath: string;
  progressAddress: string;
  ramMiB: number;
  wsMiB: number;
  rateMiB: number;
  vcpus: number;
}

/** Builds the guest kernel if needed, then defines and starts the guest on a lab host.
 * `kind: 'linux'`: the Linux guest of ./linux-guest.ts instead of the dirtying guest. */
export async function defineGuest(opts: DefineGuestOptions & { kind?: 'dirtying' }): Promise<GuestInfo>;
export async function defineGuest(opts: DefineLinuxGuestOptions & { kind: 'linux' }): Promise<LinuxGuestInfo>;
export async function defineGuest(
  opts: (DefineGuestOptions & { kind?: 'dirtying' }) | (DefineLinuxGuestOptions & { kind: 'linux' }),
): Promise<GuestInfo | LinuxGuestInfo> {
  if (opts.kind === 'linux') return defineLinuxGuest(opts);
  return defineDirtyingGuest(opts);
}

async function defineDirtyingGuest(opts: DefineGuestOptions): Promise<GuestInfo> {
  const dir = labDir(opts.dir);
  const host = opts.host ?? 'a';
  if (!HOST_NAMES.includes(host)) throw new LabError(`unknown host ${host}`);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(opts.name)) throw new LabError(`bad guest name ${opts.name}`);
  const ramMiB = opts.ramMiB ?? 1024;
  const wsMiB = opts.wsMiB ?? 64;
  const rateMiB = opts.rateMiB ?? 0;
  const vcpus = opts.vcpus ?? 1;
  for (const [k, v] of Object.entries({ ramMiB, wsMiB, rateMiB, vcpus })) {
    if (!Number.isInteger(v) || v < 0) throw new LabError(`${k} must be a non-negative integer`);
  }
  if (ramMiB < 16) throw new LabError('ram must be at least 16 MiB');
  // Working set starts at 4 MiB and the kernel keeps 1 MiB headroom (see kernel.c).
  if (wsMiB > ramMiB - 5) throw new LabError(`ws ${wsMiB} MiB does not fit in ${ramMiB} MiB of RAM (max ${ramMiB - 5})`);
  if (ramMiB > 3072) throw new LabError('ram above 3072 MiB is unreachable for the 32-bit guest (PCI hole)');
  if (vcpus < 1) throw new LabError('vcpus must be >= 1');

  const plan = hostPlan(dir, host, portBase());
  if (!opts.libvirtUri && !existsSync(plan.socket)) throw new LabError(`lab host ${host} is not up in ${dir} (run \`vmigrate lab up\`)`);
  const uri = opts.libvirtUri ?? plan.libvirtUri;
  const kernel = await ensureGuestKernel({ dir });
  const serialLog = join(guestDir(dir), `${opts.name}.serial.log`);
  const xml = guestXml({ name: opts.name, ramMiB, vcpus, wsMiB, rateMiB, reportMs: opts.reportMs, kernel, serialPath: serialLog });
  const xmlPath = join(guestDir(dir), `${opts.name}.xml`);
  await writeFile(xmlPath, xml);
  if (opts.persistent) {
    await virsh(uri, ['define', xmlPath]);
    await virsh(uri, ['start', opts.name], 60_000);
  } else {
    await virsh(uri, ['create', xmlPath], 60_000);
  }
  return {
    name: opts.name,
    host: opts.libvirtUri ? null : host,
    libvirtUri: uri,
    kernel,
    cmdline: guestCmdline({ wsMiB, rateMiB, reportMs: opts.reportMs }),
    serialLog,
    xmlPath,
    progressAddress: `0x${PROGRESS_ADDR.toString(16)}`,
    ramMiB,
    wsMiB,
    rateMiB,
    vcpus,
  };
}

/** Destroys (and undefines, if persistent) a guest; ignores a guest that is already gone. */
export async function destroyGuest(uri: string, name: string): Promise<void> {
  await virsh(uri, ['destroy', name]).catch(() => undefined);
  await virsh(uri, ['undefine', name]).catch(() => undefined);
}
