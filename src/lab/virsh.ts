import { run, type RunResult } from './exec.js';

/** `virsh -c uri ...`; throws with virsh's own message on failure. */
export async function virsh(uri: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const r = await virshRaw(uri, args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(`virsh ${args[0] ?? ''} failed (${r.code}): ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

export function virshRaw(uri: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return run('virsh', ['-q', '-c', uri, ...args], timeoutMs);
}

/** True when the libvirtd behind `uri` answers an RPC. */
export async function libvirtAnswers(uri: string, timeoutMs = 5_000): Promise<boolean> {
  return (await virshRaw(uri, ['version'], timeoutMs)).code === 0;
}

/** Domain names; `all` includes inactive (defined, shut off) ones, otherwise active ones only. */
export async function listDomains(uri: string, all = true): Promise<string[]> {
  const out = await virsh(uri, all ? ['list', '--all', '--name'] : ['list', '--name']);
  return out.split('\n').map((s) => s.trim()).filter(Boolean);
}

export async function domainState(uri: string, name: string): Promise<string> {
  return (await virsh(uri, ['domstate', name])).trim();
}

/** The <host><uuid> libvirt reports (what migration compares). */
export async function hostUuid(uri: string): Promise<string> {
  const caps = await virsh(uri, ['capabilities']);
  const m = /<host>\s*<uuid>([0-9a-f-]+)<\/uuid>/i.exec(caps);
  if (!m?.[1]) throw new Error('no host uuid in capabilities');
  return m[1];
}
