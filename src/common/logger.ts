// The daemon's logger: pino JSON lines. Under systemd each line goes to journald natively, so
// `journalctl -u vmigrated -p warning` and `journalctl VM_NAME=web1` work; elsewhere JSON on stdout.
// Conventional fields: vmId, vmName, migrationId, event (journal: VM_ID, VM_NAME, MIGRATION_ID, EVENT).
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import {
  JOURNAL_SOCKET,
  createJournalDestination,
  createPriorityPrefixDestination,
  stdoutIsJournal,
  type LineDestination,
} from './journal.js';
import { unixDgramAvailable } from './unix-dgram.js';

export type Logger = PinoLogger;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** auto: journal when stdout is systemd's journal stream, else stdout. */
export type LogTarget = 'auto' | 'journal' | 'stdout';

export interface LoggerOptions {
  level?: LogLevel;
  /** a target name, or any pino destination (tests) */
  destination?: LogTarget | DestinationStream;
  /** journald's native socket; default /run/systemd/journal/socket */
  journalSocket?: string;
  /** SYSLOG_IDENTIFIER; default vmigrated */
  identifier?: string;
  /** for JOURNAL_STREAM detection; default process.env */
  env?: NodeJS.ProcessEnv;
}

/** How lines leave the process: native journal datagrams, <N>-prefixed journal stream, or plain stdout. */
export type ResolvedLogTarget = 'journal' | 'journal-stream' | 'stdout';

export function resolveLogTarget(target: LogTarget, env: NodeJS.ProcessEnv = process.env): ResolvedLogTarget {
  const onJournal = stdoutIsJournal(env);
  if (target === 'stdout') return 'stdout';
  if (target === 'journal') return unixDgramAvailable() ? 'journal' : 'journal-stream';
  if (!onJournal) return 'stdout';
  return unixDgramAvailable() ? 'journal' : 'journal-stream';
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const dest = opts.destination ?? 'auto';
  const stream = typeof dest === 'string' ? buildDestination(dest, opts) : dest;
  return pino(
    {
      level: opts.level ?? 'info',
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    stream,
  );
}

function buildDestination(target: LogTarget, opts: LoggerOptions): DestinationStream {
  // sync: a line written just before a crash or exit is not lost
  const stdout: LineDestination = pino.destination({ dest: 1, sync: true });
  const env = opts.env ?? process.env;
  const prefixed = createPriorityPrefixDestination(stdout);
  switch (resolveLogTarget(target, env)) {
    case 'stdout':
      return stdout;
    case 'journal-stream':
      return prefixed;
    case 'journal':
      return createJournalDestination({
        socketPath: opts.journalSocket ?? JOURNAL_SOCKET,
        identifier: opts.identifier ?? 'vmigrated',
        fallback: stdoutIsJournal(env) ? prefixed : stdout,
      });
  }
}

export interface MigrationLogFields {
  vmId: string;
  vmName: string;
  migrationId: string;
}

/** The fields that tie a log line to a migration; use as `log.child(migrationFields(status))`. */
export function migrationFields(s: MigrationLogFields): MigrationLogFields {
  return { vmId: s.vmId, vmName: s.vmName, migrationId: s.migrationId };
}
