// TLS material of a client or an agent: the CA bundle that signs the other side, and our own
// certificate and key, read from PEM files.
import { readFileSync } from 'node:fs';

export interface TlsPaths {
  ca: string;
  cert: string;
  key: string;
}

export interface TlsPem {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export class TlsFileError extends Error {
  constructor(
    readonly which: keyof TlsPaths,
    readonly path: string,
    reason: string,
  ) {
    super(`TLS ${which} file ${path}: ${reason}`);
    this.name = 'TlsFileError';
  }
}

/** Reads the three PEM files; the error names the file that is missing or is not PEM. */
export function readTlsPaths(paths: TlsPaths): TlsPem {
  const read = (which: keyof TlsPaths): Buffer => {
    let data: Buffer;
    try {
      data = readFileSync(paths[which]);
    } catch (err) {
      throw new TlsFileError(which, paths[which], (err as NodeJS.ErrnoException).code ?? (err as Error).message);
    }
    if (!data.includes('-----BEGIN ')) throw new TlsFileError(which, paths[which], 'not a PEM file');
    return data;
  };
  return { ca: read('ca'), cert: read('cert'), key: read('key') };
}
