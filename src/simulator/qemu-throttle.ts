// QEMU 7.2's auto-converge (migration/ram.c: migration_trigger_throttle, mig_throttle_guest_down),
// evaluated at a bitmap sync whose period is over 1 s. Parameters are read at trigger time, which is
// why migrate-set-parameters changes show up only at the next trigger.
import type { ThrottleKnobs } from '../controller/knobs.js';

export type { ThrottleKnobs };

export interface TriggerState {
  /** dirty_rate_high_cnt */
  highCount: number;
  /** current throttle %, 0 when inactive */
  throttle: number;
}

const clamp = (p: number): number => Math.min(99, Math.max(1, p));

/** One sync period's evaluation. Returns the new state (throttle unchanged unless it triggered). */
export function evaluateTrigger(
  st: TriggerState,
  k: ThrottleKnobs,
  bytesDirtyPeriod: number,
  bytesXferPeriod: number,
): TriggerState {
  const thresholdBytes = (bytesXferPeriod * k.threshold) / 100;
  if (!(bytesDirtyPeriod > thresholdBytes)) return st;
  const highCount = st.highCount + 1; // ++cnt >= 2: every second high period triggers
  if (highCount < 2) return { ...st, highCount };
  return { highCount: 0, throttle: throttleDown(st.throttle, k, bytesDirtyPeriod, thresholdBytes) };
}

function throttleDown(now: number, k: ThrottleKnobs, dirty: number, threshold: number): number {
  if (now <= 0) return clamp(k.initial); // initial is not capped by max in QEMU
  let inc = k.increment;
  if (k.tailslow) {
    const cpuNow = 100 - now;
    const cpuIdeal = Math.floor(cpuNow * (threshold / dirty)); // uint64 in QEMU
    inc = Math.min(cpuNow - cpuIdeal, k.increment);
  }
  return clamp(Math.min(now + inc, k.max));
}
