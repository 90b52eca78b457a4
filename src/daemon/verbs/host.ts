// Host.* verbs: ping and capabilities.
import type { Capabilities, PingResult } from '../../api/results.js';
import type { LocalHost } from '../../migration/admission.js';
import type { AgentContext } from '../context.js';
import { libvirtFailure } from '../vm-lookup.js';
import { readCapacity } from '../capacity.js';
import type { Verbs } from './types.js';

/** libvirt packs versions as major * 1,000,000 + minor * 1,000 + release. */
export function versionString(v: number): string {
  return `${Math.floor(v / 1_000_000)}.${Math.floor(v / 1000) % 1000}.${v % 1000}`;
}

const hostCache = new WeakMap<AgentContext, Promise<LocalHost>>();

/** This host as peers see it; the host UUID is read from libvirt once. */
export function localHost(ctx: AgentContext): Promise<LocalHost> {
  let cached = hostCache.get(ctx);
  if (!cached) {
    cached = (async () => {
      const conn = await ctx.libvirt.get();
      const host: LocalHost = {
        name: ctx.settings.name,
        hostUuid: await conn.getHostUuid(),
        libvirtUri: ctx.settings.advertisedLibvirtUri ?? ctx.settings.libvirtUri,
      };
      if (ctx.settings.migrationUri !== undefined) host.migrationUri = ctx.settings.migrationUri;
      return host;
    })();
    cached.catch(() => hostCache.delete(ctx));
    hostCache.set(ctx, cached);
  }
  return cached.catch((e: unknown) => Promise.reject(libvirtFailure(e, 'reading host identity from libvirt')));
}

async function capabilities(ctx: AgentContext): Promise<Capabilities> {
  const here = await localHost(ctx);
  const conn = await ctx.libvirt.get();
  const [hostname, libVersion, hvVersion, capacity] = await Promise.all([conn.getHostname(), conn.getLibVersion(), conn.getVersion(), readCapacity(ctx)]);
  return {
    name: here.name,
    hostname,
    hostUuid: here.hostUuid,
    libvirtVersion: versionString(libVersion),
    qemuVersion: versionString(hvVersion),
    libvirtUri: here.libvirtUri,
    migrationFeatures: ['live', 'peer2peer', 'auto-converge', 'throttle-steering', 'postcopy', 'max-downtime', 'bandwidth', 'abort', 'tls'],
    policies: ctx.controllers.names(),
    capacity,
  };
}

export function hostVerbs(ctx: AgentContext): Verbs {
  return {
    'Host.ping': async (): Promise<PingResult> => ({ ok: true, name: ctx.settings.name, version: ctx.version }),
    'Host.getCapabilities': () => capabilities(ctx),
  };
}
