// Errors raised by the libvirt binding. `code` is libvirt's virErrorNumber, `domain` its virErrorDomain.

/** virErrorNumber values the agent cares about (libvirt/virterror.h). */
export const ErrorCode = {
  OK: 0,
  INTERNAL_ERROR: 1,
  NO_MEMORY: 2,
  NO_SUPPORT: 3,
  NO_CONNECT: 5,
  INVALID_CONN: 6,
  INVALID_DOMAIN: 7,
  INVALID_ARG: 8,
  OPERATION_FAILED: 9,
  XML_ERROR: 27,
  DOM_EXIST: 28,
  OPERATION_DENIED: 29,
  SYSTEM_ERROR: 38,
  RPC: 39,
  NO_DOMAIN: 42,
  AUTH_FAILED: 45,
  OPERATION_INVALID: 55,
  CONFIG_UNSUPPORTED: 67,
  OPERATION_TIMEOUT: 68,
  MIGRATE_PERSIST_FAILED: 69,
  ARGUMENT_UNSUPPORTED: 74,
  OPERATION_ABORTED: 78,
  AUTH_CANCELLED: 79,
  MIGRATE_UNSAFE: 81,
  OPERATION_UNSUPPORTED: 84,
  AGENT_UNRESPONSIVE: 86,
  RESOURCE_BUSY: 87,
  ACCESS_DENIED: 88,
  CPU_INCOMPATIBLE: 91,
  MIGRATE_FINISH_OK: 93,
} as const;

/** virErrorDomain values (where the error was raised). */
export const ErrorDomain = {
  NONE: 0,
  RPC: 7,
  QEMU: 10,
  TEST: 12,
  REMOTE: 13,
  DOMAIN: 20,
  CAPABILITIES: 44,
} as const;

export class LibvirtError extends Error {
  override readonly name: string = 'LibvirtError';
  constructor(
    /** virErrorNumber */
    readonly code: number,
    /** virErrorDomain */
    readonly domain: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A QMP command answered with {"error": {...}}. libvirt reports such replies as success, so the
 * binding turns them into this error. `qmpClass`/`qmpDesc` are QEMU's error class and description.
 */
export class QemuMonitorError extends LibvirtError {
  override readonly name: string = 'QemuMonitorError';
  constructor(
    readonly qmpClass: string,
    readonly qmpDesc: string,
    readonly command: string,
    readonly reply: string,
  ) {
    super(ErrorCode.OPERATION_FAILED, ErrorDomain.QEMU, `QEMU monitor command failed: ${qmpClass}: ${qmpDesc}`);
  }
}

export function isLibvirtError(e: unknown): e is LibvirtError {
  return e instanceof LibvirtError;
}

/** libvirt's virErrorNumber of an error, read structurally (errors that crossed a process or module
 *  boundary may no longer be LibvirtError instances); undefined when it carries none. */
export function libvirtCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

const hasCode = (e: unknown, ...codes: number[]): boolean => isLibvirtError(e) && codes.includes(e.code);

/** VIR_ERR_NO_DOMAIN (42): the domain does not exist (on this host). */
export const isNoDomain = (e: unknown): boolean => libvirtCode(e) === ErrorCode.NO_DOMAIN;
/** The driver or hypervisor does not implement the call. */
export const isUnsupported = (e: unknown): boolean =>
  hasCode(e, ErrorCode.NO_SUPPORT, ErrorCode.OPERATION_UNSUPPORTED, ErrorCode.ARGUMENT_UNSUPPORTED);
/** VIR_ERR_INVALID_CONN (6): this binding's code for calls on a closed connection. */
export const isClosedConnection = (e: unknown): boolean => hasCode(e, ErrorCode.INVALID_CONN);

interface NativeErrorShape {
  isLibvirtError: true;
  code: number;
  domain: number;
  message: string;
}

function isNativeError(e: unknown): e is NativeErrorShape {
  return typeof e === 'object' && e !== null && (e as { isLibvirtError?: unknown }).isLibvirtError === true;
}

/** Converts an error thrown by the native addon; anything else (TypeError, ...) passes through. */
export function fromNative(e: unknown): unknown {
  if (e instanceof LibvirtError || !isNativeError(e)) return e;
  return new LibvirtError(e.code, e.domain, e.message);
}

/** The call failed because the connection to libvirtd (or libvirtd's own peer connection) went away:
 *  the libvirt job it was about may well live on. Code plus libvirt's wording, as libvirt reports
 *  a dropped socket as an internal or system error ("End of file", "client socket is closed"). */
export function isConnectionLost(e: unknown): boolean {
  const code = libvirtCode(e);
  if (code === ErrorCode.INVALID_CONN || code === ErrorCode.NO_CONNECT) return true;
  const msg = e instanceof Error ? e.message : '';
  return /end of file|client socket is closed|connection (is )?closed|disconnected|cannot recv data|broken pipe|connection reset/i.test(msg) &&
    (code === undefined || code === ErrorCode.INTERNAL_ERROR || code === ErrorCode.SYSTEM_ERROR || code === ErrorCode.RPC);
}
