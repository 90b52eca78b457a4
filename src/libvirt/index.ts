export * from './types.js';
export * from './errors.js';
export { openConnection } from './binding.js';
export { measureDirtyRate, parseDirtyRate, DirtyRateError } from './dirty-rate.js';
export type { DirtyRate, MeasureDirtyRateOptions } from './dirty-rate.js';
