import type { Action } from '../controller/types.js';
import type { MigrationSample } from './sample.js';

/** What a migration needs from a convergence controller (see src/controller/). */
export interface ControllerPort {
  observe(sample: MigrationSample): Action[];
  /** the runner could not apply this action: the controller rolls back its beliefs */
  rejected(action: Action): void;
  /** actions that put back every parameter the controller changed */
  finish(): Action[];
}
