// What this host can take now (Host.getCapabilities `capacity`), for placement by an evacuating
// source. The arithmetic is pure; reading libvirt and /proc/meminfo is kept apart.
import { readFile } from 'node:fs/promises';
import type { HostCapacity } from '../api/results.js';
import type { AgentContext } from './context.js';
import { libvirtConnection } from './vm-lookup.js';

export interface CapacityFacts {
  /** memoryCapacityMiB when configured */
  configuredMiB?: number;
  /** /proc/meminfo MemAvailable and MemTotal, MiB */
  hostAvailableMiB: number;
  hostTotalMiB: number;
  /** memory of each active domain, MiB */
  vmMemoryMiB: number[];
  incoming: number;
  incomingLimit: number;
  outgoing: number;
  outgoingLimit: number;
}

export function capacityFrom(f: CapacityFacts): HostCapacity {
  const vmMemoryMiB = Math.round(f.vmMemoryMiB.reduce((a, b) => a + b, 0));
  // A configured size is a budget for VMs; the host's own free memory still bounds it (lab hosts share one machine).
  const memoryFreeMiB = f.configuredMiB !== undefined ? Math.max(0, Math.min(f.configuredMiB - vmMemoryMiB, f.hostAvailableMiB)) : Math.max(0, f.hostAvailableMiB);
  return {
    memoryFreeMiB: Math.round(memoryFreeMiB),
    memoryTotalMiB: Math.round(f.configuredMiB ?? f.hostTotalMiB),
    memorySource: f.configuredMiB !== undefined ? 'configured' : 'host',
    runningVms: f.vmMemoryMiB.length,
    vmMemoryMiB,
    incomingSlotsFree: Math.max(0, f.incomingLimit - f.incoming),
    incomingLimit: f.incomingLimit,
    outgoingSlotsFree: Math.max(0, f.outgoingLimit - f.outgoing),
    outgoingLimit: f.outgoingLimit,
  };
}

/** MemAvailable / MemTotal of /proc/meminfo, MiB. */
export function parseMeminfo(text: string): { availableMiB: number; totalMiB: number } {
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { availableMiB: kib('MemAvailable') / 1024, totalMiB: kib('MemTotal') / 1024 };
}

export async function readCapacity(ctx: AgentContext): Promise<HostCapacity> {
  const conn = await libvirtConnection(ctx.libvirt);
  const active = (await conn.listAllDomains()).filter((d) => d.active);
  const vmMemoryMiB = await Promise.all(
    active.map(async (d) => {
      // a domain that went away between the listing and the lookup takes no memory
      const info = await conn.lookupByUuid(d.uuid).then((dom) => dom.getInfo(), () => null);
      return info ? info.maxMemKiB / 1024 : 0;
    }),
  );
  const mem = parseMeminfo(await readFile('/proc/meminfo', 'utf8').catch(() => ''));
  return capacityFrom({
    ...(ctx.settings.memoryCapacityMiB !== undefined ? { configuredMiB: ctx.settings.memoryCapacityMiB } : {}),
    hostAvailableMiB: mem.availableMiB,
    hostTotalMiB: mem.totalMiB,
    vmMemoryMiB,
    incoming: ctx.desk.incoming,
    incomingLimit: ctx.desk.limit,
    outgoing: ctx.manager.activeCount,
    outgoingLimit: ctx.manager.limit,
  });
}
