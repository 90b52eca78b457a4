// A record on disk of the migrations this agent is running, one small file each, so that an agent
// restarted after a crash can find the migrations its predecessor left running (libvirt carries a
// peer-to-peer migration on without its client) and stop them.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

export interface LedgerEntry {
  migrationId: string;
  vmUuid: string;
  vmName: string;
  startedAt: string;
}

export class MigrationLedger {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private path(migrationId: string): string {
    return join(this.dir, `migration-${migrationId}.json`);
  }

  record(entry: LedgerEntry): void {
    const tmp = `${this.path(entry.migrationId)}.tmp`;
    writeFileSync(tmp, JSON.stringify(entry));
    renameSync(tmp, this.path(entry.migrationId));
  }

  remove(migrationId: string): void {
    rmSync(this.path(migrationId), { force: true });
  }

  /** Everything recorded and not removed: at start-up, the previous agent's unfinished migrations. */
  entries(): LedgerEntry[] {
    const out: LedgerEntry[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!/^migration-.*\.json$/.test(name)) continue;
      try {
        out.push(JSON.parse(readFileSync(join(this.dir, name), 'utf8')) as LedgerEntry);
      } catch {
        rmSync(join(this.dir, name), { force: true }); // a torn write from a crash: nothing to act on
      }
    }
    return out;
  }
}
