import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';
import { LabError } from './errors.js';

// Debian 12's QEMU 7.2 loses dirty pages under TCG (docs/lab.md): a Linux guest migrated while it
// writes memory often panics on the destination. QEMU 9.0 fixed it, so the lab runs bookworm-backports'
// QEMU, unpacked by .ci/setup.sh beside the system's and bind-mounted over it inside each host's
// mount namespace only. The machine's own QEMU and libvirt stay as they are.

/** Where .ci/setup.sh unpacks bookworm-backports' QEMU (a Debian package tree: usr/bin, usr/share, usr/lib). */
export const DEFAULT_QEMU_ROOT = '/opt/vmigrate-lab/qemu';

/** The paths of the system's QEMU that the lab's QEMU replaces inside a host's namespace. */
export const QEMU_BIND_TARGETS = [
  '/usr/bin/qemu-system-x86_64',
  '/usr/share/qemu',
  '/usr/share/seabios',
  '/usr/lib/x86_64-linux-gnu/qemu',
] as const;

const binary = (root: string | null) => (root === null ? '/usr/bin/qemu-system-x86_64' : join(root, 'usr/bin/qemu-system-x86_64'));

/**
 * The QEMU tree a new lab runs: `VMIGRATE_LAB_QEMU=system` keeps the machine's own, a path names a
 * tree, unset means the one .ci/setup.sh unpacks (or the system's when there is none). null = system.
 */
export function resolveQemuRoot(setting: string | undefined = process.env.VMIGRATE_LAB_QEMU): string | null {
  if (setting === 'system') return null;
  if (setting !== undefined && setting !== '') {
    for (const t of QEMU_BIND_TARGETS) {
      if (!existsSync(join(setting, t))) throw new LabError(`VMIGRATE_LAB_QEMU=${setting}: ${join(setting, t)} is missing (expected an unpacked Debian QEMU tree)`);
    }
    return setting;
  }
  return existsSync(binary(DEFAULT_QEMU_ROOT)) ? DEFAULT_QEMU_ROOT : null;
}

/** "10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)", from the binary itself. */
export async function qemuVersion(root: string | null): Promise<string> {
  const r = await run(binary(root), ['--version'], 10_000);
  const m = /QEMU emulator version (.+)/.exec(r.stdout);
  if (r.code !== 0 || !m) throw new LabError(`${binary(root)} --version failed: ${(r.stderr || r.stdout).trim()}`);
  return m[1]!.trim();
}
