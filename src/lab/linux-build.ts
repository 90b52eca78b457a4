// Builds the lab's Linux guest from Debian packages only: the distribution's cloud kernel (vmlinuz
// from the .deb, fetched with `apt-get download`, never installed) and an initramfs (cpio newc, by
// busybox's cpio applet) holding busybox-static, Debian's stress-ng with the libraries ldd lists, and
// /init (linux/init.sh). Cached per lab dir under a hash of the package versions and /init.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { LabError } from './errors.js';
import { guestDir, labDir, pkgRoot } from './paths.js';

const execFileP = promisify(execFile);

/** The Debian metapackage whose kernel the guest boots (cloud flavour: fewer drivers, boots faster). */
export const KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';
/** Packages that must be installed on the host (.ci/setup.sh installs them). */
export const LINUX_GUEST_DEBS = ['busybox-static', 'stress-ng'] as const;
const WORKLOAD = '/usr/bin/stress-ng';
const BUSYBOX = '/bin/busybox';

export interface LinuxGuestImage {
  kernel: string;
  initrd: string;
  kernelPackage: string;
}

/** Where downloaded kernel packages are kept across labs ($VMIGRATE_DEB_CACHE). */
export function debCacheDir(): string {
  return process.env.VMIGRATE_DEB_CACHE ?? '/var/cache/vmigrate/debs';
}

async function sh(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 16 << 20 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new LabError(`linux guest build: ${cmd} ${args.join(' ')} failed: ${(err.stderr || err.message).trim()}`);
  }
}

async function installedVersion(pkg: string): Promise<string> {
  const v = await sh('dpkg-query', ['-W', '-f=${Status} ${Version}', pkg]).catch(() => '');
  const m = /install ok installed (\S+)/.exec(v);
  if (!m) throw new LabError(`the Linux guest needs the Debian package ${pkg}: apt-get install ${LINUX_GUEST_DEBS.join(' ')} (or run .ci/setup.sh)`);
  return m[1]!;
}

/** The versioned kernel package the metapackage points at, e.g. linux-image-6.1.0-57-cloud-amd64. */
async function kernelPackage(): Promise<string> {
  const out = await sh('apt-cache', ['depends', KERNEL_METAPACKAGE]);
  const m = /Depends: (linux-image-\S+)/.exec(out);
  if (!m) throw new LabError(`no kernel package behind ${KERNEL_METAPACKAGE} (apt-get update?)`);
  return m[1]!;
}

/** The kernel .deb in the cache, downloaded once. */
async function kernelDeb(pkg: string): Promise<string> {
  const cache = debCacheDir();
  await mkdir(cache, { recursive: true });
  const find = async () => (await readdir(cache)).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  let f = await find();
  if (!f) {
    await sh('apt-get', ['download', pkg], { cwd: cache, timeoutMs: 300_000 });
    f = await find();
    if (!f) throw new LabError(`apt-get download ${pkg} left no .deb in ${cache}`);
  }
  return join(cache, f);
}

/** Shared libraries (and the loader) a program needs, from ldd. */
async function sharedLibs(program: string): Promise<string[]> {
  const out = await sh('ldd', [program]);
  const libs = new Set<string>();
  for (const line of out.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)/.exec(line);
    if (m) libs.add(m[1]!);
  }
  return [...libs];
}

export function linuxInitPath(): string {
  return join(pkgRoot(), 'src', 'lab', 'linux', 'init.sh');
}

export async function ensureLinuxGuest(opts: { dir?: string; force?: boolean } = {}): Promise<LinuxGuestImage> {
  const gdir = guestDir(labDir(opts.dir));
  const versions = await Promise.all(LINUX_GUEST_DEBS.map(installedVersion));
  const pkg = await kernelPackage();
  const init = await readFile(linuxInitPath());
  const h = createHash('sha256').update(pkg).update(versions.join(' ')).update(init).digest('hex').slice(0, 12);
  const out = join(gdir, `linux-${h}`);
  const image = { kernel: join(out, 'vmlinuz'), initrd: join(out, 'initrd.cpio'), kernelPackage: pkg };
  if (!opts.force && existsSync(image.kernel) && existsSync(image.initrd)) return image;

  const deb = await kernelDeb(pkg);
  await mkdir(gdir, { recursive: true });
  const tmp = await mkdtemp(join(gdir, 'linux-build-'));
  try {
    const x = join(tmp, 'deb');
    await sh('dpkg-deb', ['-x', deb, x]);
    const vmlinuz = (await readdir(join(x, 'boot'))).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new LabError(`no vmlinuz in ${deb}`);
    const img = join(tmp, 'image');
    await mkdir(img);
    await copyFile(join(x, 'boot', vmlinuz), join(img, 'vmlinuz'));

    const root = join(tmp, 'root');
    for (const d of ['bin', 'proc', 'sys', 'dev', 'tmp', 'usr/bin']) await mkdir(join(root, d), { recursive: true });
    await copyFile(BUSYBOX, join(root, 'bin', 'busybox'));
    await copyFile(linuxInitPath(), join(root, 'init'));
    await chmod(join(root, 'init'), 0o755);
    // the kernel opens /dev/console for /init before anything is mounted
    await sh('mknod', ['-m', '600', join(root, 'dev', 'console'), 'c', '5', '1']);
    await copyFile(WORKLOAD, join(root, WORKLOAD));
    await chmod(join(root, WORKLOAD), 0o755);
    for (const lib of await sharedLibs(WORKLOAD)) {
      await mkdir(join(root, dirname(lib)), { recursive: true });
      await copyFile(lib, join(root, lib)); // copyFile follows symlinks
    }
    await sh('sh', ['-c', 'cd "$1" && find . | sort | "$2" cpio -o -H newc > "$3"', 'sh', root, BUSYBOX, join(img, 'initrd.cpio')]);
    await rm(out, { recursive: true, force: true });
    await rename(img, out); // whole image at once: a concurrent reader sees all or nothing
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return image;
}
