// Cuts and restores the migration network between two lab hosts with nftables (Debian's `nftables`).
import { execFile } from 'node:child_process';
import { LabError } from './errors.js';
import { run } from './exec.js';
import { chainsInListing, cutPair, cutScript, cutsInListing, dropTableScript, netcutTable, restoreScript } from './netcut-rules.js';
import { hostPlan, labDir, portBase, type HostName } from './paths.js';

export interface NetcutOptions {
  dir?: string;
  portBase?: number;
}

export interface NetcutResult {
  table: string;
  hosts: [HostName, HostName];
  cut: boolean;
}

/** Runs `nft -f -` with a script on stdin; throws a LabError with nft's message. */
export function nftScript(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('nft', ['-f', '-'], { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(new LabError(missing ? 'nft not found: install Debian\'s nftables package (bash .ci/setup.sh does)' : `nft failed: ${String(stderr).trim() || err.message}`));
    });
    child.stdin?.end(script);
  });
}

function plansFor(x: HostName, y: HostName, o: NetcutOptions) {
  const dir = labDir(o.dir);
  const base = portBase(o.portBase);
  const [a, b] = cutPair(x, y);
  return { dir, table: netcutTable(dir), pair: [a, b] as [HostName, HostName], plans: [hostPlan(dir, a, base), hostPlan(dir, b, base)] as const };
}

/** Drops the migration streams between hosts x and y, both ways. Idempotent. */
export async function cutNetwork(x: HostName, y: HostName, o: NetcutOptions = {}): Promise<NetcutResult> {
  const { table, pair, plans } = plansFor(x, y, o);
  await nftScript(cutScript(table, plans));
  return { table, hosts: pair, cut: true };
}

/** Lets the migration streams between x and y through again. Idempotent. */
export async function restoreNetwork(x: HostName, y: HostName, o: NetcutOptions = {}): Promise<NetcutResult> {
  const { dir, table, pair } = plansFor(x, y, o);
  await nftScript(restoreScript(table, pair[0], pair[1]));
  await dropTableIfEmpty(dir);
  return { table, hosts: pair, cut: false };
}

/** The chains of the lab's table (cuts and shaped uplinks); none when nft is missing or the table is absent. */
export async function labChains(dir: string): Promise<string[]> {
  const r = await run('nft', ['-j', 'list', 'table', 'inet', netcutTable(dir)], 10_000);
  return r.code === 0 ? chainsInListing(r.stdout) : [];
}

/** Removes the lab's table once neither a cut nor a shaped uplink uses it. */
export async function dropTableIfEmpty(dir: string): Promise<void> {
  const r = await run('nft', ['-j', 'list', 'table', 'inet', netcutTable(dir)], 10_000);
  if (r.code === 0 && chainsInListing(r.stdout).length === 0) await nftScript(dropTableScript(netcutTable(dir)));
}

/** The cuts in place for the lab in `dir` (none when nft is missing or the table is absent). */
export async function activeCuts(dir?: string): Promise<[HostName, HostName][]> {
  const r = await run('nft', ['-j', 'list', 'table', 'inet', netcutTable(labDir(dir))], 10_000);
  if (r.code !== 0) return [];
  return cutsInListing(r.stdout);
}

/** Removes every cut of the lab (what `lab down` does). Nothing to do when nft is not installed. */
export async function dropAllCuts(dir?: string): Promise<void> {
  const table = netcutTable(labDir(dir));
  if ((await run('nft', ['-j', 'list', 'table', 'inet', table], 10_000)).code !== 0) return;
  await nftScript(dropTableScript(table));
}
