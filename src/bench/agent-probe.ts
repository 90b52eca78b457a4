// Watches an agent from outside while a benchmark runs: the round-trip time of VM.migrateStatus at a
// fixed call rate on one client connection (as a manager polls it), and the agent's resident memory
// from /proc. Open loop: a call is sent every 1/rate s whether or not the previous one has answered,
// so a slow answer does not hide the ones behind it.
import { readFileSync } from 'node:fs';
import { AgentClient } from '../client/client.js';
import { readTlsPaths, type TlsPaths } from '../client/tls.js';
import { median, percentile } from './stats.js';

export interface ProbeResult {
  calls: number;
  /** calls that answered with an error other than NO_MIGRATION, or timed out */
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  rssMedianMiB: number;
  rssMaxMiB: number;
  seconds: number;
  /** the machine's 1-minute load average at the start and at the end */
  load: [number, number];
  /** p99 of how late this client's own 1/rate timer fired: the machine's scheduling delay, not the agent's */
  clientTimerLateP99Ms: number;
  /** the agent's own event-loop delay over the window (its /metrics, prom-client's monitorEventLoopDelay, reset at each scrape) */
  agentLoopDelayP99Ms: number | null;
  agentLoopDelayMaxMs: number | null;
}

export interface Probe {
  stop(): Promise<ProbeResult>;
}

/** VmRSS of a process, MiB (NaN when it cannot be read). */
export function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/** The agent's event-loop delay since the previous scrape, ms (null without metrics). */
async function loopDelay(metricsUrl: string | null): Promise<{ p99: number; max: number } | null> {
  if (!metricsUrl) return null;
  try {
    const text = await (await fetch(metricsUrl)).text();
    const get = (name: string): number => Number(new RegExp(`^vmigrate_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN) * 1000;
    return { p99: get('p99'), max: get('max') };
  } catch {
    return null;
  }
}

/** `vms()`: the VMs whose status to ask for, in turn. `metricsUrl`: the agent's /metrics, for its own event-loop delay. */
export async function startProbe(url: string, tls: TlsPaths, agentPid: number, vms: () => string[], ratePerSec = 20, metricsUrl: string | null = null): Promise<Probe> {
  await loopDelay(metricsUrl); // resets the agent's histogram: the window starts now
  const client = await AgentClient.connect(url, { tls: readTlsPaths(tls), callTimeoutMs: 10_000 });
  const latencies: number[] = [];
  const rss: number[] = [];
  const inFlight = new Set<Promise<void>>();
  let errors = 0;
  let i = 0;
  const t0 = performance.now();
  const load0 = loadAverage();
  const late: number[] = [];
  let lastTick = performance.now();
  const callTimer = setInterval(() => {
    const now = performance.now();
    late.push(Math.max(0, now - lastTick - 1000 / ratePerSec));
    lastTick = now;
    const list = vms();
    const vmId = list[i++ % Math.max(1, list.length)] ?? 'none';
    const a = performance.now();
    const p = client.migrateStatus({ vmId }).then(
      () => void latencies.push(performance.now() - a),
      (err: unknown) => {
        // NO_MIGRATION is an answer too (a VM not migrated yet); anything else is counted apart
        if ((err as { errorName?: string }).errorName === 'NO_MIGRATION') latencies.push(performance.now() - a);
        else errors += 1;
      },
    ).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }, 1000 / ratePerSec);
  const rssTimer = setInterval(() => rss.push(rssMiB(agentPid)), 500);
  rss.push(rssMiB(agentPid));
  return {
    async stop() {
      clearInterval(callTimer);
      clearInterval(rssTimer);
      const agentLoop = await loopDelay(metricsUrl);
      await Promise.all([...inFlight]);
      await client.close();
      const r = (x: number): number => Number(x.toFixed(2));
      const mem = rss.filter((x) => Number.isFinite(x));
      return {
        calls: latencies.length + errors,
        errors,
        p50Ms: r(median(latencies)),
        p99Ms: r(percentile(latencies, 99)),
        maxMs: r(Math.max(...latencies)),
        rssMedianMiB: Number(median(mem).toFixed(1)),
        rssMaxMiB: Number(Math.max(...mem).toFixed(1)),
        seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
        load: [load0, loadAverage()],
        clientTimerLateP99Ms: r(percentile(late, 99)),
        agentLoopDelayP99Ms: agentLoop ? r(agentLoop.p99) : null,
        agentLoopDelayMaxMs: agentLoop ? r(agentLoop.max) : null,
      };
    },
  };
}
