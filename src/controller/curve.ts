// The measured guest-speed-vs-throttle curve (lab notes, 1 TCG vCPU). Throttle p means the vCPU
// sleeps p % of the time, but the guest's measured progress share falls faster than 1 - p at high p.
// Shared by the controller (to predict dirtying under throttle) and the simulator (to model it).

/** [throttle %, share of unthrottled guest progress]; linear in between. */
export const SPEED_CURVE: ReadonlyArray<readonly [number, number]> = [
  [0, 1],
  [20, 0.79],
  [40, 0.45],
  [60, 0.32],
  [80, 0.25],
  [90, 0.11],
  [99, 0.005],
  [100, 0],
];

/** Share (0..1) of unthrottled guest progress, hence of its dirty rate, at throttle p %. */
export function speedShare(p: number): number {
  const x = Math.min(100, Math.max(0, p));
  for (let i = 1; i < SPEED_CURVE.length; i++) {
    const [p1, s1] = SPEED_CURVE[i] as readonly [number, number];
    if (x <= p1) {
      const [p0, s0] = SPEED_CURVE[i - 1] as readonly [number, number];
      return s0 + ((s1 - s0) * (x - p0)) / (p1 - p0);
    }
  }
  return 0;
}

/** Smallest integer throttle (0..99) whose share is at most `share`; 99 when none is. */
export function throttleForShare(share: number): number {
  for (let p = 0; p < 99; p++) if (speedShare(p) <= share) return p;
  return 99;
}
