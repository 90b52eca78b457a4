// Human-readable figures for the CLI.
import type { MigrationStatus } from '../api/results.js';

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(0)} MiB`;
}

export function mibps(bytesPerSec: number): string {
  return `${(bytesPerSec / 1048576).toFixed(1)} MiB/s`;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** One line describing a migration, for logs and non-terminal output. */
export function statusLine(s: MigrationStatus): string {
  const parts = [
    `${s.vmName}: ${s.state}`,
    `${s.progress}%`,
    `iter ${s.iteration}`,
    `remaining ${mib(s.dataRemaining)}`,
    `dirty ${mibps(s.dirtyRate)}`,
    `xfer ${mibps(s.transferRate)}`,
    `throttle ${s.throttlePercent}%`,
    seconds(s.elapsedMs),
  ];
  if (s.downtimeMs !== null) parts.push(`downtime ${s.downtimeMs} ms`);
  if (s.error) parts.push(`error ${s.error.name}: ${s.error.message}`);
  return parts.join('  ');
}
