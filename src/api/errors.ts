// Stable JSON-RPC error codes of the agent. Numbers and names never change once released;
// clients match on `code` (or `data.name`), the message is for people.

export const ErrorCodes = {
  INVALID_PARAMS: -32602,
  VM_NOT_FOUND: 1001,
  VM_NOT_RUNNING: 1002,
  MIGRATION_IN_PROGRESS: 1003,
  DESTINATION_UNREACHABLE: 1004,
  NO_MIGRATION: 1005,
  DESTINATION_REFUSED: 1006,
  TOO_MANY_MIGRATIONS: 1007,
  LIBVIRT_ERROR: 1008,
  SAME_HOST: 1009,
  NOT_CANCELLABLE: 1010,
  ABORTED_BY_POLICY: 1011,
  MIGRATION_FAILED: 1012,
  INVALID_POLICY: 1013,
  PERMISSION_DENIED: 1014,
  TOO_MANY_REQUESTS: 1015,
  STATE_WRITE_FAILED: 1016,
  MEASUREMENT_FAILED: 1017,
  NO_EVACUATION: 1018,
  EVACUATION_IN_PROGRESS: 1019,
  NO_DESTINATION: 1020,
} as const;

export type ErrorName = keyof typeof ErrorCodes;

/** An error that the JSON-RPC layer turns into {code, message, data: {name, ...details}}. */
/** How statuses record an error: an AgentError as it is, anything else under `fallback`. */
export function errorRecord(err: unknown, fallback: { code: number; name: string; message: string }): { code: number; name: string; message: string } {
  return err instanceof AgentError ? { code: err.code, name: err.errorName, message: err.message } : fallback;
}

export class AgentError extends Error {
  readonly code: number;
  readonly errorName: ErrorName;
  readonly details: Record<string, unknown>;
  constructor(name: ErrorName, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'AgentError';
    this.errorName = name;
    this.code = ErrorCodes[name];
    this.details = details;
  }
}
