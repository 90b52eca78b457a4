/** Error carrying the process exit code the CLI should use. */
export class LabError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'LabError';
  }
}

/** sysexits EX_NOPERM: the lab needs root for mount namespaces and bind mounts. */
export const EXIT_NOT_ROOT = 77;

export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new LabError(`${what} must run as root (mount namespaces, bind mounts, libvirtd)`, EXIT_NOT_ROOT);
  }
}
