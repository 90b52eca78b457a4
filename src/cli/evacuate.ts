// `vmigrate evacuate`: start an evacuation of the agent's host and, with --watch, follow it as a live
// table (a terminal) or one line per change (otherwise); `vmigrate evacuation status|cancel ID`.
import type { AgentClient } from '../client/client.js';
import type { EvacuationStatus, EvacuationVm } from '../api/evacuation.js';
import { seconds } from './format.js';

const pad = (s: string, n: number) => (s.length > n ? s.slice(0, n - 1) + '…' : s.padEnd(n));

function vmRow(v: EvacuationVm): string {
  const m = v.migration;
  const progress = v.state === 'migrating' && m ? `${m.progress}% it${m.iteration} thr ${m.throttlePercent}%` : v.state === 'done' && m ? `${seconds(m.elapsedMs)}${m.downtimeMs !== null ? ` dt ${m.downtimeMs} ms` : ''}` : '';
  const est = v.estimate ? `${v.estimate.timeSec} s/${v.estimate.guestWorkLostSec} s` : '-';
  const dst = v.destination ? v.destination.replace(/^wss?:\/\//, '') : '-';
  const tries = v.attempts.length > 1 ? ` (try ${v.attempts.length})` : '';
  return `${String(v.order).padStart(3)}  ${pad(v.vmName, 16)} ${pad(`${v.ramMiB} MiB`, 9)} ${pad(v.exclusive ? 'alone' : 'shared', 7)} ${pad(`${v.bandwidthMiBps ?? '-'}`, 6)} ${pad(est, 14)} ${pad(dst, 22)} ${pad(v.state + tries, 16)} ${progress}`;
}

/** The table `--watch` draws: a header with the totals, one row per VM in order, errors below. */
export function evacuationTable(s: EvacuationStatus): string[] {
  const t = s.totals;
  const lines = [
    `evacuation ${s.evacuationId}: ${s.state}  ${seconds(s.elapsedMs)} elapsed` +
      (s.predictedRemainingSec !== null && s.state === 'running' ? `, about ${s.predictedRemainingSec} s left` : '') +
      `  | ${t.done} done, ${t.running} running, ${t.remaining - t.running} waiting, ${t.failed} failed, ${t.cancelled} cancelled of ${t.vms}` +
      `  | ${s.bandwidthMiBps} MiB/s, up to ${s.maxParallel} at once, policy ${s.policy}`,
    `  #  ${pad('VM', 16)} ${pad('RAM', 9)} ${pad('link', 7)} ${pad('MiB/s', 6)} ${pad('pred. t/lost', 14)} ${pad('destination', 22)} ${pad('state', 16)} migration`,
    ...s.vms.map(vmRow),
  ];
  for (const d of s.destinations) if (d.state === 'unreachable') lines.push(`  skipped ${d.destination}: ${d.reason}`);
  for (const v of s.vms) if (v.error && v.state !== 'done') lines.push(`  ${v.vmName}: ${v.error.name}: ${v.error.message}`);
  if (s.error) lines.push(`  error ${s.error.name}: ${s.error.message}`);
  return lines;
}

/** One line per change, for logs and pipes. */
export function evacuationLine(s: EvacuationStatus): string {
  const t = s.totals;
  return `evacuation ${s.state}: ${t.done}/${t.vms} done, ${t.running} running, ${t.failed} failed, ${t.cancelled} cancelled, ${seconds(s.elapsedMs)}` +
    (s.predictedRemainingSec !== null && s.state === 'running' ? `, ~${s.predictedRemainingSec} s left` : '') +
    ` | ${s.vms.map((v) => `${v.vmName}:${v.state}${v.destination && v.state !== 'waiting' ? `@${v.destination.replace(/^wss?:\/\//, '')}` : ''}`).join(' ')}`;
}

export const evacuationSummary = (s: EvacuationStatus): string =>
  [...evacuationTable(s), ...s.vms.map((v) => `  ${v.order}. ${v.vmName}: ${v.orderReason}; ${v.placementReason}`)].join('\n');

/** Follows an evacuation to its end (notifications, and a poll so a missed one cannot hang it). */
export async function followEvacuation(client: AgentClient, evacuationId: string, opts: { table: boolean; quiet: boolean; pollMs?: number }): Promise<EvacuationStatus> {
  let drawn = 0;
  let lastLine = '';
  const show = (s: EvacuationStatus): void => {
    if (opts.quiet) return;
    if (opts.table) {
      const lines = evacuationTable(s);
      if (drawn) process.stdout.write(`\x1b[${drawn}A\x1b[J`); // redraw in place
      process.stdout.write(lines.join('\n') + '\n');
      drawn = lines.length;
    } else {
      const line = evacuationLine(s);
      if (line.replace(/[\d.]+ s/g, '') !== lastLine.replace(/[\d.]+ s/g, '')) console.log(line);
      lastLine = line;
    }
  };
  return new Promise<EvacuationStatus>((resolve, reject) => {
    let settled = false;
    const onStatus = (s: EvacuationStatus): void => {
      if (settled || s.evacuationId !== evacuationId) return;
      show(s);
      if (s.state !== 'planning' && s.state !== 'running') {
        settled = true;
        clearInterval(timer);
        resolve(s);
      }
    };
    client.on('notification', (n) => {
      if (n.method === 'evacuation.state') onStatus(n.params as EvacuationStatus);
    });
    client.on('close', () => {
      if (!settled) {
        settled = true;
        clearInterval(timer);
        reject(new Error('connection to the agent closed before the evacuation ended'));
      }
    });
    const poll = (): void => {
      client.evacuationStatus({ evacuationId }).then(onStatus, () => {});
    };
    const timer = setInterval(poll, opts.pollMs ?? 1000);
    void client.subscribe({ topics: ['evacuation.state'] }).then(poll, poll);
  });
}

