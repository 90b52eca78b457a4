// One WebSocket frame in, JSON-RPC 2.0 requests (or the error answers the spec asks for) out.
// Pure: no I/O. Everything a hostile client can send lands here first, so every check is explicit:
// size, UTF-8, JSON, depth, batch shape, envelope members; nothing reaches a verb unchecked.
import { JSONRPCErrorCode, createJSONRPCErrorResponse, type JSONRPCErrorResponse, type JSONRPCID } from 'json-rpc-2.0';

export interface FrameLimits {
  maxRequestBytes: number;
  maxBatch: number;
  /** deepest nesting of arrays/objects in one request */
  maxDepth: number;
}

/** A well-formed request; `id` undefined means a notification (no answer, even on error). */
export interface Call {
  id: JSONRPCID | undefined;
  method: string;
  params: unknown;
}

export type Item = { call: Call } | { reply: JSONRPCErrorResponse };

export type Decoded =
  /** answer with this single error (frame-level problem) */
  | { kind: 'reply'; reply: JSONRPCErrorResponse }
  | { kind: 'single'; item: Item }
  | { kind: 'batch'; items: Item[] };

const utf8 = new TextDecoder('utf-8', { fatal: true });

const invalid = (id: JSONRPCID, message: string): JSONRPCErrorResponse => createJSONRPCErrorResponse(id, JSONRPCErrorCode.InvalidRequest, message);

const isId = (v: unknown): v is JSONRPCID => typeof v === 'string' || v === null || (typeof v === 'number' && Number.isFinite(v));

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Nesting depth, iteratively: a recursive walk is itself a stack overflow waiting for deep input. */
export function depthExceeds(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (typeof child === 'object' && child !== null) stack.push([child, d + 1]);
  }
  return false;
}

/** One element of a batch, or the whole of a single request. */
export function checkRequest(value: unknown, limits: FrameLimits): Item {
  if (!isPlainObject(value)) return { reply: invalid(null, 'Invalid Request: a request must be a JSON object') };
  const hasId = Object.hasOwn(value, 'id');
  if (hasId && !isId(value.id)) return { reply: invalid(null, 'Invalid Request: id must be a string, a number or null') };
  const id: JSONRPCID = hasId ? (value.id as JSONRPCID) : null;
  if (value.jsonrpc !== '2.0') return { reply: invalid(id, 'Invalid Request: jsonrpc must be "2.0"') };
  if (typeof value.method !== 'string') return { reply: invalid(id, 'Invalid Request: method must be a string') };
  if (Object.hasOwn(value, 'result') || Object.hasOwn(value, 'error')) return { reply: invalid(id, 'Invalid Request: a request has no result or error member') };
  const params = value.params;
  if (Object.hasOwn(value, 'params') && (typeof params !== 'object' || params === null)) {
    return { reply: invalid(id, 'Invalid Request: params must be an object or an array') };
  }
  if (depthExceeds(params, limits.maxDepth)) return { reply: invalid(id, `Invalid Request: params nested deeper than ${limits.maxDepth} levels`) };
  return { call: { id: hasId ? id : undefined, method: value.method, params } };
}

export function decodeFrame(data: Buffer, limits: FrameLimits): Decoded {
  if (data.length > limits.maxRequestBytes) {
    return { kind: 'reply', reply: invalid(null, `Invalid Request: frame of ${data.length} bytes exceeds the limit of ${limits.maxRequestBytes}`) };
  }
  let text: string;
  try {
    text = utf8.decode(data);
  } catch {
    return { kind: 'reply', reply: createJSONRPCErrorResponse(null, JSONRPCErrorCode.ParseError, 'Parse error: the frame is not valid UTF-8') };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { kind: 'reply', reply: createJSONRPCErrorResponse(null, JSONRPCErrorCode.ParseError, `Parse error: ${(err as Error).message}`) };
  }
  if (!Array.isArray(value)) return { kind: 'single', item: checkRequest(value, limits) };
  if (value.length === 0) return { kind: 'reply', reply: invalid(null, 'Invalid Request: empty batch') };
  if (value.length > limits.maxBatch) {
    return { kind: 'reply', reply: invalid(null, `Invalid Request: batch of ${value.length} requests exceeds the limit of ${limits.maxBatch}`) };
  }
  return { kind: 'batch', items: value.map((v) => checkRequest(v, limits)) };
}
