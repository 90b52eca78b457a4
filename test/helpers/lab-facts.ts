// What libvirt and QEMU themselves say on the lab, read with virsh and plain HTTP, never through the
// agent: the facts the fault suite checks the agent's status against.
import { virsh, virshRawFacts } from './virsh-facts.js';

export interface HostRef {
  name: string;
  libvirtUri: string;
}

/** libvirt's job statistics of a domain (`domjobinfo --rawstats`): numbers by key; {} without a job. */
export async function jobStats(uri: string, dom: string): Promise<Record<string, number>> {
  const r = await virshRawFacts(uri, ['domjobinfo', dom, '--rawstats']);
  const out: Record<string, number> = {};
  if (r.code !== 0) return out;
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([a-z_]+):\s+(-?\d+)\s*$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  const type = /Job type:\s*(\d+)/.exec(r.stdout);
  if (type) out.type = Number(type[1]);
  return out;
}

/** QEMU's migration parameters (QMP query-migrate-parameters through virsh qemu-monitor-command). */
export async function migrateParameters(uri: string, dom: string): Promise<Record<string, unknown>> {
  const out = await virsh(uri, ['qemu-monitor-command', dom, '--return-value', '{"execute":"query-migrate-parameters"}']);
  return JSON.parse(out) as Record<string, unknown>;
}

export interface DomainPlace {
  host: string;
  /** libvirt's state and reason, e.g. "running (migrated)", "paused (post-copy failed)" */
  state: string;
}

/** Every host on which the domain exists (active), with libvirt's state and reason. */
export async function domainPlaces(hosts: readonly HostRef[], dom: string): Promise<DomainPlace[]> {
  const places: DomainPlace[] = [];
  for (const h of hosts) {
    const r = await virshRawFacts(h.libvirtUri, ['domstate', dom, '--reason']);
    if (r.code === 0 && r.stdout.trim() && !/^shut off/.test(r.stdout.trim())) places.push({ host: h.name, state: r.stdout.trim() });
  }
  return places;
}

/** One number of the Prometheus text exposition at `url` (sum over label sets); null when absent. */
export async function scrapeMetric(url: string, name: string): Promise<number | null> {
  const body = await (await fetch(url, { signal: AbortSignal.timeout(5_000) })).text();
  let sum: number | null = null;
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}
