// Small JSON records in a state directory, shared by the migrations' ledger and the evacuations'
// store: written whole to a temporary file and renamed over the old one (a crash leaves either the
// previous record or the new one), and read back with anything unreadable set aside, not lost.
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes `value` as JSON to `target` atomically (mode 0600); rethrows, leaving no partial file. */
export function writeRecordFile(target: string, value: unknown): void {
  const tmp = `${target}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(value), { mode: 0o600 });
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** A file that could not be read as a record, renamed so that it is neither acted on nor lost. */
export interface SetAside {
  file: string;
  movedTo: string;
  reason: string;
}

export type RecordParse<T> = { ok: true; record: T } | { ok: false; reason: string };

/** The records of the files in `dir` whose names match `pattern` (in name order); a file that is no
 *  JSON or fails `parse` is renamed to `*.corrupt-<time>` and reported. */
export function readRecordFiles<T>(dir: string, pattern: RegExp, parse: (json: unknown) => RecordParse<T>): { records: T[]; setAside: SetAside[] } {
  const records: T[] = [];
  const setAside: SetAside[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!pattern.test(name)) continue;
    const file = join(dir, name);
    let reason: string;
    try {
      const parsed = parse(JSON.parse(readFileSync(file, 'utf8')));
      if (parsed.ok) {
        records.push(parsed.record);
        continue;
      }
      reason = parsed.reason;
    } catch (err) {
      reason = err instanceof Error ? err.message : String(err);
    }
    const movedTo = `${file}.corrupt-${Date.now()}`;
    renameSync(file, movedTo);
    setAside.push({ file, movedTo, reason });
  }
  return { records, setAside };
}
