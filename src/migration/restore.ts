// Putting parameters back on the QEMU that still holds the guest, and reading them back.
import type { Action } from '../controller/types.js';
import type { Domain } from '../libvirt/types.js';
import { applyAction } from './effects.js';
import { expectedParams, paramMismatches, parseMigrationParams, type QemuMigrationParams } from './params.js';

export async function readMigrationParams(domain: Domain): Promise<QemuMigrationParams> {
  return parseMigrationParams(await domain.qemuMonitorCommand(JSON.stringify({ execute: 'query-migrate-parameters' })));
}

export interface RestoreResult {
  /** null: nothing to restore */
  verified: boolean | null;
  /** what failed to apply or reads back different */
  problems: string[];
}

/** Apply the restoring actions one by one, then read QEMU's parameters back and compare. */
export async function restoreAndVerify(domain: Domain, actions: readonly Action[]): Promise<RestoreResult> {
  if (actions.length === 0) return { verified: null, problems: [] };
  const problems: string[] = [];
  for (const action of actions) {
    await applyAction(domain, action).catch((e: unknown) => problems.push(`${action.type}: ${e instanceof Error ? e.message : String(e)}`));
  }
  try {
    problems.push(...paramMismatches(expectedParams(actions), await readMigrationParams(domain)));
  } catch (e) {
    problems.push(`read back: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { verified: problems.length === 0, problems };
}
