// "Is the stream moving at all?" A cut link or a hung destination moves no data: QEMU's byte counter
// stops. That is not the slow progress of a guest that does not converge (stall.ts): there data
// moves, it just never gets smaller. Pure: the caller keeps the record between samples.

export interface TransferWatch {
  /** the largest byte count seen (QEMU's "transferred" never goes back) */
  bytes: number;
  /** when it last grew, ms (the sample clock) */
  movedAt: number;
}

/** The record after a sample of `bytes` sent so far at time `t`. */
export function watchTransfer(prev: TransferWatch | null, bytes: number, t: number): TransferWatch {
  if (prev === null || bytes > prev.bytes) return { bytes, movedAt: t };
  return prev;
}

/** How long nothing has moved, ms. */
export function stalledForMs(w: TransferWatch, t: number): number {
  return Math.max(0, t - w.movedAt);
}

/** Nothing moved for `limitMs` or longer. */
export function isTransferStalled(w: TransferWatch, t: number, limitMs: number): boolean {
  return stalledForMs(w, t) >= limitMs;
}
