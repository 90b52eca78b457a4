// A record on disk of the migrations this agent is running, one small file each, so that an agent
// restarted after a crash can re-attach to the migrations its predecessor left running (libvirt
// carries a peer-to-peer migration on without its client). Each record holds what is needed to go
// on: the plan the migration started with, and the controller's last snapshot.
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { readRecordFiles, writeRecordFile, type RecordParse, type SetAside } from '../common/record-files.js';
import { join } from 'node:path';
import { z } from 'zod';
import { ActionRecordSchema } from '../api/result-schemas.js';

const LEDGER_VERSION = 1;

/** What the migration was started with, enough to follow it and, where it ends badly, restore. */
export const LedgerPlanSchema = z.strictObject({
  /** what status shows */
  destination: z.string(),
  /** the destination agent's URL, to re-establish the admission; absent: a bare libvirt URI */
  destinationAgent: z.string().optional(),
  dconnuri: z.string(),
  flags: z.number().int(),
  /** libvirt's typed parameters (MigrateParams) */
  params: z.record(z.string(), z.union([z.string(), z.number()])),
  policyName: z.string(),
  /** the controller's policy as resolved at the start (opaque here, validated by the controller) */
  policy: z.unknown(),
  guestRamBytes: z.number().nonnegative(),
  postcopy: z.boolean(),
  /** set when no controller steers (stock policy) */
  completionTimeoutMs: z.number().positive().optional(),
});

export const LedgerEntrySchema = z.strictObject({
  version: z.literal(LEDGER_VERSION),
  migrationId: z.string().min(1),
  vmUuid: z.string().min(1),
  vmName: z.string().min(1),
  /** ISO time the migration was started (its job started just after) */
  startedAt: z.iso.datetime(),
  source: z.string(),
  plan: LedgerPlanSchema,
  /** the controller's memory at its last action or iteration boundary (opaque here); null: no controller */
  controller: z.unknown(),
  controllerSavedAt: z.iso.datetime().nullable(),
  /** what the status had shown, so that it goes on from there: progress never goes back, and the
   *  actions taken before a restart stay listed */
  progress: z.number().min(0).max(100).optional(),
  actions: z.array(ActionRecordSchema).optional(),
});

export type LedgerPlan = z.infer<typeof LedgerPlanSchema>;
export type LedgerEntry = z.infer<typeof LedgerEntrySchema>;
export type NewLedgerEntry = Omit<LedgerEntry, 'version'>;

/** A record that could not be written: the caller fails its request instead of running unrecorded. */
export class LedgerWriteError extends Error {
  constructor(
    readonly migrationId: string,
    cause: unknown,
  ) {
    super(`could not record migration ${migrationId} in the state directory: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'LedgerWriteError';
  }
}

export type { SetAside } from '../common/record-files.js';

const RECORD = /^migration-(.+)\.json$/;

export class MigrationLedger {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private path(migrationId: string): string {
    return join(this.dir, `migration-${migrationId}.json`);
  }

  /** Writes (or rewrites) a record atomically; throws LedgerWriteError and leaves no partial file. */
  record(entry: NewLedgerEntry): void {
    const full: LedgerEntry = LedgerEntrySchema.parse({ version: LEDGER_VERSION, ...entry });
    try {
      writeRecordFile(this.path(full.migrationId), full);
    } catch (err) {
      throw new LedgerWriteError(full.migrationId, err);
    }
  }

  remove(migrationId: string): void {
    rmSync(this.path(migrationId), { force: true });
  }

  /**
   * Everything recorded and not removed: at start-up, the previous agent's unfinished migrations.
   * Records that do not parse or fail the schema are renamed to `*.corrupt-<time>` and reported.
   */
  entries(): { entries: LedgerEntry[]; setAside: SetAside[] } {
    const { records, setAside } = readRecordFiles(this.dir, RECORD, (json): RecordParse<LedgerEntry> => {
      const parsed = LedgerEntrySchema.safeParse(json);
      return parsed.success ? { ok: true, record: parsed.data } : { ok: false, reason: parsed.error.issues.map((i) => `${i.path.join('.') || '(record)'}: ${i.message}`).join('; ') };
    });
    return { entries: records, setAside };
  }

  /** Removes `.tmp` files left by writes that never finished (call at start-up, under the state
   *  directory's lock, so no other process is writing); returns their names. */
  cleanStaleTmp(): string[] {
    const removed: string[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.tmp')) continue;
      rmSync(join(this.dir, name), { force: true });
      removed.push(name);
    }
    return removed;
  }
}
