export * from './scenario.js';
export * from './engine.js';
export * from './simulate.js';
export * from './compare.js';
export { evaluateTrigger, type ThrottleKnobs, type TriggerState } from './qemu-throttle.js';
export * from './predict.js';
