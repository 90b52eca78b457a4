// Fault injectors: each makes its fault happen to the running migration, waits as long as the fault
// lasts, and repairs what an operator or systemd would (a killed daemon is started again, a cut link
// comes back, space is freed). What the fault did is returned as notes and checks for the report.
import { spawn } from 'node:child_process';
import { cutNetwork, fillStateDir, freeStateDir, killAgent, killLibvirtd, killQemu, restartAgent, restartLibvirtd, restoreNetwork, type LabHostInfo } from '../../../src/lab/index.js';
import { agentArgs } from '../../../src/lab/agents.js';
import { labAgentTls } from '../../../src/lab/lab-pki.js';
import { hostPlan } from '../../../src/lab/paths.js';
import { rawCall } from '../raw-rpc.js';
import { isEnded, readStatus } from './agent-status.js';
import type { FaultName, InvariantResult } from './model.js';

export interface FaultContext {
  dir: string;
  portBase: number;
  src: LabHostInfo;
  dst: LabHostInfo;
  vm: string;
  /** a second guest on the source, for a request made while the fault lasts (full stateDir) */
  defineProbe: (name: string) => Promise<void>;
}

export interface FaultOutcome {
  /** checks specific to the fault (e.g. the second agent refused to start) */
  checks: InvariantResult[];
  notes: string[];
}

export interface FaultInjector {
  name: FaultName;
  /** what the injector does, for docs/faults.md */
  does: string;
  inject: (ctx: FaultContext) => Promise<FaultOutcome>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How long a killed daemon stays down before it is started again (systemd's RestartSec is similar). */
const DOWN_MS = 1_000;

const none = (notes: string[] = []): FaultOutcome => ({ checks: [], notes });

/** Holds a cut for `ms`, or until the migration has ended when `untilEnded` (the rest of a long cut
 *  changes nothing for a migration that is already over). */
async function holdCut(ctx: FaultContext, ms: number, untilEnded: boolean): Promise<number> {
  const t0 = Date.now();
  await cutNetwork('a', 'b', { dir: ctx.dir, portBase: ctx.portBase });
  try {
    while (Date.now() - t0 < ms) {
      await sleep(500);
      if (untilEnded) {
        const s = await readStatus(ctx.src.agentUrl!, ctx.vm, 3_000);
        if (s.ok && isEnded(s.status.state)) break;
      }
    }
  } finally {
    await restoreNetwork('a', 'b', { dir: ctx.dir, portBase: ctx.portBase });
  }
  return Date.now() - t0;
}

/** A second vmigrated on the source host's libvirt and stateDir (its own port, no local socket):
 *  resolves with its exit code when it exits within `ms`, or null (and stops it) when it keeps running. */
async function secondAgent(ctx: FaultContext, ms: number): Promise<{ code: number | null; output: string; stillRunning: boolean }> {
  const plan = hostPlan(ctx.dir, 'a', ctx.portBase);
  const tls = await labAgentTls(ctx.dir, 'a');
  const args = agentArgs({ ...plan, agentPort: ctx.portBase + 5, metricsPort: ctx.portBase + 105 }, tls, ctx.dir);
  // the first agent's local socket is its own: the second one gets none
  const i = args.indexOf('--local-socket');
  if (i >= 0) args.splice(i, 2);
  const mi = args.indexOf('--metrics-listen');
  if (mi >= 0) args[mi + 1] = 'off';
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VMIGRATED_CONFIG: '' } });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const code = await Promise.race([exited, sleep(ms).then(() => 'running' as const)]);
  if (code !== 'running') return { code, output, stillRunning: false };
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
  return { code: null, output, stillRunning: true };
}

const killThenRestart = (name: FaultName, host: 'a' | 'b', what: 'agent' | 'libvirtd', does: string): FaultInjector => ({
  name,
  does,
  inject: async (ctx) => {
    const o = { dir: ctx.dir };
    const killed = what === 'agent' ? await killAgent(host, o) : await killLibvirtd(host, o);
    await sleep(DOWN_MS);
    const started = what === 'agent' ? await restartAgent(host, o) : await restartLibvirtd(host, o);
    return none([`killed ${what} ${host} (pid ${killed.pid}), started it again after ${DOWN_MS} ms (pid ${started.pid})`]);
  },
});

