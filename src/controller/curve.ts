// Guest speed vs throttle for the lab's rate-paced guests (1 TCG vCPU). Throttle p makes the vCPU
// sleep p % of the time; a guest paced to a dirty rate drops the time it slept, so its share is
// close to 1 - p/100, a little lower at the top. Shared by the controller (to predict dirtying under
// throttle) and the simulator (to model it).
//
// Calibrated on real QEMU 7.2 (docs/bench/, test/e2e/controller.test.ts). The earlier curve (docs/lab.md:
// 40 % -> 0.45, 60 % -> 0.32) predicted that a 100 MiB/s guest converges at 50 % over a 50 MiB/s link;
// on the lab it stalled there and went to post-copy, as this curve predicts. With it the simulator
// matches the lab's stock auto-converge runs: moderate 27.5 s / peak 70 % (lab 28.6 s / 70 %; old
// curve 22 s / 50 %), heavy 89 s / guest work 54 % (lab 87.3 s / 57 %; old curve 48 %).

/** [throttle %, share of unthrottled guest progress]; linear in between. */
export const SPEED_CURVE: ReadonlyArray<readonly [number, number]> = [
  [0, 1],
  [20, 0.8],
  [40, 0.6],
  [50, 0.5],
  [60, 0.4],
  [80, 0.22],
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
