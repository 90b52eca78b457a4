import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.js';
import { LabError } from './errors.js';
import { guestDir, labDir, pkgRoot } from './paths.js';

export const GUEST_SOURCES = ['boot.S', 'kernel.c', 'linker.ld'] as const;

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

/** Builds the guest kernel into <lab dir>/guest/ unless a build of the same sources exists;
 * returns the ELF's path (a path both hosts' namespaces see). The name carries a hash of the
 * sources so a rebuild never replaces the file a running (or migrating) guest was started from. */
export async function ensureGuestKernel(opts: { dir?: string; force?: boolean } = {}): Promise<string> {
  const gdir = guestDir(labDir(opts.dir));
  const src = guestSourceDir();
  const sources = GUEST_SOURCES.map((f) => join(src, f));
  if (!sources.every((f) => existsSync(f))) throw new LabError(`guest sources missing in ${src}`);
  const h = createHash('sha256').update(CFLAGS.join(' '));
  for (const f of sources) h.update(await readFile(f));
  const out = join(gdir, `vmigrate-guest-${h.digest('hex').slice(0, 12)}.elf`);
  if (!opts.force && existsSync(out)) return out;
  await mkdir(gdir, { recursive: true });
  const tmp = await mkdtemp(join(gdir, 'build-'));
  try {
    await must('gcc', [...CFLAGS, '-c', join(src, 'boot.S'), '-o', join(tmp, 'boot.o')]);
    await must('gcc', [...CFLAGS, '-c', join(src, 'kernel.c'), '-o', join(tmp, 'kernel.o')]);
    await must('ld', ['-m', 'elf_i386', '-nostdlib', '-z', 'max-page-size=0x1000', '--no-warn-rwx-segments', '-T', join(src, 'linker.ld'), '-o', join(tmp, 'kernel.elf'), join(tmp, 'boot.o'), join(tmp, 'kernel.o')]);
    await rename(join(tmp, 'kernel.elf'), out); // atomic for concurrent builders
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return out;
}