export const INJECTORS: Record<FaultName, FaultInjector> = {
  'kill-src-agent': killThenRestart('kill-src-agent', 'a', 'agent', 'kill -9 of the source agent; started again 1 s later'),
  'kill-dst-agent': killThenRestart('kill-dst-agent', 'b', 'agent', 'kill -9 of the destination agent; started again 1 s later'),
  'kill-src-libvirtd': killThenRestart('kill-src-libvirtd', 'a', 'libvirtd', "kill -9 of the source host's libvirtd; started again 1 s later (its QEMUs keep running)"),
  'kill-dst-libvirtd': killThenRestart('kill-dst-libvirtd', 'b', 'libvirtd', "kill -9 of the destination host's libvirtd; started again 1 s later"),
  'kill-dst-qemu': {
    name: 'kill-dst-qemu',
    does: 'kill -9 of the destination QEMU (the incoming side of the migration)',
    inject: async (ctx) => {
      const k = await killQemu('b', ctx.vm, { dir: ctx.dir });
      return none([`killed the destination QEMU (pid ${k.pid})`]);
    },
  },
  'cut-5s': {
    name: 'cut-5s',
    does: 'the migration network between the hosts is cut (packets dropped) for 5 s, then restored',
    inject: async (ctx) => none([`migration network cut for ${await holdCut(ctx, 5_000, false)} ms`]),
  },
  'cut-120s': {
    name: 'cut-120s',
    does: 'the migration network is cut for 120 s, or until the migration has ended if that comes first (a pre-copy migration is expected to be aborted after 30 s of silence; what is left of the cut then changes nothing for it)',
    inject: async (ctx) => none([`migration network cut for ${await holdCut(ctx, 120_000, true)} ms`]),
  },
  'full-statedir': {
    name: 'full-statedir',
    does: "the source agent's stateDir is filled (ENOSPC) for 5 s; meanwhile a new migration is requested; then space is freed",
    inject: async (ctx) => {
      const bytes = await fillStateDir('a', { dir: ctx.dir });
      const checks: InvariantResult[] = [];
      try {
        // a request that needs a stateDir write, while it cannot be made
        const probe = `${ctx.vm}-p`;
        await ctx.defineProbe(probe);
        const r = await rawCall(ctx.src.agentUrl!, 'VM.migrate', { vmId: probe, dst: ctx.dst.agentUrl, queue: false }, 15_000).catch((e: Error) => ({ error: { code: 0, message: e.message } }));
        await sleep(1_000);
        const st = await readStatus(ctx.src.agentUrl!, probe);
        // clean: a stable error of its own, not an internal error, and not a refusal for another
        // reason (a slot held by an earlier request would hide the write failure)
        const name = (r.error as { data?: { name?: string } } | undefined)?.data?.name;
        const refused = !!r.error && r.error.code !== 0 && r.error.code !== -32603 && name !== 'TOO_MANY_MIGRATIONS' && name !== 'MIGRATION_IN_PROGRESS';
        const pending = st.ok && !isEnded(st.status.state);
        checks.push({
          name: 'write-failure-refused-cleanly',
          ok: refused && !pending,
          detail: `VM.migrate while full: ${r.error ? `error ${r.error.code} ${(r.error as { data?: { name?: string } }).data?.name ?? ''} ${r.error.message}` : 'accepted'}; then status: ${st.ok ? st.status.state : st.error}`,
        });
        // whatever happened to the probe, it must not stay migrating: stop it and let the case go on
        if (st.ok && !isEnded(st.status.state)) await rawCall(ctx.src.agentUrl!, 'VM.migrateCancel', { vmId: probe }).catch(() => undefined);
        await sleep(3_000);
      } finally {
        await freeStateDir('a', { dir: ctx.dir });
      }
      return { checks, notes: [`filled the source agent's stateDir (${bytes} bytes) for about 5 s`] };
    },
  },
  'second-agent': {
    name: 'second-agent',
    does: "a second vmigrated is started on the source host with the same libvirt and stateDir (another port); it is stopped if it still runs after 10 s",
    inject: async (ctx) => {
      const r = await secondAgent(ctx, 10_000);
      const last = r.output.trim().split('\n').slice(-1)[0] ?? '';
      return {
        checks: [{
          name: 'second-agent-refused',
          ok: !r.stillRunning && r.code !== 0,
          detail: r.stillRunning ? 'the second agent was still running after 10 s' : `exited with code ${r.code}: ${last.slice(0, 300)}`,
        }],
        notes: [r.stillRunning ? 'second agent kept running; stopped after 10 s' : `second agent exited (code ${r.code})`],
      };
    },
  },
};
