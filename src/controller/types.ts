// Contract between the pure convergence controller and the migration runner that applies its actions.
// The controller owns the Policy details; the runner only needs Action.

/** QEMU migrate-set-parameters fields the controller may set (QMP names). */
export interface ThrottleParams {
  'cpu-throttle-initial'?: number;
  'cpu-throttle-increment'?: number;
  'max-cpu-throttle'?: number;
  'cpu-throttle-tailslow'?: boolean;
  'throttle-trigger-threshold'?: number;
}

export type Action =
  | { type: 'set-throttle'; params: ThrottleParams; reason: string }
  | { type: 'set-downtime'; ms: number; reason: string }
  | { type: 'set-bandwidth'; mibPerSec: number; reason: string }
  | { type: 'postcopy'; reason: string }
  | { type: 'abort'; reason: string };
