// The evacuations' records in the agent's state directory, one small file each
// (evacuation-<id>.json beside the migrations' ledger), written whole to a temporary file and
// renamed over the old one, so that a crash leaves either the previous record or the new one.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../api/errors.js';
import { parseRecord, type EvacuationRecord } from './record.js';

const FILE = /^evacuation-(.+)\.json$/;

export class EvacuationStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private path(evacuationId: string): string {
    return join(this.dir, `evacuation-${evacuationId}.json`);
  }

  /** Writes (or rewrites) the record atomically; throws STATE_WRITE_FAILED, leaving the previous one, when it cannot. */
  save(record: EvacuationRecord): void {
    const target = this.path(record.evacuationId);
    const tmp = `${target}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(record), { mode: 0o600 });
      renameSync(tmp, target);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new AgentError('STATE_WRITE_FAILED', `could not record evacuation ${record.evacuationId} in the state directory: ${err instanceof Error ? err.message : String(err)}`, { evacuationId: record.evacuationId });
    }
  }

  remove(evacuationId: string): void {
    rmSync(this.path(evacuationId), { force: true });
  }

  /** Every record, oldest first; a file that is not one is renamed to `*.corrupt-<time>` and reported.
   *  (Unfinished `.tmp` writes are removed at start-up with the ledger's.) */
  load(): { records: EvacuationRecord[]; setAside: { file: string; movedTo: string; reason: string }[] } {
    const records: EvacuationRecord[] = [];
    const setAside: { file: string; movedTo: string; reason: string }[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!FILE.test(name)) continue;
      const file = join(this.dir, name);
      let reason: string;
      try {
        const parsed = parseRecord(JSON.parse(readFileSync(file, 'utf8')));
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
    records.sort((a, b) => Date.parse(a.status.startedAt) - Date.parse(b.status.startedAt));
    return { records, setAside };
  }
}
