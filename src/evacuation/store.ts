// The evacuations' records in the agent's state directory, one small file each
// (evacuation-<id>.json beside the migrations' ledger), written whole to a temporary file and
// renamed over the old one, so that a crash leaves either the previous record or the new one.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../api/errors.js';
import { readRecordFiles, writeRecordFile, type SetAside } from '../common/record-files.js';
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
    try {
      writeRecordFile(this.path(record.evacuationId), record);
    } catch (err) {
      throw new AgentError('STATE_WRITE_FAILED', `could not record evacuation ${record.evacuationId} in the state directory: ${err instanceof Error ? err.message : String(err)}`, { evacuationId: record.evacuationId });
    }
  }

  remove(evacuationId: string): void {
    rmSync(this.path(evacuationId), { force: true });
  }

  /** Every record, oldest first; a file that is not one is renamed to `*.corrupt-<time>` and reported.
   *  (Unfinished `.tmp` writes are removed at start-up with the ledger's.) */
  load(): { records: EvacuationRecord[]; setAside: SetAside[] } {
    const { records, setAside } = readRecordFiles(this.dir, FILE, parseRecord);
    records.sort((x, y) => Date.parse(x.status.startedAt) - Date.parse(y.status.startedAt));
    return { records, setAside };
  }
}
