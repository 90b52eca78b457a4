// Hysteresis between "converges alone: hold" and "throttle" for a guest dirtying near the link rate,
// where one pass's evidence is noisy: a pass size misread at one boundary is misread the other way at
// the next (pass sizes telescope; in the simulator a 90 MiB/s guest over a 100 MiB/s link read 111
// saturated, then 60, 111, 59), and a guest sharing a loaded host's CPU or link drifts. Read pass by
// pass it is now saturated (throttle armed), now converging alone (held, the trigger disarmed), and
// QEMU, which applies an armed throttle only at its second high sync, never throttles: on the lab a
// guest at the link alternated "throttle 99 % armed" / "held" at five boundaries in a row.
// A first call from the passes against the measurement (which said the guest converges alone), after
// a short pass (SHORT_PASS_MS: its size rests on a sample or two), is not armed at once: the next pass
// must call too ('pending', then 'called'; a pass that does not call dismisses it). On a crowded lab host a pass misread once got a light guest and two moderate ones a
// 99 % throttle that QEMU applied before the next pass withdrew the call, and a throttle running is
// not steered down.
// A first call from the passes may still be released as before (a bursty guest's saturated pass, the
// next pass converging alone: it finishes unthrottled); called again after that release, the guest has
// shown it straddles the line, and the throttle stays armed until the passes converge alone at
// RELEASE_MARGIN times their rate. Pure.

/** Whether passes (from pass 2 on, over the measurement) called for a throttle in this migration:
 *  absent: never; 'pending': called once against the measurement, not armed; 'dismissed': the next
 *  pass did not call (as if never called); 'called': armed on their word; 'released': no longer
 *  called for since; 'sticky': called again after a release. */
export type PassCall = 'pending' | 'dismissed' | 'called' | 'released' | 'sticky';

/** A pass shorter than this spans at most two of the agent's 1 s samples: its size, and the dirty rate
 *  read from it, rest on where a boundary fell between two readings. A longer pass (a guest busy
 *  since it was measured, on a slow link) is believed at once. */
export const SHORT_PASS_MS = 2000;

/** A call from the passes now is withheld for confirmation: none stands, the pass that ended was
 *  short, and the measurement alone says the guest converges without a throttle. */
export function awaitsConfirmation(call: PassCall | undefined, measurementAlone: boolean, passMs: number): boolean {
  return measurementAlone && passMs < SHORT_PASS_MS && (call === undefined || call === 'dismissed');
}

/** A sticky call is released only by evidence that converges alone at this many times its rate: a
 *  guest gone quiet (QUIET_DROP in quiet.ts is the same factor) does, noise at the link does not. */
export const RELEASE_MARGIN = 2;

/** The factor the pass evidence is judged "alone" at. */
export function aloneMargin(call: PassCall | undefined): number {
  return call === 'sticky' ? RELEASE_MARGIN : 1;
}

/** The throttle armed stays armed (not steered down or held) unless this boundary releases it. */
export function keepsArmed(call: PassCall | undefined, hold: boolean): boolean {
  return call === 'sticky' && !hold;
}

/**
 * The state after a boundary with a measurement: `hold` judged (converges alone, or waiting for a
 * quiet spell), `calls` the passes call for a throttle there (never with `hold`). A first call that
 * the next passes no longer make (held, or no throttle needed) counts as released.
 */
export function nextPassCall(call: PassCall | undefined, hold: boolean, calls: boolean, withheld = false): PassCall | undefined {
  if (withheld) return 'pending';
  if (call === 'pending') return calls ? 'called' : 'dismissed';
  if (call === 'sticky') return hold ? 'released' : 'sticky';
  if (calls) return call === 'released' ? 'sticky' : 'called';
  return call === 'called' ? 'released' : call;
}
