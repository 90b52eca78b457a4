export * from './types.js';
export * from './errors.js';
export { openConnection } from './binding.js';
