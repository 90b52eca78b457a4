import { Command, InvalidArgumentError, Option } from 'commander';
import { defineGuest } from '../lab/guest.js';
import { readGuestStatus } from '../lab/guest-progress.js';
import { labDown, labStatus, labUp, type LabInfo, type LabStatus } from '../lab/lab.js';
import { DEFAULT_HOST_COUNT, HOST_NAMES, hostPlan, labDir, MAX_HOST_COUNT, portBase, type HostName } from '../lab/paths.js';
import { LabError } from '../lab/errors.js';
import type { LinuxLoad } from '../lab/linux-plan.js';
import { killAgent, killLibvirtd, killQemu, restartAgent, restartLibvirtd } from '../lab/host-control.js';
import { cutNetwork, restoreNetwork } from '../lab/netcut.js';
import { shapeUplink, unshapeUplink } from '../lab/shape.js';
import { labProcesses, type LabProcesses } from '../lab/processes.js';
import { fillStateDir, freeStateDir } from '../lab/state-dir.js';

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

/** Runs an action, mapping errors to a message on stderr and the error's exit code. */
function action<A extends unknown[]>(fn: (...args: A) => Promise<void>) {
  return async (...args: A): Promise<void> => {
    try {
      await fn(...args);
    } catch (e) {
      const err = e as Error;
      process.stderr.write(`vmigrate lab: ${err.message}\n`);
      process.exitCode = err instanceof LabError ? err.exitCode : 1;
    }
  };
}

/** --json may be consumed by the root program's global --json. */
const wantsJson = (cmd: Command): boolean => !!cmd.optsWithGlobals<{ json?: boolean }>().json;

const out = (v: unknown) => process.stdout.write(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2) + '\n');

function printInfo(i: LabInfo): void {
  console.log(`${i.alreadyUp ? 'lab already up' : 'lab up'} in ${i.dir}, QEMU ${i.qemu.version}${i.qemu.root ? ` (${i.qemu.root})` : ' (system)'}`);
  for (const h of i.hosts) {
    console.log(`  ${h.name}  libvirt ${h.libvirtUri}`);
    console.log(`     agent ${h.agentUrl ?? '(none)'}  metrics ${h.metricsUrl ?? '(none)'}  migration ${h.migrationAddress}  uuid ${h.hostUuid}`);
  }
}

function printShapes(s: LabStatus): void {
  for (const u of s.shapes) console.log(`  uplink of ${u.host} shaped: ${u.rateMiB} MiB/s shared by its outgoing migrations (tc class ${u.classId} on lo)`);
}

function printStatus(s: LabStatus): void {
  if (s.hosts.length === 0) {
    console.log(`lab down (${s.dir})`);
    printShapes(s);
    return;
  }
  console.log(`lab ${s.up ? 'up' : 'DEGRADED'} in ${s.dir}`);
  for (const h of s.hosts) {
    const lv = h.libvirtdAnswers ? `libvirtd ${h.libvirtdPid} ok` : h.libvirtdRunning ? `libvirtd ${h.libvirtdPid} not answering` : 'libvirtd DOWN';
    const ag = h.agentUrl ? (h.agentRunning ? `agent ${h.agentPid} ${h.agentUrl}` : 'agent DOWN') : 'no agent';
    console.log(`  ${h.name}  ${lv}  ${ag}`);
    for (const d of h.domains) {
      const p = d.progress ? `  pages=${d.progress.pages} ws=${d.progress.wsPages / 256}MiB rate<=${d.progress.rateMiB || '∞'}MiB/s uptime=${(d.progress.uptimeMs / 1000).toFixed(1)}s` : '';
      console.log(`     ${d.name}: ${d.state}${p}`);
    }
  }
  printShapes(s);
}

