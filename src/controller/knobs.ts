// QEMU's auto-converge throttle parameters under one name each, and their one conversion to QMP.
//
//   knob       QMP (migrate-set-parameters)   libvirt migrate param     VM.migrate
//   initial    cpu-throttle-initial           auto_converge.initial     autoConvergeInitial
//   increment  cpu-throttle-increment         auto_converge.increment   autoConvergeIncrement
//   max        max-cpu-throttle               -                         -
//   tailslow   cpu-throttle-tailslow          -                         -
//   threshold  throttle-trigger-threshold     -                         -
//
// `max` is what QEMU enforces; the policy's `maxThrottle` (VM.migrateChangeParams `maxThrottle`) is
// the ceiling the controller keeps `max` and `initial` under.
import type { ThrottleParams } from './types.js';

export interface ThrottleKnobs {
  /** throttle %, set when auto-converge first triggers */
  initial: number;
  /** % added at each later trigger */
  increment: number;
  /** the throttle QEMU never goes above, % */
  max: number;
  /** smaller increments near the end (QEMU's tailslow) */
  tailslow: boolean;
  /** QEMU triggers when the bytes dirtied in a period exceed this % of the bytes sent */
  threshold: number;
}

/** The knobs the controller steers (it never changes tailslow, only restores it). */
export type SteeredKnobs = Omit<ThrottleKnobs, 'tailslow'>;

const QMP_NAME = {
  initial: 'cpu-throttle-initial',
  increment: 'cpu-throttle-increment',
  max: 'max-cpu-throttle',
  tailslow: 'cpu-throttle-tailslow',
  threshold: 'throttle-trigger-threshold',
} as const satisfies Record<keyof ThrottleKnobs, keyof ThrottleParams>;

/** Every knob, in QMP's documentation order (the order restore actions list them). */
export const KNOBS = Object.keys(QMP_NAME) as (keyof ThrottleKnobs)[];

/** The QMP parameters for these knob values, in the order given; undefined values are left out. */
export function toQmpParams(knobs: Partial<ThrottleKnobs>): ThrottleParams {
  const params: Record<string, number | boolean> = {};
  for (const [knob, value] of Object.entries(knobs) as [keyof ThrottleKnobs, number | boolean | undefined][]) {
    if (value !== undefined) params[QMP_NAME[knob]] = value;
  }
  return params as ThrottleParams;
}

/** The knob values a set of QMP parameters sets. */
export function fromQmpParams(params: ThrottleParams): Partial<ThrottleKnobs> {
  const knobs: Partial<Record<keyof ThrottleKnobs, number | boolean>> = {};
  for (const knob of KNOBS) {
    const value = params[QMP_NAME[knob]];
    if (value !== undefined) knobs[knob] = value;
  }
  return knobs as Partial<ThrottleKnobs>;
}

/** libvirt's "unlimited" migration bandwidth, MiB/s */
export const UNLIMITED_BANDWIDTH_MIBPS = 8796093022207;

/** The migration parameters the controller may change, as QEMU holds them. */
export interface QemuParams {
  throttle: ThrottleKnobs;
  /** the downtime limit in force (libvirt's "max downtime"), ms */
  downtimeMs: number;
  bandwidthMiBps: number;
}

/** QEMU's and libvirt's defaults (QEMU 7.2). */
export const QEMU_DEFAULTS: Readonly<QemuParams> = {
  throttle: { initial: 20, increment: 10, max: 99, tailslow: false, threshold: 50 },
  downtimeMs: 300,
  bandwidthMiBps: UNLIMITED_BANDWIDTH_MIBPS,
};

/** Some of QEMU's parameters, known to differ from the defaults. */
export type KnownParams = Partial<Omit<QemuParams, 'throttle'>> & { throttle?: Partial<ThrottleKnobs> };

/** QEMU's parameters with some known to differ from the defaults. */
export function qemuParams(known: KnownParams = {}): QemuParams {
  const { throttle, ...limits } = known;
  return { ...QEMU_DEFAULTS, ...limits, throttle: { ...QEMU_DEFAULTS.throttle, ...throttle } };
}
