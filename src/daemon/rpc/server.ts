// JSON-RPC 2.0 over WebSocket: a mutual-TLS endpoint (wss://) for managers, peers and readers, and
// an optional Unix socket (mode 0600) for tools on this host. Each connection carries its caller's
// identity; every frame is checked (frames.ts) before a verb sees it (dispatch.ts), and the limits
// below keep one client from exhausting the agent.
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createJSONRPCErrorResponse, type JSONRPCResponse } from 'json-rpc-2.0';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { ErrorCodes } from '../../api/errors.js';
import type { Role } from '../../api/roles.js';
import { rolesOf, subjectText, type RoleTable } from '../security/subject.js';
import type { TlsStore } from '../security/tls-store.js';
import type { Caller, Identity, Verbs } from '../verbs/types.js';
import { Dispatcher, type RefusedHook } from './dispatch.js';
import { decodeFrame, type FrameLimits, type Item } from './frames.js';

export type { RefusedHook } from './dispatch.js';

export interface RpcLimits {
  /** connections open at once (both endpoints); more are refused with HTTP 503 */
  maxConnections: number;
  /** requests of one connection being answered at once; more get TOO_MANY_REQUESTS */
  maxRequestsInFlight: number;
  /** requests in one batch */
  maxBatch: number;
  /** size of one frame that is read and answered; twice this closes the connection (1009) */
  maxRequestBytes: number;
  /** ping every connection this often; one that has not answered the previous ping is dropped (0 = off) */
  heartbeatMs: number;
  /** a subscriber with more than this many bytes of notifications unsent is dropped */
  maxSubscriberBufferBytes: number;
}

export interface RpcServerOptions {
  listen: { host: string; port: number };
  /** null: plain ws:// (allowed by the configuration only on loopback); every caller is a manager */
  tls: TlsStore | null;
  roles: RoleTable;
  /** path of the local endpoint (Unix socket, 0600), or null */
  localSocket: string | null;
  limits: RpcLimits;
  verbs: Verbs;
  logger: Logger;
  onRefused?: RefusedHook;
}

export interface RpcServer {
  port: number;
  /** the URL clients use: wss://host:port, or ws:// without TLS */
  url: string;
  /** send a notification to every connection subscribed to its topic */
  notify(topic: string, params: unknown): void;
  close(): Promise<void>;
}

/** Deepest nesting a request may have: our params are at most a few levels deep. */
const MAX_DEPTH = 32;

interface Connection {
  ws: WebSocket;
  caller: Caller;
  topics: Set<string> | null;
  inFlight: number;
  alive: boolean;
  closed: boolean;
  closeHooks: Array<() => void>;
}

const MANAGER: ReadonlySet<Role> = new Set<Role>(['manager']);

