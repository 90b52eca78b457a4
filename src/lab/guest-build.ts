import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.js';
import { LabError } from './errors.js';
import { guestDir, labDir, pkgRoot } from './paths.js';

export const GUEST_SOURCES = ['boot.S', 'kernel.c', 'linker.ld'] as const;
export const GUEST_KERNEL_NAME = 'vmigrate-guest.elf';

const CFLAGS = [
  '-m32', '-march=i686', '-O2', '-Wall', '-Wextra',
  '-ffreestanding', '-nostdlib', '-fno-pic', '-fno-pie', '-fno-stack-protector',
  '-fno-asynchronous-unwind-tables', '-mgeneral-regs-only',
  // No libc/libgcc: stop gcc from turning loops into memset/memcpy calls.
  '-fno-builtin', '-fno-tree-loop-distribute-patterns',
];

export function guestSourceDir(): string {
  return join(pkgRoot(), 'src', 'lab', 'guest');
}

async function must(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args, 60_000);
  if (r.code !== 0) throw new LabError(`guest build failed: ${cmd} ${args.join(' ')}\n${r.stderr || r.stdout}`);
}

/** Builds the guest kernel into <lab dir>/guest/ when missing or older than its sources;
 * returns the ELF's path (a path both hosts' namespaces see). */
export async function ensureGuestKernel(opts: { dir?: string; force?: boolean } = {}): Promise<string> {
  const out = join(guestDir(labDir(opts.dir)), GUEST_KERNEL_NAME);
  const src = guestSourceDir();
  const sources = GUEST_SOURCES.map((f) => join(src, f));
  const haveSources = sources.every((f) => existsSync(f));
  if (!haveSources) {
    if (existsSync(out)) return out;
    throw new LabError(`guest sources missing in ${src}`);
  }
  if (!opts.force && existsSync(out)) {
    const built = statSync(out).mtimeMs;
    if (sources.every((f) => statSync(f).mtimeMs <= built)) return out;
  }
  await mkdir(guestDir(labDir(opts.dir)), { recursive: true });
  const tmp = await mkdtemp(join(guestDir(labDir(opts.dir)), 'build-'));
  try {
    await must('gcc', [...CFLAGS, '-c', join(src, 'boot.S'), '-o', join(tmp, 'boot.o')]);
    await must('gcc', [...CFLAGS, '-c', join(src, 'kernel.c'), '-o', join(tmp, 'kernel.o')]);
    await must('ld', ['-m', 'elf_i386', '-nostdlib', '-z', 'max-page-size=0x1000', '--no-warn-rwx-segments', '-T', join(src, 'linker.ld'), '-o', join(tmp, GUEST_KERNEL_NAME), join(tmp, 'boot.o'), join(tmp, 'kernel.o')]);
    await rename(join(tmp, GUEST_KERNEL_NAME), out); // atomic: a running QEMU keeps its old inode
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return out;
}
