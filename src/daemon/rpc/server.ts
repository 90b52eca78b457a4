// JSON-RPC 2.0 over WebSocket: each connection gets the verbs, and may subscribe to notifications.
import type { AddressInfo } from 'node:net';
import { JSONRPCErrorException, JSONRPCServer, type JSONRPCResponse } from 'json-rpc-2.0';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { CATALOG, type VerbName } from '../../api/catalog.js';
import { AgentError, type ErrorName } from '../../api/errors.js';
import { parseParams } from '../../api/validate.js';
import type { Caller, Verbs } from '../verbs/types.js';

export interface RpcServer {
  port: number;
  /** send a notification to every connection subscribed to its topic */
  notify(topic: string, params: unknown): void;
  close(): Promise<void>;
}

// Refusals that tell an operator something about the hosts (limits, unreachable peers, libvirt)
// are warnings; a client's own mistake (bad params, unknown VM) is only information.
const OPERATOR_RELEVANT: ReadonlySet<ErrorName> = new Set(['TOO_MANY_MIGRATIONS', 'DESTINATION_UNREACHABLE', 'DESTINATION_REFUSED', 'LIBVIRT_ERROR']);

function toRpcError(err: unknown, log: Logger, method: string, params: unknown, onRefused?: RefusedHook): JSONRPCErrorException {
  if (err instanceof AgentError) {
    const vmId = (params as { vmId?: unknown } | null)?.vmId;
    const level = OPERATOR_RELEVANT.has(err.errorName) ? 'warn' : 'info';
    log[level]({ event: 'rpc.refused', method, code: err.code, error: err.errorName, ...(typeof vmId === 'string' ? { vmId } : {}), err: err.message }, `${method} refused: ${err.message}`);
    onRefused?.(method, err.errorName);
    return new JSONRPCErrorException(err.message, err.code, { name: err.errorName, ...err.details });
  }
  log.error({ event: 'rpc.internal_error', method, err: err instanceof Error ? err.stack : String(err) }, 'verb failed unexpectedly');
  return new JSONRPCErrorException(`internal error in ${method}: ${err instanceof Error ? err.message : String(err)}`, -32603, { name: 'INTERNAL_ERROR' });
}

export type RefusedHook = (verb: string, error: ErrorName) => void;

function buildServer(verbs: Verbs, log: Logger, onRefused?: RefusedHook): JSONRPCServer<Caller> {
  // errorListener: the library would print every refused request to stderr; we log them ourselves.
  const server = new JSONRPCServer<Caller>({ errorListener: () => {} });
  for (const name of Object.keys(verbs) as VerbName[]) {
    // One verb's implementation, seen through the catalog's schemas.
    const impl = verbs[name] as ((params: unknown, caller: Caller) => Promise<unknown>) | undefined;
    if (!impl) continue;
    server.addMethod(name, async (params, caller) => {
      try {
        return await impl(parseParams(CATALOG[name].params, params ?? {}, name), caller);
      } catch (err) {
        throw toRpcError(err, log, name, params, onRefused);
      }
    });
  }
  return server;
}

export function startRpcServer(opts: { host: string; port: number; verbs: Verbs; logger: Logger; onRefused?: RefusedHook }): Promise<RpcServer> {
  const log = opts.logger;
  const server = buildServer(opts.verbs, log, opts.onRefused);
  const subscriptions = new Map<WebSocket, Set<string>>();
  const wss = new WebSocketServer({ host: opts.host, port: opts.port, maxPayload: 1 << 20 });

  wss.on('connection', (ws) => {
    const caller: Caller = {
      subscribe: (topics) => subscriptions.set(ws, new Set(topics)),
      unsubscribe: () => subscriptions.delete(ws),
      onClose: (fn) => ws.once('close', fn),
    };
    ws.on('message', (data) => {
      void server.receiveJSON(String(data), caller).then((response: JSONRPCResponse | JSONRPCResponse[] | null) => {
        if (response !== null && ws.readyState === ws.OPEN) ws.send(JSON.stringify(response));
      });
    });
    ws.on('close', () => subscriptions.delete(ws));
    ws.on('error', (err) => log.debug({ event: 'rpc.socket_error', err: err.message }, 'client socket error'));
  });

  return new Promise((resolve, reject) => {
    wss.once('error', reject);
    wss.once('listening', () => {
      wss.off('error', reject);
      wss.on('error', (err) => log.error({ event: 'rpc.server_error', err: err.message }, 'RPC server error'));
      const port = (wss.address() as AddressInfo).port;
      resolve({
        port,
        notify(topic, params) {
          const text = JSON.stringify({ jsonrpc: '2.0', method: topic, params });
          for (const [ws, topics] of subscriptions) {
            if (topics.has(topic) && ws.readyState === ws.OPEN) ws.send(text);
          }
        },
        close: () =>
          new Promise<void>((done) => {
            for (const ws of wss.clients) ws.terminate();
            wss.close(() => done());
          }),
      });
    });
  });
}
