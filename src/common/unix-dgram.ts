// Unix datagram sockets for journald's native protocol and sd_notify. Node has none, so this wraps
// the native `unix-dgram` package, loaded lazily: if it failed to build, callers fall back to stdout.
import { createRequire } from 'node:module';

interface NativeSocket {
  bind(path: string): void;
  send(buf: Buffer, offset: number, length: number, path: string, cb: (err?: Error) => void): void;
  close(): void;
  on(event: 'message', listener: (buf: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

interface UnixDgramModule {
  createSocket(type: 'unix_dgram'): NativeSocket;
}

let loaded: UnixDgramModule | null | undefined;

function load(): UnixDgramModule | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('unix-dgram') as UnixDgramModule;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

/** True when datagrams can be sent (the native addon loaded). */
export function unixDgramAvailable(): boolean {
  return load() !== null;
}

/**
 * Sends one datagram to a filesystem socket path, synchronously (so nothing is lost on exit).
 * Returns null on success, else the errno name-ish code (e.g. "EMSGSIZE", "ENOENT", "ENOTSUP").
 * A socket per send: the addon's socket holds a ref'd libuv handle that would keep the process alive.
 */
export function sendDatagram(path: string, data: Buffer): string | null {
  const mod = load();
  if (!mod) return 'ENOTSUP';
  if (path.startsWith('@')) return 'ENOTSUP'; // the addon cannot address abstract sockets
  let sock: NativeSocket;
  try {
    sock = mod.createSocket('unix_dgram');
  } catch (err) {
    return errnoName(err);
  }
  let result: string | null = 'EUNKNOWN';
  sock.on('error', () => undefined);
  // the addon calls back synchronously
  sock.send(data, 0, data.length, path, (err) => {
    result = err ? errnoName(err) : null;
  });
  sock.close();
  return result;
}

const ERRNO: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 11: 'EAGAIN', 13: 'EACCES', 90: 'EMSGSIZE', 105: 'ENOBUFS',
  111: 'ECONNREFUSED',
};

function errnoName(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'number') return ERRNO[-code] ?? `E${-code}`;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

export interface DatagramReceiver {
  close(): void;
}

/** Binds a datagram socket at `path` (tests, and anything that plays systemd's part). */
export function receiveDatagrams(path: string, onMessage: (buf: Buffer) => void): DatagramReceiver {
  const mod = load();
  if (!mod) throw new Error('unix-dgram native addon is not available');
  const sock = mod.createSocket('unix_dgram');
  let bindError: Error | undefined;
  sock.on('error', (err) => {
    bindError = err;
  });
  sock.on('message', onMessage);
  sock.bind(path);
  if (bindError) {
    sock.close();
    throw bindError;
  }
  return { close: () => sock.close() };
}