function printProcesses(r: LabProcesses): void {
  if (r.hosts.length === 0) console.log(`lab down (${r.dir})`);
  const mark = (alive: boolean) => (alive ? 'alive' : 'DEAD');
  for (const h of r.hosts) {
    console.log(`  ${h.name}  libvirtd ${h.libvirtd.pid ?? '-'} ${mark(h.libvirtd.alive)}${h.libvirtd.alive && !h.libvirtd.answers ? ' (not answering)' : ''}` +
      `  agent ${h.agent.pid ?? '-'} ${mark(h.agent.alive)}${h.agent.alive && !h.agent.accepts ? ' (not accepting)' : ''}` +
      (h.otherAgents.length ? `  other agents ${h.otherAgents.join(' ')}` : ''));
    for (const q of h.qemus) console.log(`     qemu ${q.domain}: ${q.pid ?? '-'} ${mark(q.alive)}`);
  }
  if (r.strayQemus.length) console.log(`  stray QEMUs of this lab: ${r.strayQemus.join(' ')}`);
  console.log(`  migration network: ${r.cuts.length ? r.cuts.map(([x, y]) => `${x}-${y} CUT`).join(', ') : 'intact'}`);
}

function choice<K extends string>(words: readonly K[]) {
  return (v: string): K => {
    if (!(words as readonly string[]).includes(v)) throw new InvalidArgumentError(`must be one of ${words.join(', ')}`);
    return v as K;
  };
}

function hostCount(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_HOST_COUNT) throw new InvalidArgumentError(`must be an integer from 1 to ${MAX_HOST_COUNT}`);
  return n;
}

function hostOpt(v: string): HostName {
  if (!(HOST_NAMES as readonly string[]).includes(v)) throw new InvalidArgumentError(`host must be one of ${HOST_NAMES.join(', ')}`);
  return v as HostName;
}

