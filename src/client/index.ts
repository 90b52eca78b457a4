export { AgentClient, CallTimeout, RpcError, type Notification, type ConnectOptions } from './client.js';
export { readTlsPaths, TlsFileError, type TlsPaths, type TlsPem } from './tls.js';
export { ErrorCodes, type ErrorName } from '../api/errors.js';
export type * from '../api/params.js';
export type * from '../api/results.js';
export type * from '../api/admission.js';
export type * from '../api/estimate.js';
