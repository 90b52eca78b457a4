export * from './types.js';
export * from './policy.js';
export * from './curve.js';
export * from './controller.js';
export { isStalled, isTransferStalled } from './stall.js';
export { estimateDirty, passStartBytes, payloadRate, SATURATED_RATIO } from './estimate.js';
export { throttleNeeded, planThrottle, targetRatio } from './throttle.js';
export { escalate, downtimeSchedule, completionTimeoutMs } from './escalate.js';
