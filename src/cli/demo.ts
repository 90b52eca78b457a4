// The lab demo: a guest that dirties memory faster than the link can copy it is live-migrated by
// the agent from lab host a to lab host b, with live progress, then checked on both hosts.
import { AgentClient } from '../client/client.js';
import { readTlsPaths, type TlsPaths } from '../client/tls.js';
import { followMigration } from './follow.js';
import { mibps, seconds } from './format.js';
import { defineGuest, labDown, labUp, measureGuestRate, readGuestProgress } from '../lab/index.js';

export interface DemoOptions {
  ramMiB: number;
  wsMiB: number;
  rateMiB: number;
  bandwidth: number;
  policy?: string;
  keep: boolean;
}

export const DEMO_DEFAULTS: DemoOptions = { ramMiB: 1024, wsMiB: 512, rateMiB: 400, bandwidth: 100, keep: false };

const say = (text: string): void => console.log(`\n== ${text}`);

export async function runDemo(opts: DemoOptions): Promise<boolean> {
  say('bringing up the lab: two libvirt hosts, one vmigrated agent each');
  const lab = await labUp({ agents: true });
  try {
    const [a, b] = lab.hosts;
    if (!a?.agentUrl || !b?.agentUrl) throw new Error('lab hosts came up without agents');
    for (const h of lab.hosts) console.log(`   host ${h.name}: libvirt ${h.libvirtUri}\n          agent  ${h.agentUrl}`);

    const name = 'demo-guest';
    say(`booting ${name} on host a: ${opts.ramMiB} MiB RAM, dirtying ${opts.wsMiB} MiB at up to ${opts.rateMiB} MiB/s`);
    await defineGuest({ host: 'a', name, ramMiB: opts.ramMiB, wsMiB: opts.wsMiB, rateMiB: opts.rateMiB });
    // The first pass over fresh guest RAM is slow (the host allocates it): let the guest warm up.
    await new Promise((r) => setTimeout(r, 3000));
    const rate = await measureGuestRate(a.libvirtUri, name, 2000);
    console.log(`   measured guest dirty rate: ${rate.toFixed(0)} MiB/s, migration link capped at ${opts.bandwidth} MiB/s`);
    console.log(`   the guest dirties memory ${(rate / opts.bandwidth).toFixed(1)}x faster than it can be copied: plain pre-copy cannot converge`);

    say(`migrating ${name} a -> b through the agent (VM.migrate, policy ${opts.policy ?? 'default'})`);
    const client = await AgentClient.connect(a.agentUrl, { tls: readTlsPaths(lab.tls) });
    let ok = false;
    try {
      const started = await client.migrate({ vmId: name, dst: b.agentUrl, bandwidth: opts.bandwidth, ...(opts.policy ? { policy: opts.policy } : {}) });
      const final = await followMigration(client, started.vmId, started.migrationId, { bar: process.stdout.isTTY === true, quiet: false });
      for (const r of final.actions) console.log(`   action at ${seconds(r.t)}: ${r.action.type} — ${r.action.reason}${r.applied ? '' : ` (failed: ${r.error})`}`);
      ok = final.state === 'completed';
      if (ok) console.log(`   completed in ${seconds(final.elapsedMs)}, ${final.iteration} passes, downtime ${final.downtimeMs} ms, avg ${mibps(final.dataProcessed / (final.elapsedMs / 1000))}`);
    } finally {
      await client.close();
    }

    say('where is the guest now?');
    const onA = await listNames(a.agentUrl, lab.tls);
    const onB = await listNames(b.agentUrl, lab.tls);
    console.log(`   host a runs: [${onA.join(', ')}]\n   host b runs: [${onB.join(', ')}]`);
    if (onB.includes(name)) {
      const p1 = await readGuestProgress(b.libvirtUri, name);
      await new Promise((r) => setTimeout(r, 1000));
      const p2 = await readGuestProgress(b.libvirtUri, name);
      console.log(`   guest counter on b: ${p1} -> ${p2} (${p2 > p1 ? 'still working' : 'NOT advancing'})`);
      ok = ok && p2 > p1 && !onA.includes(name);
    } else {
      ok = false;
    }
    say(ok ? 'demo succeeded: the guest arrived running on host b and left host a' : 'demo FAILED');
    return ok;
  } finally {
    if (!opts.keep) {
      say('tearing the lab down');
      await labDown();
    }
  }
}

async function listNames(url: string, tls: TlsPaths): Promise<string[]> {
  const c = await AgentClient.connect(url, { tls: readTlsPaths(tls) });
  try {
    return (await c.listVms()).filter((v) => v.state === 'running').map((v) => v.name);
  } finally {
    await c.close();
  }
}
