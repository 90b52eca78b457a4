// The agent's own TLS material, read at start and again on SIGHUP, so certificates can be rotated
// without a restart: new connections (in and out) use the new files, open ones keep theirs.
import { readTlsPaths, type TlsPaths, type TlsPem } from '../../client/tls.js';

export class TlsStore {
  private pem: TlsPem;
  private readonly listeners: Array<(pem: TlsPem) => void> = [];

  constructor(readonly paths: TlsPaths) {
    this.pem = readTlsPaths(paths);
  }

  get current(): TlsPem {
    return this.pem;
  }

  /** Re-reads the files; on error the old material stays in force and the error is thrown. */
  reload(): void {
    this.pem = readTlsPaths(this.paths);
    for (const fn of this.listeners) fn(this.pem);
  }

  onReload(fn: (pem: TlsPem) => void): void {
    this.listeners.push(fn);
  }
}
