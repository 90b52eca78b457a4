// The outer limits of every knob a request can set, in the policy schema and in the API alike:
// no request may stop a guest for long or hold it throttled for hours, whatever policy it names.

/** Longest downtime (guest paused for the switchover) any policy or request may allow, ms. */
export const MAX_DOWNTIME_MS = 10_000;

/** Throttle percentages QEMU accepts for auto-converge. */
export const MAX_THROTTLE_PERCENT = 99;

/** Bandwidth caps, MiB/s. */
export const MAX_BANDWIDTH_MIBPS = 1_000_000;

/** However large the guest, a migration is aborted after this long: a link that cannot move a
 *  guest within an hour will not, and the guest pays for every minute it is throttled. */
export const MAX_COMPLETION_TIMEOUT_SEC = 3600;
