// Breaking a migration stream that is stuck on a dead link, when QEMU itself no longer answers.
//
// Why: since QEMU 9.2, auto-converge syncs the dirty bitmap from QEMU's main loop every 5 s while the
// throttle is on. The migration thread holds the bitmap lock while it writes pages to the socket, so
// when the link goes silent mid-write the main loop waits on that lock with the big QEMU lock held:
// the monitor stops answering (libvirt's job statistics and abort hang) and the guest's vCPUs stop.
// It lasts until TCP gives up, minutes after the link is back (seen on the lab with QEMU 10.0). Taking
// the source QEMU's stuck socket away from it (the kernel's SOCK_DESTROY, as `ss -K` does) fails the
// write: the migration fails, the locks are released, and the guest runs on from the source.
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { isGuestQemu } from '../libvirt/guest-zero.js';

const execFileP = promisify(execFile);

export interface TcpSocket {
  sendQ: number;
  local: { addr: string; port: number };
  peer: { addr: string; port: number };
  pids: number[];
}

function endpoint(s: string): { addr: string; port: number } | null {
  const i = s.lastIndexOf(':');
  if (i <= 0) return null;
  const port = Number(s.slice(i + 1));
  if (!Number.isInteger(port)) return null;
  // [::1] and ::ffff:a.b.c.d forms: ss brackets IPv6 addresses
  return { addr: s.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port };
}

/** `ss -H -tnp state established` lines: Recv-Q, Send-Q, local, peer, users:(("name",pid=N,fd=M),...). */
export function parseEstablished(text: string): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const sendQ = Number(f[1]);
    const local = endpoint(f[2]!);
    const peer = endpoint(f[3]!);
    if (!Number.isFinite(sendQ) || !local || !peer) continue;
    const pids = [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
    out.push({ sendQ, local, peer, pids });
  }
  return out;
}

/** The sockets of process `pid` that hold data the peer has not taken: a live migration stream on a
 *  silent link. An idle connection of the same QEMU (a VNC client, a chardev) has nothing queued. */
export function stuckSocketsOf(sockets: readonly TcpSocket[], pid: number): TcpSocket[] {
  return sockets.filter((s) => s.pids.includes(pid) && s.sendQ > 0);
}

/** `ss -K` filter naming exactly one connection. */
export function killFilter(s: TcpSocket): string[] {
  return ['-K', '-tn', 'state', 'established', 'src', s.local.addr, 'sport', '=', `:${s.local.port}`, 'dst', s.peer.addr, 'dport', '=', `:${s.peer.port}`];
}

const show = (s: TcpSocket): string => `${s.local.addr}:${s.local.port} -> ${s.peer.addr}:${s.peer.port} (${s.sendQ} bytes unsent)`;

/** The QEMU processes of guest `name` visible here, found without asking QEMU (its monitor may hang).
 *  Where both ends of a migration run on one machine (the lab), both: breaking the destination's end
 *  of a stream that is being aborted loses nothing. */
export async function qemuPidsOf(name: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (isGuestQemu(cmdline, name)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Destroys the stuck TCP connections of guest `name`'s QEMU. Returns the QEMU pids found and what was
 * broken (empty: nothing was stuck). Needs CAP_NET_ADMIN and a /proc that shows QEMU's sockets.
 */
export async function breakStuckStreams(name: string): Promise<{ pids: number[]; broken: string[] }> {
  const pids = await qemuPidsOf(name);
  if (pids.length === 0) return { pids, broken: [] };
  const { stdout } = await execFileP('ss', ['-H', '-tnp', 'state', 'established'], { timeout: 10_000, maxBuffer: 16 * 1024 * 1024 });
  const sockets = parseEstablished(stdout);
  const stuck = pids.flatMap((pid) => stuckSocketsOf(sockets, pid));
  for (const s of stuck) await execFileP('ss', killFilter(s), { timeout: 10_000 });
  return { pids, broken: stuck.map(show) };
}
