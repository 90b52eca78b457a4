// The lab's Linux guest: Debian's kernel and an initramfs running stress-ng (./linux-build.ts), booted
// under TCG with <os><kernel><initrd><cmdline>; it reports its work on a file-backed serial console.
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from './errors.js';
import { ensureLinuxGuest } from './linux-build.js';
import { linuxCmdline, linuxWorkload, LinuxPlanError, type LinuxLoad, type LinuxWorkload } from './linux-plan.js';
import { guestDir, HOST_NAMES, hostPlan, labDir, portBase, type HostName } from './paths.js';
import { virsh } from './virsh.js';

export interface DefineLinuxGuestOptions {
  host?: HostName;
  libvirtUri?: string;
  name: string;
  /** Guest RAM, MiB (the initramfs takes about 35 MiB of it, the kernel about 60). */
  ramMiB?: number;
  vcpus?: number;
  /** Memory stress-ng rewrites, MiB. */
  wsMiB?: number;
  /** Write rate of stress-ng (of its heavy steps), MB/s; 0 = idle. */
  rateMiB?: number;
  load?: LinuxLoad;
  idleSec?: number;
  heavySec?: number;
  windowSec?: number;
  persistent?: boolean;
  dir?: string;
}

export interface LinuxGuestInfo {
  kind: 'linux';
  name: string;
  host: HostName | null;
  libvirtUri: string;
  kernel: string;
  initrd: string;
  kernelPackage: string;
  cmdline: string;
  serialLog: string;
  xmlPath: string;
  ramMiB: number;
  vcpus: number;
  workload: LinuxWorkload;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');

/** Domain XML: TCG, direct kernel + initramfs boot, no disks or NICs (nothing host-local to migrate). */
export function linuxGuestXml(o: { name: string; ramMiB: number; vcpus: number; kernel: string; initrd: string; cmdline: string; serialPath: string }): string {
  return `<domain type='qemu'>
  <name>${esc(o.name)}</name>
  <memory unit='MiB'>${o.ramMiB}</memory>
  <currentMemory unit='MiB'>${o.ramMiB}</currentMemory>
  <vcpu placement='static'>${o.vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${esc(o.kernel)}</kernel>
    <initrd>${esc(o.initrd)}</initrd>
    <cmdline>${esc(o.cmdline)}</cmdline>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>qemu64</model>
  </cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'>
      <source path='${esc(o.serialPath)}' append='on'/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** Builds the image if needed, then defines and starts the Linux guest on a lab host. */
export async function defineLinuxGuest(opts: DefineLinuxGuestOptions): Promise<LinuxGuestInfo> {
  const dir = labDir(opts.dir);
  const host = opts.host ?? 'a';
  if (!HOST_NAMES.includes(host)) throw new LabError(`unknown host ${host}`);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(opts.name)) throw new LabError(`bad guest name ${opts.name}`);
  const ramMiB = opts.ramMiB ?? 512;
  const vcpus = opts.vcpus ?? 1;
  const wsMiB = opts.wsMiB ?? 64;
  if (!Number.isInteger(ramMiB) || ramMiB < 192) throw new LabError('ram of a Linux guest must be an integer of at least 192 MiB');
  if (!Number.isInteger(vcpus) || vcpus < 1) throw new LabError('vcpus must be >= 1');
  if (wsMiB > ramMiB - 160) throw new LabError(`ws ${wsMiB} MiB does not fit beside the kernel and initramfs in ${ramMiB} MiB (max ${ramMiB - 160})`);
  let workload: LinuxWorkload;
  try {
    workload = linuxWorkload({ load: opts.load, wsMiB, rateMB: opts.rateMiB ?? 0, idleSec: opts.idleSec, heavySec: opts.heavySec, windowSec: opts.windowSec });
  } catch (e) {
    if (e instanceof LinuxPlanError) throw new LabError(e.message);
    throw e;
  }
  const plan = hostPlan(dir, host, portBase());
  if (!opts.libvirtUri && !existsSync(plan.socket)) throw new LabError(`lab host ${host} is not up in ${dir} (run \`vmigrate lab up\`)`);
  const uri = opts.libvirtUri ?? plan.libvirtUri;
  const image = await ensureLinuxGuest({ dir });
  const serialLog = join(guestDir(dir), `${opts.name}.serial.log`);
  const cmdline = linuxCmdline(workload);
  const xmlPath = join(guestDir(dir), `${opts.name}.xml`);
  await writeFile(xmlPath, linuxGuestXml({ name: opts.name, ramMiB, vcpus, kernel: image.kernel, initrd: image.initrd, cmdline, serialPath: serialLog }));
  // a fresh log per boot: an earlier guest of the same name left its reports there (QEMU appends,
  // which keeps the lines of one boot together across a migration)
  await rm(serialLog, { force: true });
  if (opts.persistent) {
    await virsh(uri, ['define', xmlPath]);
    await virsh(uri, ['start', opts.name], 60_000);
  } else {
    await virsh(uri, ['create', xmlPath], 60_000);
  }
  return { kind: 'linux', name: opts.name, host: opts.libvirtUri ? null : host, libvirtUri: uri, ...image, cmdline, serialLog, xmlPath, ramMiB, vcpus, workload };
}