export function registerLabCommands(program: Command): void {
  const lab = program.command('lab').description(`local libvirt hosts (a, b by default; --hosts N for more) for real live migration; needs root`);

  lab
    .command('up')
    .description('start libvirtd for hosts a, b (c...) in their own mount namespaces and one agent per host')
    .option('--json', 'print machine-readable JSON')
    .option('--hosts <n>', `number of hosts, 1 to ${MAX_HOST_COUNT} (default: ${DEFAULT_HOST_COUNT}, or the running lab's)`, hostCount)
    .option('--no-agents', 'do not start vmigrated agents')
    .option('--keep-on-failure', 'leave a failed start running for debugging')
    .action(
      action(async (o: { json?: boolean; agents: boolean; keepOnFailure?: boolean; hosts?: number }, cmd: Command) => {
        const i = await labUp({ agents: o.agents, keepOnFailure: !!o.keepOnFailure, ...(o.hosts !== undefined ? { hosts: o.hosts } : {}) });
        if (wantsJson(cmd)) out(i);
        else printInfo(i);
      }),
    );

  lab
    .command('down')
    .description('destroy guests, stop agents and libvirtds, remove run state')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (o: { json?: boolean }, cmd: Command) => {
        const r = await labDown();
        if (wantsJson(cmd)) out(r);
        else console.log(`${r.wasUp ? 'lab stopped' : 'lab was not up'} (${r.dir})${r.survivors.length ? `; could not kill pids ${r.survivors.join(' ')}` : ''}`);
        if (r.survivors.length) process.exitCode = 1;
      }),
    );

  lab
    .command('status')
    .description('show hosts, agents and guests of the lab')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (o: { json?: boolean }, cmd: Command) => {
        const s = await labStatus();
        if (wantsJson(cmd)) out(s);
        else printStatus(s);
      }),
    );

  lab
    .command('guest')
    .description('start a guest on a lab host: the dirtying guest (built from source), or --kind linux (Debian kernel + stress-ng)')
    .addOption(new Option('--kind <kind>', 'dirtying (multiboot, page counter) or linux (Debian kernel, stress-ng)').choices(['dirtying', 'linux']).default('dirtying'))
    .addOption(new Option('--host <host>', 'lab host').default('a').argParser(hostOpt))
    .requiredOption('--name <name>', 'domain name')
    .option('--ram <MiB>', 'guest RAM', int('ram'), 1024)
    .option('--ws <MiB>', 'working set dirtied by the guest', int('ws'), 64)
    .option('--rate <MiB/s>', 'dirty-rate ceiling, 0 = unlimited (linux: stress-ng write rate in MB/s, 0 = idle)', int('rate'), 0)
    .option('--vcpus <n>', 'vCPUs (the guest uses vCPU 0 only)', int('vcpus'), 1)
    .option('--report <ms>', 'serial progress line interval, 0 = off', int('report'), 1000)
    .addOption(new Option('--load <load>', 'linux: steady, phases (idle -> heavy -> idle) or bursty').choices(['steady', 'phases', 'bursty']).default('steady'))
    .option('--idle <s>', 'linux: idle before/after the heavy phase, or between bursts', int('idle'))
    .option('--heavy <s>', 'linux: length of the heavy phase or of a burst', int('heavy'))
    .option('--window <s>', 'linux: report window (default: long enough for 3 rewrites of ws)', int('window'))
    .option('--persistent', 'define + start instead of a transient domain')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (o: { kind: 'dirtying' | 'linux'; host: HostName; name: string; ram: number; ws: number; rate: number; vcpus: number; report: number; load: LinuxLoad; idle?: number; heavy?: number; window?: number; persistent?: boolean; json?: boolean }, cmd: Command) => {
        if (o.kind === 'linux') {
          const g = await defineGuest({ kind: 'linux', host: o.host, name: o.name, ramMiB: o.ram, wsMiB: o.ws, rateMiB: o.rate, vcpus: o.vcpus, load: o.load, idleSec: o.idle, heavySec: o.heavy, windowSec: o.window, persistent: !!o.persistent });
          if (wantsJson(cmd)) out(g);
          else {
            console.log(`linux guest ${g.name} running on host ${g.host}: ram ${g.ramMiB} MiB, kernel ${g.kernelPackage}, cmdline "${g.cmdline}"`);
            console.log(`  work (VMWORK lines): ${g.serialLog}`);
          }
          return;
        }
        const g = await defineGuest({ host: o.host, name: o.name, ramMiB: o.ram, wsMiB: o.ws, rateMiB: o.rate, vcpus: o.vcpus, reportMs: o.report, persistent: !!o.persistent });
        if (wantsJson(cmd)) out(g);
        else {
          console.log(`guest ${g.name} running on host ${g.host}: ram ${g.ramMiB} MiB, cmdline "${g.cmdline}"`);
          console.log(`  progress: virsh -c '${g.libvirtUri}' qemu-monitor-command --hmp ${g.name} 'xp /2wx ${g.progressAddress}'`);
          console.log(`  serial:   ${g.serialLog}`);
        }
      }),
    );

  lab
    .command('progress')
    .description("read a guest's progress block")
    .addOption(new Option('--host <host>', 'lab host').default('a').argParser(hostOpt))
    .requiredOption('--name <name>', 'domain name')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (o: { host: HostName; name: string; json?: boolean }, cmd: Command) => {
        const s = await readGuestStatus(hostPlan(labDir(), o.host, portBase()).libvirtUri, o.name);
        if (wantsJson(cmd)) out(s);
        else console.log(`${o.name}@${o.host}: pages=${s.pages} passes=${s.passes} uptime=${s.uptimeMs} ms lost=${s.lostMs} ms ws=${s.wsPages} pages rate<=${s.rateMiB} MiB/s tsc=${s.tscKhz} kHz`);
      }),
    );

  // What to restart or kill is a word, not a flag: the root program's global --agent <url> would
  // take `--agent` (commander reads root options anywhere on the command line).
  lab
    .command('restart')
    .description("restart a host's agent or its libvirtd on its own (the host's domains keep running)")
    .argument('<host>', 'lab host', hostOpt)
    .argument('<what>', 'agent | libvirtd', choice(['agent', 'libvirtd'] as const))
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (host: HostName, what: 'agent' | 'libvirtd', _o: unknown, cmd: Command) => {
        const r = what === 'agent' ? await restartAgent(host) : await restartLibvirtd(host);
        if (wantsJson(cmd)) out(r);
        else console.log(`${r.what} of host ${r.host} restarted: pid ${r.oldPid ?? '(none running)'} -> ${r.pid}`);
      }),
    );

  lab
    .command('kill')
    .description("kill -9 a host's agent, its libvirtd, or the QEMU of one of its domains (fault injection)")
    .argument('<host>', 'lab host', hostOpt)
    .argument('<what>', 'agent | libvirtd | qemu', choice(['agent', 'libvirtd', 'qemu'] as const))
    .argument('[domain]', 'the domain whose QEMU to kill (with qemu)')
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (host: HostName, what: 'agent' | 'libvirtd' | 'qemu', domain: string | undefined, _o: unknown, cmd: Command) => {
        if ((what === 'qemu') !== (domain !== undefined)) throw new LabError(what === 'qemu' ? 'kill qemu needs the domain' : `kill ${what} takes no domain`, 2);
        const r = what === 'agent' ? await killAgent(host) : what === 'libvirtd' ? await killLibvirtd(host) : await killQemu(host, domain!);
        if (wantsJson(cmd)) out(r);
        else console.log(`killed ${r.what}${r.domain ? ` of ${r.domain}` : ''} on host ${r.host} (pid ${r.pid})`);
      }),
    );

  const links = [
    { name: 'cut', description: 'cut the migration network between two hosts (nftables; agents and libvirt keep talking)', run: cutNetwork, done: (t: string) => `cut (nft table inet ${t})` },
    { name: 'restore', description: 'restore the migration network between two hosts', run: restoreNetwork, done: () => 'restored' },
  ] as const;
  for (const l of links) {
    lab
      .command(l.name)
      .description(l.description)
      .argument('<host>', 'lab host', hostOpt)
      .argument('<other>', 'the other lab host', hostOpt)
      .option('--json', 'print machine-readable JSON')
      .action(
        action(async (x: HostName, y: HostName, _o: unknown, cmd: Command) => {
          const r = await l.run(x, y);
          if (wantsJson(cmd)) out(r);
          else console.log(`migration network ${r.hosts.join('-')} ${l.done(r.table)}`);
        }),
      );
  }

  lab
    .command('shape')
    .description("cap a host's migration uplink: all its outgoing migration streams share <rate> (tc HTB on lo + nftables; one shaped host per lab)")
    .argument('<host>', 'lab host', hostOpt)
    .requiredOption('--rate <MiB/s>', 'uplink rate', (v: string) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('rate must be a positive number of MiB/s');
      return n;
    })
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (host: HostName, o: { rate: number }, cmd: Command) => {
        const r = await shapeUplink(host, o.rate);
        if (wantsJson(cmd)) out(r);
        else console.log(`uplink of ${host} shaped at ${r.rateMiB} MiB/s (tc class ${r.classId} on lo, nft table inet ${r.table})`);
      }),
    );

  lab
    .command('unshape')
    .description("take the cap off a host's migration uplink")
    .argument('<host>', 'lab host', hostOpt)
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (host: HostName, _o: unknown, cmd: Command) => {
        const r = await unshapeUplink(host);
        if (wantsJson(cmd)) out(r);
        else console.log(`uplink of ${host} unshaped`);
      }),
    );

  lab
    .command('procs')
    .description("each host's processes: libvirtd, agent, QEMU per domain (pids, alive)")
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (_o: unknown, cmd: Command) => {
        const r = await labProcesses();
        if (wantsJson(cmd)) out(r);
        else printProcesses(r);
      }),
    );

  lab
    .command('statedir')
    .description("fill the host agent's stateDir (its own tmpfs) so its writes fail with ENOSPC, or free it")
    .argument('<host>', 'lab host', hostOpt)
    .argument('<what>', 'fill | free', choice(['fill', 'free'] as const))
    .option('--json', 'print machine-readable JSON')
    .action(
      action(async (host: HostName, what: 'fill' | 'free', _o: unknown, cmd: Command) => {
        const r = what === 'fill' ? { host, filled: true, bytes: await fillStateDir(host) } : (await freeStateDir(host), { host, filled: false });
        if (wantsJson(cmd)) out(r);
        else console.log(`stateDir of host ${host} ${r.filled ? 'full' : 'freed'}`);
      }),
    );
}
