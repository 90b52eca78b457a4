export interface GuestXmlOptions {
  name: string;
  /** Guest RAM in MiB. */
  ramMiB: number;
  vcpus?: number;
  /** Working set dirtied by the guest, MiB. */
  wsMiB: number;
  /** Dirty-rate ceiling, MiB/s; 0 = unlimited. */
  rateMiB: number;
  /** Serial progress line interval, ms; 0 = off (default 1000). */
  reportMs?: number;
  /** Absolute path of the guest ELF (must be visible to both hosts). */
  kernel: string;
  /** File for the serial console (opened in append mode so a migrated guest keeps writing). */
  serialPath?: string;
  emulator?: string;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');

export function guestCmdline(o: Pick<GuestXmlOptions, 'wsMiB' | 'rateMiB' | 'reportMs'>): string {
  return `ws=${o.wsMiB} rate=${o.rateMiB} report=${o.reportMs ?? 1000}`;
}

/** Domain XML for the dirtying guest: TCG, direct kernel boot, no disks, no NICs, no USB/balloon,
 * so nothing host-local blocks live migration. */
export function guestXml(o: GuestXmlOptions): string {
  const serial = o.serialPath
    ? `    <serial type='file'>\n      <source path='${esc(o.serialPath)}' append='on'/>\n      <target port='0'/>\n    </serial>\n`
    : '';
  return `<domain type='qemu'>
  <name>${esc(o.name)}</name>
  <memory unit='MiB'>${o.ramMiB}</memory>
  <currentMemory unit='MiB'>${o.ramMiB}</currentMemory>
  <vcpu placement='static'>${o.vcpus ?? 1}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${esc(o.kernel)}</kernel>
    <cmdline>${esc(guestCmdline(o))}</cmdline>
  </os>
  <features>
    <!-- without it libvirt 9.0 passes -no-acpi, which the lab's QEMU 10 no longer takes -->
    <acpi/>
  </features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>${esc(o.emulator ?? '/usr/bin/qemu-system-x86_64')}</emulator>
${serial}    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}
