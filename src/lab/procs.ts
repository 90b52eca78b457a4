import { readdir, readFile, readlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { sleep } from './exec.js';

export interface ProcInfo {
  pid: number;
  exe: string; // basename of /proc/pid/exe ('' if unreadable)
  cmdline: string[];
  mntNs: string; // e.g. "mnt:[4026532301]"
}

export async function procInfo(pid: number): Promise<ProcInfo | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    const cmdline = raw.split('\0').filter((s) => s.length > 0);
    const exe = await readlink(`/proc/${pid}/exe`).then((p) => basename(p.replace(/ \(deleted\)$/, '')), () => '');
    const mntNs = await readlink(`/proc/${pid}/ns/mnt`).catch(() => '');
    if (cmdline.length === 0 && !exe) return undefined; // zombie or kernel thread
    return { pid, exe, cmdline, mntNs };
  } catch {
    return undefined;
  }
}

export async function listProcs(): Promise<ProcInfo[]> {
  const names = await readdir('/proc');
  const pids = names.filter((n) => /^\d+$/.test(n)).map(Number).filter((p) => p !== process.pid);
  const infos = await Promise.all(pids.map(procInfo));
  return infos.filter((p): p is ProcInfo => p !== undefined);
}

/** Alive and not a zombie. */
export async function isAlive(pid: number | undefined): Promise<boolean> {
  if (!pid) return false;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** TERM, wait up to graceMs, then KILL what is left; resolves when all are gone (or after KILL wait). */
export async function terminate(pids: number[], graceMs = 3_000): Promise<number[]> {
  const todo = [...new Set(pids)].filter((p) => p > 1 && p !== process.pid);
  for (const p of todo) signal(p, 'SIGTERM');
  const end = Date.now() + graceMs;
  let left = todo;
  while (Date.now() < end) {
    left = (await Promise.all(left.map(async (p) => ((await isAlive(p)) ? p : 0)))).filter(Boolean);
    if (left.length === 0) return [];
    await sleep(100);
  }
  for (const p of left) signal(p, 'SIGKILL');
  await sleep(300);
  return (await Promise.all(left.map(async (p) => ((await isAlive(p)) ? p : 0)))).filter(Boolean);
}

/** QEMU processes whose command line names something under the lab dir (kernel, serial file):
 * the last sweep of `lab down`, for QEMUs whose namespace was not recorded. */
export async function labQemus(dir: string): Promise<ProcInfo[]> {
  const marker = dir + '/';
  return (await listProcs()).filter((p) => p.exe.startsWith('qemu-system') && p.cmdline.some((a) => a.includes(marker)));
}
