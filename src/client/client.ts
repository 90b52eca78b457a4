// Typed JSON-RPC client of a vmigrated agent over WebSocket. The CLI uses it, and so does an agent
// when it asks a destination agent to admit a migration.
import type { EvacuateParams, EvacuationStatus } from '../api/evacuation.js';
import { EventEmitter } from 'node:events';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { JSONRPCClient, createJSONRPCErrorResponse, type JSONRPCResponse } from 'json-rpc-2.0';
import WebSocket from 'ws';
import { readTlsPaths, type TlsPaths, type TlsPem } from './tls.js';
import type { MigrateParams, SubscribeParams, VmRef } from '../api/params.js';
import type {
  Capabilities,
  MigrateResult,
  MigrationStatus,
  PingResult,
  VmSummary,
} from '../api/results.js';
import type { AdmissionRequest, AdmissionResult } from '../api/admission.js';
import type { ChangeParams } from '../api/params.js';
import type { EstimateParams, EstimateResult } from '../api/estimate.js';

/** A JSON-RPC error answer from the agent: `code` and `name` are stable, see src/api/errors.ts. */
export class RpcError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(message: string, code: number, data: unknown) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.data = data;
  }
  /** the stable error name, e.g. "VM_NOT_FOUND", when the agent sent one */
  get errorName(): string | undefined {
    const d = this.data as { name?: unknown } | undefined;
    return typeof d?.name === 'string' ? d.name : undefined;
  }
}

/** No answer within the call timeout: the agent is slow, hung or not speaking JSON-RPC. */
export class CallTimeout extends Error {
  constructor(method: string, url: string, ms: number) {
    super(`${method} on ${url}: no answer within ${ms} ms`);
    this.name = 'CallTimeout';
  }
}

export interface ConnectOptions {
  timeoutMs?: number;
  callTimeoutMs?: number;
  /** CA bundle, client certificate and key, for a wss:// agent (mutual TLS) */
  tls?: TlsPem;
  /** the same as PEM file paths (what the CLI's --ca/--cert/--key name) */
  tlsFiles?: TlsPaths;
  /** after the usual host name check: return an Error to refuse the agent's certificate */
  checkServer?: (cert: PeerCertificate) => Error | undefined;
  /** largest frame accepted from the agent (default 16 MiB) */
  maxPayload?: number;
}

/** A JSON-RPC 2.0 response with the right member types; anything else is not passed on. */
function isResponse(v: object): v is JSONRPCResponse {
  const r = v as { jsonrpc?: unknown; id?: unknown; result?: unknown; error?: unknown };
  if (r.jsonrpc !== '2.0' || !(typeof r.id === 'number' || typeof r.id === 'string')) return false;
  if (r.error === undefined) return Object.hasOwn(v, 'result');
  const e = r.error as { code?: unknown; message?: unknown } | null;
  return typeof e === 'object' && e !== null && typeof e.code === 'number' && typeof e.message === 'string';
}

function serverCheck(extra?: (cert: PeerCertificate) => Error | undefined) {
  return (host: string, cert: PeerCertificate): Error | undefined => checkServerIdentity(host, cert) ?? extra?.(cert);
}

export interface Notification {
  method: string;
  params: unknown;
}

interface ClientEvents {
  notification: [Notification];
  close: [];
}

export class AgentClient extends EventEmitter<ClientEvents> {
  private readonly rpc: JSONRPCClient;

  private constructor(private readonly ws: WebSocket, readonly url: string, timeoutMs: number) {
    super();
    const base = new JSONRPCClient((request) => {
      if (ws.readyState !== WebSocket.OPEN) throw new Error(`connection to ${url} is closed`);
      ws.send(JSON.stringify(request));
    });
    this.rpc = base;
    this.callTimeoutMs = timeoutMs;
    ws.on('message', (data) => this.receive(String(data)));
    ws.on('close', () => {
      base.rejectAllPendingRequests(`connection to ${url} closed`);
      this.emit('close');
    });
  }

  private readonly callTimeoutMs: number;

