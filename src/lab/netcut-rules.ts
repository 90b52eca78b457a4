// What a cut of the migration network between two lab hosts is, as nftables rules (pure).
// One table per lab (named from the lab dir), one chain per cut pair: restoring a pair deletes its
// chain, `lab down` deletes the table. Rules match only the hosts' migration addresses and their
// migration port ranges (derived from the port base), so neither the agents' RPC (127.0.0.1) nor
// libvirt's Unix sockets, nor another lab's streams, are touched.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { HOST_NAMES, type HostName, type HostPlan } from './paths.js';

/** nftables table of the lab in `dir` (identifier: letters, digits, underscores). */
export function netcutTable(dir: string): string {
  return `vmigrate_lab_${createHash('sha256').update(dir).digest('hex').slice(0, 10)}`;
}

/** The pair in a canonical order, so cut(a, b) and cut(b, a) are the same cut. */
export function cutPair(x: HostName, y: HostName): [HostName, HostName] {
  if (x === y) throw new Error(`a cut needs two different hosts (got ${x} twice)`);
  return HOST_NAMES.indexOf(x) < HOST_NAMES.indexOf(y) ? [x, y] : [y, x];
}

export const cutChain = (x: HostName, y: HostName): string => {
  const [a, b] = cutPair(x, y);
  return `cut_${a}_${b}`;
};

/** Both directions of every migration stream between the two hosts: packets to a host's migration
 *  listener and packets from it. Dropped on input (after loopback): the sender sees silence, as on a
 *  cut wire, not an error. */
export function cutRules(plans: readonly [HostPlan, HostPlan]): string[] {
  return plans.flatMap((p) => [
    `ip daddr ${p.migrationAddress} tcp dport ${p.migrationPortMin}-${p.migrationPortMax} drop`,
    `ip saddr ${p.migrationAddress} tcp sport ${p.migrationPortMin}-${p.migrationPortMax} drop`,
  ]);
}

/** `nft -f -` script that makes the cut; running it again leaves the same rules (flush, then add). */
export function cutScript(table: string, plans: readonly [HostPlan, HostPlan]): string {
  const chain = cutChain(plans[0].name, plans[1].name);
  return [
    `add table inet ${table}`,
    `add chain inet ${table} ${chain} { type filter hook input priority filter; policy accept; }`,
    `flush chain inet ${table} ${chain}`,
    ...cutRules(plans).map((r) => `add rule inet ${table} ${chain} ${r}`),
    '',
  ].join('\n');
}

/** `nft -f -` script that removes one cut; harmless when it is not there (add, flush, delete). */
export function restoreScript(table: string, x: HostName, y: HostName): string {
  const chain = cutChain(x, y);
  return [
    `add table inet ${table}`,
    `add chain inet ${table} ${chain}`,
    `flush chain inet ${table} ${chain}`,
    `delete chain inet ${table} ${chain}`,
    '',
  ].join('\n');
}

/** Removes the lab's whole table; harmless when it is not there. */
export function dropTableScript(table: string): string {
  return [`add table inet ${table}`, `delete table inet ${table}`, ''].join('\n');
}

const NftListing = z.object({
  nftables: z.array(z.record(z.string(), z.unknown())),
});
const NftChain = z.object({ name: z.string() });

/** The names of the chains in `nft -j list table inet <table>` output (cuts, shaped uplinks). */
export function chainsInListing(json: string): string[] {
  const listing = NftListing.parse(JSON.parse(json));
  return listing.nftables.flatMap((item) => {
    const chain = NftChain.safeParse(item.chain);
    return chain.success ? [chain.data.name] : [];
  });
}

/** The cut pairs present in `nft -j list table inet <table>` output. */
export function cutsInListing(json: string): [HostName, HostName][] {
  const pairs: [HostName, HostName][] = [];
  for (const name of chainsInListing(json)) {
    const m = /^cut_([a-z]+)_([a-z]+)$/.exec(name);
    const [x, y] = [m?.[1], m?.[2]];
    if (isHost(x) && isHost(y)) pairs.push([x, y]);
  }
  return pairs;
}

function isHost(s: string | undefined): s is HostName {
  return (HOST_NAMES as readonly string[]).includes(s ?? '');
}
