// A deliberately independent JSON-RPC 2.0 client (plain `ws`, hand-written frames): the e2e tests
// drive the agent the way any manager would, without the project's own client or CLI.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';

/** PEM paths of a client's TLS material. */
export interface ClientTlsPaths {
  ca: string;
  cert: string;
  key: string;
}

let labTls: ClientTlsPaths | null = null;

/** Use this lab's operator certificate from now on (what `labUp()` returned as `tls`). */
export function useClientTls(paths: ClientTlsPaths): void {
  labTls = paths;
}

/** The lab operator's certificate (role manager), as `vmigrate lab up` made it. */
export function operatorTlsPaths(): ClientTlsPaths {
  if (labTls) return labTls;
  const dir = join(process.env.VMIGRATE_LAB_DIR ?? '/tmp/vmigrate-lab', 'pki');
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'operator.pem'), key: join(dir, 'operator-key.pem') };
}

/** ws options for a wss:// agent: mutual TLS with these files (default: the lab operator's). */
export function tlsOptions(paths: ClientTlsPaths = operatorTlsPaths()): WebSocket.ClientOptions {
  return { ca: readFileSync(paths.ca), cert: readFileSync(paths.cert), key: readFileSync(paths.key) };
}

/** Options for `new WebSocket(url, ...)`: TLS material for wss:// URLs, none otherwise. */
export function wsOptions(url: string, paths?: ClientTlsPaths): WebSocket.ClientOptions {
  return url.startsWith('wss://') ? tlsOptions(paths) : {};
}

export interface RawError {
  code: number;
  message: string;
  data?: { name?: string; [k: string]: unknown };
}

export type RawReply = { result: unknown; error?: undefined } | { error: RawError; result?: undefined };

let nextId = 1;

export function rawCall(url: string, method: string, params: unknown, timeoutMs = 30_000, tls?: ClientTlsPaths): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, wsOptions(url, tls));
    const id = nextId++;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${method}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on('open', () => ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params })));
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: RawError };
      if (msg.id !== id) return;
      clearTimeout(timer);
      ws.close();
      resolve(msg.error ? { error: msg.error } : { result: msg.result });
    });
  });
}

/** Call and expect success. */
export async function call<T>(url: string, method: string, params: unknown = {}): Promise<T> {
  const reply = await rawCall(url, method, params);
  if (reply.error) throw new Error(`${method} failed: ${reply.error.code} ${reply.error.message}`);
  return reply.result as T;
}

/** Call and expect an error; returns it. */
export async function callError(url: string, method: string, params: unknown): Promise<RawError> {
  const reply = await rawCall(url, method, params);
  if (!reply.error) throw new Error(`${method} unexpectedly succeeded: ${JSON.stringify(reply.result)}`);
  return reply.error;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll fn until pred holds or the time runs out. */
export async function waitFor<T>(fn: () => Promise<T>, pred: (v: T) => boolean, timeoutMs: number, stepMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await fn();
  while (!pred(last)) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(last).slice(0, 400)}`);
    await sleep(stepMs);
    last = await fn();
  }
  return last;
}
