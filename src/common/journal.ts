// journald's native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL): one datagram per entry made of
// KEY=value lines, or KEY\n<u64 LE length><bytes>\n for values that contain a newline.
// Sending natively keeps each pino field as a searchable journal field and sets PRIORITY per line.
import { fstatSync } from 'node:fs';
import { sendDatagram } from './unix-dgram.js';

export const JOURNAL_SOCKET = '/run/systemd/journal/socket';

/** syslog priority for a pino numeric level (fatal 60 -> 2 crit, ..., debug/trace -> 7). */
export function pinoLevelToPriority(level: number): number {
  if (level >= 60) return 2;
  if (level >= 50) return 3;
  if (level >= 40) return 4;
  if (level >= 30) return 6;
  return 7;
}

/**
 * Journal field name for a log key: camelCase -> CAMEL_CASE, other characters -> "_".
 * Names journald reserves or that we set ourselves get a VMIGRATE_ prefix so a log key can never
 * overwrite MESSAGE/PRIORITY or pose as a trusted field.
 */
export function journalFieldName(key: string): string {
  let name = key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()
    .replace(/[^A-Z0-9_]/g, '_');
  if (!/^[A-Z]/.test(name) || RESERVED.has(name) || name.startsWith('SYSLOG_') || name.startsWith('CODE_')) {
    name = `VMIGRATE_${name.replace(/^_+/, '')}`;
  }
  return name.slice(0, 64);
}

const RESERVED = new Set([
  'MESSAGE', 'MESSAGE_ID', 'PRIORITY', 'ERRNO', 'INVOCATION_ID', 'USER_INVOCATION_ID', 'UNIT',
  'USER_UNIT', 'OBJECT_PID', 'DOCUMENTATION', 'TID', 'VMIGRATE_JSON',
]);

export type JournalEntry = ReadonlyArray<readonly [string, string]>;

/** Serialises fields into one native-protocol datagram. */
export function encodeJournalEntry(fields: JournalEntry): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of fields) {
    if (!value.includes('\n')) {
      parts.push(Buffer.from(`${key}=${value}\n`, 'utf8'));
      continue;
    }
    const data = Buffer.from(value, 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(data.length));
    parts.push(Buffer.from(`${key}\n`, 'utf8'), len, data, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

// pino's own keys; everything else the caller logged becomes a journal field
const PINO_KEYS = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/** Journal fields for one pino JSON line; null if the line is not a JSON object. */
export function entryFromPinoLine(line: string, identifier: string): { priority: number; fields: JournalEntry } | null {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return null;
  const rec = obj as Record<string, unknown>;
  const priority = pinoLevelToPriority(typeof rec.level === 'number' ? rec.level : 30);
  const fields: [string, string][] = [
    ['MESSAGE', typeof rec.msg === 'string' ? rec.msg : String(rec.event ?? '')],
    ['PRIORITY', String(priority)],
    ['SYSLOG_IDENTIFIER', identifier],
  ];
  for (const [key, value] of Object.entries(rec)) {
    if (PINO_KEYS.has(key) || value === undefined || value === null) continue;
    if (key === 'err' && typeof value === 'object') {
      // pino's error serializer: {type, message, stack, ...}; the parts are what people search for
      const e = value as Record<string, unknown>;
      for (const part of ['type', 'message', 'stack', 'code'] as const) {
        if (e[part] !== undefined) fields.push([`ERR_${part.toUpperCase()}`, String(e[part])]);
      }
      continue;
    }
    fields.push([journalFieldName(key), typeof value === 'object' ? JSON.stringify(value) : String(value)]);
  }
  fields.push(['VMIGRATE_JSON', line.trimEnd()]);
  return { priority, fields };
}

/**
 * True when stdout is connected to journald: systemd sets JOURNAL_STREAM=<dev>:<inode> for the
 * stream it hands the service; comparing with fstat(fd) rules out an inherited variable.
 */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env, fd = 1): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}

/** The part of pino.DestinationStream we implement. */
export interface LineDestination {
  write(line: string): void;
}

export interface JournalDestinationOptions {
  socketPath?: string;
  identifier?: string;
  /** where a line goes when the journal refuses it (too big, journald down) */
  fallback: LineDestination;
}

/**
 * pino destination that files each line natively with journald; falls back per line, never drops.
 * Fallback cases: journald down or busy (EAGAIN), or an entry over the socket's send buffer (~200 KiB:
 * systemd passes those as a memfd, which the datagram addon cannot).
 */
export function createJournalDestination(opts: JournalDestinationOptions): LineDestination {
  const path = opts.socketPath ?? JOURNAL_SOCKET;
  const identifier = opts.identifier ?? 'vmigrated';
  return {
    write(line: string): void {
      const entry = entryFromPinoLine(line, identifier);
      if (entry && sendDatagram(path, encodeJournalEntry(entry.fields)) === null) return;
      opts.fallback.write(line);
    },
  };
}

/** pino destination for a journald stream (stdout): prefixes <N> so journald sets PRIORITY. */
export function createPriorityPrefixDestination(inner: LineDestination): LineDestination {
  return {
    write(line: string): void {
      const m = /"level":(\d+)/.exec(line);
      inner.write(`<${pinoLevelToPriority(m ? Number(m[1]) : 30)}>${line}`);
    },
  };
}
