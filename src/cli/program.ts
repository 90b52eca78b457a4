// vmigrate: operators' and scripts' client of the vmigrated agent, and the lab tool.
import { Command, InvalidArgumentError, Option } from 'commander';
import { AgentClient } from '../client/client.js';
import { readTlsPaths, TlsFileError, type TlsPem } from '../client/tls.js';
import type { MigrateParams } from '../api/params.js';
import { isMigrationActive } from '../api/results.js';
import { followMigration } from './follow.js';
import { estimateLines, statusLine } from './format.js';
import type { EstimateParams } from '../api/estimate.js';
import { registerLabCommands } from './lab.js';
import { evacuationLine, evacuationSummary, followEvacuation } from './evacuate.js';
import type { EvacuateParams } from '../api/evacuation.js';
import { registerPkiCommands } from './pki.js';
import { DEMO_DEFAULTS, runDemo } from './demo.js';

export const DEFAULT_AGENT = 'wss://127.0.0.1:4411';
export const DEFAULT_CA = '/etc/vmigrate/pki/ca.pem';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

function policyArg(value: string): string | Record<string, unknown> {
  if (!value.trim().startsWith('{')) return value;
  try {
    return JSON.parse(value) as Record<string, unknown>;
  } catch {
    throw new InvalidArgumentError(`--policy: not valid JSON: ${value}`);
  }
}

interface GlobalOpts {
  agent: string;
  ca: string;
  cert?: string;
  key?: string;
  json?: boolean;
}

/** The client's certificate for a wss:// agent; the local socket (ws+unix://) needs none. */
function clientTls(g: GlobalOpts): TlsPem | undefined {
  if (!g.agent.startsWith('wss://')) return undefined;
  if (!g.cert || !g.key) {
    throw new InvalidArgumentError(`${g.agent} needs a client certificate: --cert and --key (or VMIGRATE_CERT, VMIGRATE_KEY), and --ca`);
  }
  try {
    return readTlsPaths({ ca: g.ca, cert: g.cert, key: g.key });
  } catch (err) {
    if (err instanceof TlsFileError) throw new InvalidArgumentError(`--${err.which}: ${err.message}`);
    throw err;
  }
}

async function withClient<T>(program: Command, fn: (c: AgentClient, g: GlobalOpts) => Promise<T>): Promise<T> {
  const g = program.opts<GlobalOpts>();
  const tls = clientTls(g);
  const client = await AgentClient.connect(g.agent, tls ? { tls } : {});
  try {
    return await fn(client, g);
  } finally {
    await client.close();
  }
}

function print(g: GlobalOpts, value: unknown, human: () => string): void {
  console.log(g.json ? JSON.stringify(value, null, 2) : human());
}

