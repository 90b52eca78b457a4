// Follows a migration to its end: live progress bar on a terminal, plain lines otherwise.
import cliProgress from 'cli-progress';
import type { AgentClient } from '../client/client.js';
import { isMigrationActive, type MigrationStatus } from '../api/results.js';
import { mib, mibps, statusLine } from './format.js';

function isStatusFor(params: unknown, migrationId: string): params is MigrationStatus {
  return typeof params === 'object' && params !== null && (params as { migrationId?: unknown }).migrationId === migrationId;
}

export interface FollowOptions {
  /** draw a progress bar (a terminal) or print lines */
  bar: boolean;
  /** print nothing while following */
  quiet: boolean;
  pollMs?: number;
}

/**
 * Subscribe to the agent's notifications and also poll (a missed notification must not hang the CLI).
 * Resolves with the final status.
 */
export async function followMigration(client: AgentClient, vmId: string, migrationId: string, opts: FollowOptions): Promise<MigrationStatus> {
  const bar = opts.bar && !opts.quiet
    ? new cliProgress.SingleBar(
        { format: '{vm} [{bar}] {percentage}% | iter {iter} | left {left} | dirty {dirty} | xfer {xfer} | throttle {throttle}% | {state}', hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : null;
  let lastLine = 0;
  const show = (s: MigrationStatus): void => {
    if (opts.quiet) return;
    if (bar) {
      bar.update(s.progress, { vm: s.vmName, iter: s.iteration, left: mib(s.dataRemaining), dirty: mibps(s.dirtyRate), xfer: mibps(s.transferRate), throttle: s.throttlePercent, state: s.state });
    } else if (Date.now() - lastLine >= 1000 || !isMigrationActive(s.state)) {
      lastLine = Date.now();
      console.log(statusLine(s));
    }
  };
  bar?.start(100, 0, { vm: vmId, iter: 0, left: '-', dirty: '-', xfer: '-', throttle: 0, state: 'pending' });

  return new Promise<MigrationStatus>((resolve, reject) => {
    let settled = false;
    const finish = (s: MigrationStatus): void => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      show(s);
      bar?.stop();
      resolve(s);
    };
    const onStatus = (s: MigrationStatus): void => {
      if (settled) return;
      if (!isMigrationActive(s.state)) finish(s);
      else show(s);
    };
    client.on('notification', (n) => {
      if (isStatusFor(n.params, migrationId)) onStatus(n.params);
    });
    client.on('close', () => {
      if (!settled) {
        settled = true;
        bar?.stop();
        reject(new Error('connection to the agent closed before the migration ended'));
      }
    });
    const poll = (): void => {
      client.migrateStatus({ vmId }).then((s) => {
        if (s.migrationId === migrationId) onStatus(s);
      }, () => {});
    };
    const timer = setInterval(poll, opts.pollMs ?? 2000);
    void client.subscribe({ topics: ['migration.state', 'migration.progress'] }).then(poll, poll);
  });
}