function refuseUpgrade(socket: Socket, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(reason)}\r\n\r\n${reason}`);
}

function listening(server: HttpServer, where: { port: number; host: string } | string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (typeof where === 'string') server.listen(where, done);
    else server.listen(where.port, where.host, done);
  });
}

/** A socket left by a previous agent is replaced; anything else at that path is an error. */
async function clearSocketPath(path: string): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (!st) return;
  if (!st.isSocket()) throw new Error(`localSocket ${path} exists and is not a socket`);
  await unlink(path);
}

export async function startRpcServer(opts: RpcServerOptions): Promise<RpcServer> {
  const log = opts.logger;
  const { limits } = opts;
  const dispatcher = new Dispatcher(opts.verbs, log, opts.onRefused);
  const frameLimits: FrameLimits = { maxRequestBytes: limits.maxRequestBytes, maxBatch: limits.maxBatch, maxDepth: MAX_DEPTH };
  const connections = new Set<Connection>();
  let upgrading = 0;
  // Frames up to twice the request limit are read and answered with an error; larger ones close
  // the connection (1009) without being buffered.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 2 * limits.maxRequestBytes, skipUTF8Validation: true, perMessageDeflate: false });

  const send = (conn: Connection, payload: JSONRPCResponse | JSONRPCResponse[]): void => {
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(JSON.stringify(payload));
  };

  const answer = async (conn: Connection, item: Item): Promise<JSONRPCResponse | null> => {
    if ('reply' in item) return item.reply;
    const { call } = item;
    // an unknown method costs nothing: it gets its -32601 whatever else is in flight
    if (!dispatcher.knows(call.method)) return dispatcher.dispatch(call, conn.caller);
    if (conn.inFlight >= limits.maxRequestsInFlight) {
      const message = `too many requests in flight on this connection (limit ${limits.maxRequestsInFlight})`;
      return call.id === undefined ? null : createJSONRPCErrorResponse(call.id, ErrorCodes.TOO_MANY_REQUESTS, message, { name: 'TOO_MANY_REQUESTS' });
    }
    conn.inFlight += 1;
    try {
      return await dispatcher.dispatch(call, conn.caller);
    } finally {
      conn.inFlight -= 1;
    }
  };

  const onFrame = async (conn: Connection, data: Buffer): Promise<void> => {
    const decoded = decodeFrame(data, frameLimits);
    if (decoded.kind === 'reply') return send(conn, decoded.reply);
    if (decoded.kind === 'single') {
      const reply = await answer(conn, decoded.item);
      if (reply) send(conn, reply);
      return;
    }
    const replies = (await Promise.all(decoded.items.map((item) => answer(conn, item)))).filter((r): r is JSONRPCResponse => r !== null);
    if (replies.length) send(conn, replies);
  };

  const attach = (ws: WebSocket, identity: Identity, remote: string): void => {
    const conn: Connection = {
      ws,
      topics: null,
      inFlight: 0,
      alive: true,
      closed: false,
      closeHooks: [],
      caller: {
        identity,
        subscribe: (topics) => void (conn.topics = new Set(topics)),
        unsubscribe: () => void (conn.topics = null),
        onClose: (fn) => (conn.closed ? fn() : void conn.closeHooks.push(fn)),
      },
    };
    connections.add(conn);
    log.debug({ event: 'rpc.connected', caller: identity.name, roles: [...identity.roles], remote }, `connection from ${identity.name}`);
    ws.on('message', (data: Buffer) => {
      onFrame(conn, data).catch((err: unknown) => log.error({ event: 'rpc.internal_error', caller: identity.name, err: err instanceof Error ? err.stack : String(err) }, 'frame handling failed'));
    });
    ws.on('pong', () => void (conn.alive = true));
    ws.on('close', () => {
      conn.closed = true;
      connections.delete(conn);
      for (const hook of conn.closeHooks.splice(0)) {
        try {
          hook();
        } catch (err) {
          log.error({ event: 'rpc.internal_error', err: err instanceof Error ? err.stack : String(err) }, 'close hook failed');
        }
      }
    });
    ws.on('error', (err) => log.debug({ event: 'rpc.socket_error', caller: identity.name, err: err.message }, 'client socket error'));
  };

  const onUpgrade = (identityOf: (req: IncomingMessage) => Identity) => (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    // A browser always sends Origin; our clients never do. Refusing it keeps web pages out even
    // on the plain loopback endpoint.
    if (req.headers.origin !== undefined) return refuseUpgrade(socket, 403, 'Forbidden: browser origins are not allowed');
    if (connections.size + upgrading >= limits.maxConnections) {
      log.warn({ event: 'rpc.connection_refused', limit: limits.maxConnections }, `connection refused: ${limits.maxConnections} connections already open`);
      return refuseUpgrade(socket, 503, 'Service Unavailable: too many connections');
    }
    // counted until attached, or until a bad handshake (answered by ws without calling back) closes it
    upgrading += 1;
    let counted = true;
    const release = (): void => {
      if (counted) upgrading -= 1;
      counted = false;
    };
    socket.once('close', release);
    wss.handleUpgrade(req, socket, head, (ws) => {
      release();
      attach(ws, identityOf(req), req.socket.remoteAddress ?? 'local');
    });
  };

  const notWebSocket = (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(426, { 'Content-Type': 'text/plain', Connection: 'close' }).end('vmigrated JSON-RPC endpoint: connect with a WebSocket client\n');
  };

  // The network endpoint.
  let main: HttpServer;
  let identityOf: (req: IncomingMessage) => Identity;
  const tls = opts.tls;
  if (tls) {
    const https = createHttpsServer({ ...tls.current, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, notWebSocket);
    tls.onReload((pem) => https.setSecureContext({ ...pem, minVersion: 'TLSv1.2' }));
    https.on('tlsClientError', (err) => log.debug({ event: 'rpc.tls_refused', err: err.message }, 'TLS handshake refused'));
    main = https;
    identityOf = (req) => {
      const cert = (req.socket as TLSSocket).getPeerCertificate();
      const subject = cert.subject ?? {};
      return { name: subjectText(subject) || `certificate ${cert.fingerprint256}`, roles: rolesOf(subject, opts.roles) };
    };
  } else {
    main = createHttpServer(notWebSocket);
    identityOf = (req) => ({ name: `loopback ${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? ''} (no TLS)`, roles: MANAGER });
  }
  main.on('upgrade', onUpgrade(identityOf));
  await listening(main, opts.listen);
  const port = (main.address() as AddressInfo).port;
  main.on('error', (err) => log.error({ event: 'rpc.server_error', err: err.message }, 'RPC server error'));

  // The local endpoint: whoever can open a 0600 socket owned by the agent's user is that user.
  let local: HttpServer | null = null;
  if (opts.localSocket) {
    const path = opts.localSocket;
    local = createHttpServer(notWebSocket);
    local.on('upgrade', onUpgrade(() => ({ name: 'local socket', roles: MANAGER })));
    await clearSocketPath(path);
    const umask = process.umask(0o177); // no window in which the socket is open to others
    try {
      await listening(local, path);
    } finally {
      process.umask(umask);
    }
    await chmod(path, 0o600);
  }

  const heartbeat = limits.heartbeatMs > 0 ? setInterval(() => {
    for (const conn of connections) {
      if (!conn.alive) {
        log.info({ event: 'rpc.heartbeat_lost', caller: conn.caller.identity.name }, `dropping ${conn.caller.identity.name}: no answer to the last ping`);
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      conn.ws.ping();
    }
  }, limits.heartbeatMs) : null;
  heartbeat?.unref();

  const scheme = tls ? 'wss' : 'ws';
  const host = opts.listen.host.includes(':') ? `[${opts.listen.host}]` : opts.listen.host;
  return {
    port,
    url: `${scheme}://${host}:${port}`,
    notify(topic, params) {
      let text: string | undefined;
      for (const conn of connections) {
        if (!conn.topics?.has(topic) || conn.ws.readyState !== conn.ws.OPEN) continue;
        if (conn.ws.bufferedAmount > limits.maxSubscriberBufferBytes) {
          log.warn(
            { event: 'rpc.subscriber_dropped', caller: conn.caller.identity.name, buffered: conn.ws.bufferedAmount, limit: limits.maxSubscriberBufferBytes },
            `dropping subscriber ${conn.caller.identity.name}: ${conn.ws.bufferedAmount} bytes of notifications unread`,
          );
          conn.ws.terminate();
          continue;
        }
        text ??= JSON.stringify({ jsonrpc: '2.0', method: topic, params });
        conn.ws.send(text);
      }
    },
    async close() {
      if (heartbeat) clearInterval(heartbeat);
      for (const conn of connections) conn.ws.terminate();
      await new Promise<void>((done) => wss.close(() => done()));
      await Promise.all([main, local].map((s) => (s ? new Promise<void>((done) => s.close(() => done())) : undefined)));
      if (opts.localSocket) await unlink(opts.localSocket).catch(() => undefined);
    },
  };
}
