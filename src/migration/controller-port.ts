import type { Action } from '../controller/types.js';
import type { PolicyPatch } from '../controller/policy.js';
import type { MigrationSample } from './sample.js';

/** What a migration needs from a convergence controller (see src/controller/). */
export interface ControllerPort {
  observe(sample: MigrationSample): Action[];
  /** the runner could not apply this action: the controller rolls back its beliefs */
  rejected(action: Action): void;
  /** switch policy mid-flight (a whole policy, or fields over the current one); throws PolicyError;
   *  returns the actions to apply now. */
  changePolicy(next: PolicyPatch): Action[];
  /** the policy in force */
  policy(): { readonly name: string };
  /** actions that put back every parameter the controller changed */
  finish(): Action[];
}