export function buildProgram(): Command {
  const program = new Command('vmigrate')
    .description('client of the vmigrated live-migration agent')
    .addOption(new Option('--agent <url>', 'agent to talk to: wss://HOST:PORT, or ws+unix:///PATH:/ for its local socket').env('VMIGRATE_AGENT').default(DEFAULT_AGENT))
    .addOption(new Option('--ca <file>', 'CA bundle that signed the agent\'s certificate (PEM)').env('VMIGRATE_CA').default(DEFAULT_CA))
    .addOption(new Option('--cert <file>', 'client certificate (PEM)').env('VMIGRATE_CERT'))
    .addOption(new Option('--key <file>', 'client certificate\'s key (PEM)').env('VMIGRATE_KEY'))
    .option('--json', 'machine-readable output')
    .showHelpAfterError();

  program
    .command('list')
    .description('VMs on the agent\'s host')
    .action(() =>
      withClient(program, async (c, g) => {
        const vms = await c.listVms();
        print(g, vms, () => vms.map((v) => `${String(v.id).padStart(4)}  ${v.uuid}  ${v.name.padEnd(20)} ${v.state}`).join('\n'));
      }),
    );

  program
    .command('caps')
    .description('the agent\'s host capabilities')
    .action(() => withClient(program, async (c, g) => {
      const caps = await c.getCapabilities();
      print(g, caps, () => JSON.stringify(caps, null, 2));
    }));

  program
    .command('migrate')
    .description('live-migrate a VM to the host of another agent, following progress to the end')
    .argument('<vm>', 'VM name or UUID')
    .argument('<destination>', 'destination agent URL (wss://host:port)')
    .option('--bandwidth <MiB/s>', 'bandwidth cap', positiveInt)
    .option('--max-downtime <ms>', 'maximum downtime', positiveInt)
    .option('--policy <name|json>', 'convergence policy: a built-in name or a JSON object', policyArg)
    .option('--postcopy', 'allow switching to post-copy')
    .option('--tls', 'encrypt the migration stream (default: the agent\'s migrationTls)')
    .option('--no-tls', 'send the migration stream unencrypted')
    .option('--auto-converge-initial <percent>', 'initial CPU throttle', positiveInt)
    .option('--auto-converge-increment <percent>', 'CPU throttle increment', positiveInt)
    .option('--persist', 'define the VM persistently on the destination')
    .option('--undefine-source', 'undefine the VM on the source after success')
    .option('--no-queue', 'refuse at once (TOO_MANY_MIGRATIONS) instead of waiting when the source runs its outgoing limit')
    .option('--queue-timeout <s>', 'how long it may wait for an outgoing slot (default: the agent\'s queueTimeoutSec)', positiveInt)
    .option('--no-wait', 'return once the migration has started (or is queued)')
    .action((vm: string, dst: string, o: Record<string, unknown>) =>
      withClient(program, async (c, g) => {
        const params: MigrateParams = { vmId: vm, dst };
        if (o.bandwidth !== undefined) params.bandwidth = o.bandwidth as number;
        if (o.maxDowntime !== undefined) params.maxDowntime = o.maxDowntime as number;
        if (o.policy !== undefined) params.policy = o.policy as MigrateParams['policy'];
        if (o.postcopy) params.postcopy = true;
        if (typeof o.tls === 'boolean') params.tls = o.tls;
        if (o.autoConvergeInitial !== undefined) params.autoConvergeInitial = o.autoConvergeInitial as number;
        if (o.autoConvergeIncrement !== undefined) params.autoConvergeIncrement = o.autoConvergeIncrement as number;
        if (o.persist) params.persistDest = true;
        if (o.undefineSource) params.undefineSource = true;
        if (o.queue === false) params.queue = false;
        if (o.queueTimeout !== undefined) params.queueTimeoutSec = o.queueTimeout as number;
        const started = await c.migrate(params);
        if (o.wait === false) {
          print(g, started, () => `migration ${started.migrationId} of ${started.vmName} ${started.state === 'queued' ? `queued at position ${started.queuePosition ?? '?'}` : 'started'}`);
          return;
        }
        const final = await followMigration(c, started.vmId, started.migrationId, { bar: !g.json && process.stdout.isTTY === true, quiet: g.json === true });
        print(g, final, () => statusLine(final));
        if (final.state !== 'completed') process.exitCode = 1;
      }),
    );

  program
    .command('status')
    .description('status of the latest migration of a VM')
    .argument('<vm>', 'VM name or UUID')
    .option('--watch', 'follow it until it ends')
    .action((vm: string, o: { watch?: boolean }) =>
      withClient(program, async (c, g) => {
        let s = await c.migrateStatus({ vmId: vm });
        if (o.watch && isMigrationActive(s.state)) {
          s = await followMigration(c, s.vmId, s.migrationId, { bar: !g.json && process.stdout.isTTY === true, quiet: g.json === true });
        }
        print(g, s, () => statusLine(s));
      }),
    );

  program
    .command('estimate')
    .description("predict a migration before it starts: measures the VM's dirty rate (about 7 s), simulates the policy and stock auto-converge")
    .argument('<vm>', 'VM name or UUID')
    .option('--bandwidth <MiB/s>', 'bandwidth cap the migration would have', positiveInt)
    .option('--policy <name|json>', 'convergence policy: a built-in name or a JSON object', policyArg)
    .action((vm: string, o: { bandwidth?: number; policy?: EstimateParams['policy'] }) =>
      withClient(program, async (c, g) => {
        const params: EstimateParams = { vmId: vm };
        if (o.bandwidth !== undefined) params.bandwidth = o.bandwidth;
        if (o.policy !== undefined) params.policy = o.policy;
        const e = await c.estimateMigration(params);
        print(g, e, () => estimateLines(e));
      }),
    );

  program
    .command('cancel')
    .description('cancel a running migration; the VM keeps running on the source')
    .argument('<vm>', 'VM name or UUID')
    .action((vm: string) =>
      withClient(program, async (c, g) => {
        const s = await c.migrateCancel({ vmId: vm });
        print(g, s, () => statusLine(s));
      }),
    );

  program
    .command('evacuate')
    .description("move every running VM off the agent's host (or those of --vm): measured, ordered, placed where they fit, the link shared")
    .requiredOption('--to <urls>', 'destination agents, comma-separated (wss://host:port,...)', (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .option('--vm <name>', 'only this VM (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--bandwidth <MiB/s>', 'bandwidth of the link, split between concurrent migrations', positiveInt)
    .option('--max-parallel <n>', 'most migrations at once', positiveInt)
    .option('--policy <name|json>', 'convergence policy for each VM', policyArg)
    .option('--watch', 'follow it to the end: a live table on a terminal, a line per change otherwise')
    .action((o: { to: string[]; vm?: string[]; bandwidth?: number; maxParallel?: number; policy?: EvacuateParams['policy']; watch?: boolean }) =>
      withClient(program, async (c, g) => {
        const params: EvacuateParams = { destinations: o.to };
        if (o.vm?.length) params.vmIds = o.vm;
        if (o.bandwidth !== undefined) params.bandwidth = o.bandwidth;
        if (o.maxParallel !== undefined) params.maxParallel = o.maxParallel;
        if (o.policy !== undefined) params.policy = o.policy;
        const { evacuationId } = await c.evacuate(params);
        if (!o.watch) {
          print(g, { evacuationId }, () => `evacuation ${evacuationId} started; follow it with \`vmigrate evacuation status ${evacuationId} --watch\``);
          return;
        }
        const final = await followEvacuation(c, evacuationId, { table: !g.json && process.stdout.isTTY === true, quiet: g.json === true });
        print(g, final, () => evacuationSummary(final));
        if (final.totals.failed > 0 || final.error) process.exitCode = 1;
      }),
    );

  const evacuation = program.command('evacuation').description('an evacuation started with `vmigrate evacuate`');
  evacuation
    .command('status')
    .argument('<id>', 'evacuation id')
    .option('--watch', 'follow it to the end')
    .action((id: string, o: { watch?: boolean }) =>
      withClient(program, async (c, g) => {
        let s = await c.evacuationStatus({ evacuationId: id });
        if (o.watch && (s.state === 'planning' || s.state === 'running')) {
          s = await followEvacuation(c, id, { table: !g.json && process.stdout.isTTY === true, quiet: g.json === true });
        }
        print(g, s, () => (o.watch ? evacuationSummary(s) : `${evacuationLine(s)}\n${evacuationSummary(s)}`));
      }),
    );
  evacuation
    .command('cancel')
    .argument('<id>', 'evacuation id')
    .option('--abort-running', 'also cancel the migrations already running (their VMs stay here)')
    .action((id: string, o: { abortRunning?: boolean }) =>
      withClient(program, async (c, g) => {
        const s = await c.evacuationCancel({ evacuationId: id, ...(o.abortRunning ? { abortRunning: true } : {}) });
        print(g, s, () => evacuationLine(s));
      }),
    );

  registerPkiCommands(program);
  registerLabCommands(program);
  const lab = program.commands.find((c) => c.name() === 'lab') ?? program.command('lab');
  lab
    .command('demo')
    .description('bring the lab up, migrate a memory-dirtying guest a -> b through the agent, tear down')
    .option('--ram <MiB>', 'guest RAM', positiveInt, DEMO_DEFAULTS.ramMiB)
    .option('--ws <MiB>', 'working set the guest dirties', positiveInt, DEMO_DEFAULTS.wsMiB)
    .option('--rate <MiB/s>', 'guest dirty-rate ceiling', positiveInt, DEMO_DEFAULTS.rateMiB)
    .option('--bandwidth <MiB/s>', 'migration bandwidth cap', positiveInt, DEMO_DEFAULTS.bandwidth)
    .option('--policy <name>', 'convergence policy')
    .option('--keep', 'leave the lab up afterwards')
    .action(async (o: { ram: number; ws: number; rate: number; bandwidth: number; policy?: string; keep?: boolean }) => {
      const ok = await runDemo({ ramMiB: o.ram, wsMiB: o.ws, rateMiB: o.rate, bandwidth: o.bandwidth, keep: o.keep === true, ...(o.policy ? { policy: o.policy } : {}) });
      if (!ok) process.exitCode = 1;
    });
  return program;
}