  /** Connect, failing after timeoutMs; calls then time out after callTimeoutMs. */
  static connect(url: string, options: ConnectOptions = {}): Promise<AgentClient> {
    const timeoutMs = options.timeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      let opts = options;
      try {
        if (opts.tlsFiles && !opts.tls) opts = { ...opts, tls: readTlsPaths(opts.tlsFiles) };
      } catch (err) {
        return reject(err);
      }
      if (url.startsWith('wss://') && !opts.tls) return reject(new Error(`cannot reach agent at ${url}: a wss:// agent needs TLS material (--ca, --cert, --key)`));
      // ws hands TLS options to tls.connect; its typings know only a boolean checkServerIdentity
      const tlsOptions: ConnectionOptions = opts.tls
        ? { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2', checkServerIdentity: serverCheck(opts.checkServer) }
        : {};
      const ws = new WebSocket(url, {
        handshakeTimeout: timeoutMs,
        // a hostile or broken agent must not make us buffer without bound
        maxPayload: opts.maxPayload ?? 16 << 20,
        perMessageDeflate: false,
        ...(tlsOptions as WebSocket.ClientOptions),
      });
      const fail = (err: Error): void => {
        ws.removeAllListeners();
        ws.on('error', () => {});
        ws.terminate();
        reject(new Error(`cannot reach agent at ${url}: ${err.message}`));
      };
      ws.once('error', fail);
      ws.once('open', () => {
        ws.off('error', fail);
        ws.on('error', () => ws.terminate());
        resolve(new AgentClient(ws, url, opts.callTimeoutMs ?? 30_000));
      });
    });
  }

  /** Whatever the agent sends, nothing here may throw: malformed frames are dropped (the call
   *  they should have answered then times out). */
  private receive(text: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    for (const one of Array.isArray(msg) ? msg : [msg]) {
      if (typeof one !== 'object' || one === null || Array.isArray(one)) continue;
      const obj = one as { id?: unknown; method?: unknown; params?: unknown };
      if (typeof obj.method === 'string' && obj.id === undefined) {
        this.emit('notification', { method: obj.method, params: obj.params });
      } else if (isResponse(one)) {
        try {
          this.rpc.receive(one);
        } catch {
          /* an answer to nothing we asked */
        }
      }
    }
  }

  /** Call any verb; rejects with RpcError for an error answer, CallTimeout when none came in time. */
  async call<T>(method: string, params: object = {}): Promise<T> {
    let timedOut = false;
    const response = await this.rpc
      .timeout(this.callTimeoutMs, (id) => {
        timedOut = true;
        return createJSONRPCErrorResponse(id, 0, 'timeout');
      })
      .requestAdvanced({ jsonrpc: '2.0', id: this.nextId(), method, params });
    if (timedOut) throw new CallTimeout(method, this.url, this.callTimeoutMs);
    if (response.error) {
      throw new RpcError(String(response.error.message), Number(response.error.code), response.error.data);
    }
    return response.result as T;
  }

  private id = 0;
  private nextId(): number {
    this.id += 1;
    return this.id;
  }

  ping(): Promise<PingResult> {
    return this.call('Host.ping');
  }
  getCapabilities(): Promise<Capabilities> {
    return this.call('Host.getCapabilities');
  }
  listVms(): Promise<VmSummary[]> {
    return this.call('VM.list');
  }
  migrate(params: MigrateParams): Promise<MigrateResult> {
    return this.call('VM.migrate', params);
  }
  /** Measures the guest's dirty rate (a few seconds) and forecasts the migration; nothing is copied. */
  estimateMigration(params: EstimateParams): Promise<EstimateResult> {
    return this.call('VM.estimateMigration', params);
  }
  migrateStatus(params: VmRef): Promise<MigrationStatus> {
    return this.call('VM.migrateStatus', params);
  }
  migrateCancel(params: VmRef): Promise<MigrationStatus> {
    return this.call('VM.migrateCancel', params);
  }
  migrateChangeParams(params: ChangeParams): Promise<MigrationStatus> {
    return this.call('VM.migrateChangeParams', params);
  }
  migrationCreate(params: AdmissionRequest): Promise<AdmissionResult> {
    return this.call('VM.migrationCreate', params);
  }
  migrationEnd(params: { admissionId: string }): Promise<{ ok: true }> {
    return this.call('VM.migrationEnd', params);
  }
  /** Starts an evacuation of the agent's host; returns its id at once. */
  evacuate(params: EvacuateParams): Promise<{ evacuationId: string }> {
    return this.call('Host.evacuate', params);
  }
  evacuationStatus(params: { evacuationId: string }): Promise<EvacuationStatus> {
    return this.call('Host.evacuationStatus', params);
  }
  evacuationCancel(params: { evacuationId: string; abortRunning?: boolean }): Promise<EvacuationStatus> {
    return this.call('Host.evacuationCancel', params);
  }
  subscribe(params: SubscribeParams = {}): Promise<{ topics: string[] }> {
    return this.call('Events.subscribe', params);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close();
      setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 1000).unref();
    });
  }
}
