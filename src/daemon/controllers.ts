// TEMPORARY until the controller lands: every policy means QEMU's stock behaviour.
import type { ControllerFactory } from './context.js';

export function createControllerFactory(_defaultPolicy: unknown): ControllerFactory {
  return {
    names: () => ['stock'],
    resolve: () => ({ name: 'stock', allowPostcopy: false, policy: null }),
    create: () => null,
  };
}
