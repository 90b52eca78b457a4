export { AgentClient, RpcError, type Notification } from './client.js';
export { ErrorCodes, type ErrorName } from '../api/errors.js';
export type * from '../api/params.js';
export type * from '../api/results.js';
export type * from '../api/admission.js';
