// One checked request to one verb: role check, parameter validation, the call, and the mapping
// of what went wrong to a stable JSON-RPC error. Every call is logged with the caller's identity.
import { randomUUID } from 'node:crypto';
import { JSONRPCErrorCode, JSONRPCErrorException, JSONRPCServer, createJSONRPCErrorResponse, type JSONRPCResponse } from 'json-rpc-2.0';
import type { Logger } from 'pino';
import { CATALOG, type VerbName } from '../../api/catalog.js';
import { AgentError, type ErrorName } from '../../api/errors.js';
import { roleAllows } from '../../api/roles.js';
import { parseParams } from '../../api/validate.js';
import { LibvirtError } from '../../libvirt/errors.js';
import { libvirtFailure } from '../vm-lookup.js';
import type { Caller, Verbs } from '../verbs/types.js';
import type { Call } from './frames.js';

export type RefusedHook = (verb: string, error: ErrorName) => void;

// Refusals that tell an operator something about the hosts or about who is knocking (limits,
// unreachable peers, libvirt, permissions) are warnings; a client's own mistake is information.
const OPERATOR_RELEVANT: ReadonlySet<ErrorName> = new Set(['TOO_MANY_MIGRATIONS', 'DESTINATION_UNREACHABLE', 'DESTINATION_REFUSED', 'LIBVIRT_ERROR', 'PERMISSION_DENIED']);

/** Verbs that only read: logged at debug, since managers poll them. */
const READ_ONLY: ReadonlySet<string> = new Set(['Host.ping', 'Host.getCapabilities', 'VM.list', 'VM.migrateStatus']);

const isVerb = (method: string): method is VerbName => Object.hasOwn(CATALOG, method);

export class Dispatcher {
  private readonly server: JSONRPCServer<Caller>;

  constructor(
    verbs: Verbs,
    private readonly log: Logger,
    private readonly onRefused?: RefusedHook,
  ) {
    // errorListener: the library would print every refused request to stderr; we log them ourselves.
    this.server = new JSONRPCServer<Caller>({ errorListener: () => {} });
    for (const name of Object.keys(verbs) as VerbName[]) {
      const impl = verbs[name] as ((params: unknown, caller: Caller) => Promise<unknown>) | undefined;
      if (impl) this.server.addMethod(name, (params, caller) => this.invoke(name, impl, params, caller));
    }
  }

  knows(method: string): boolean {
    return isVerb(method);
  }

  /** The answer to one call; null for a notification. Never rejects. */
  async dispatch(call: Call, caller: Caller): Promise<JSONRPCResponse | null> {
    if (!isVerb(call.method)) {
      const reply = createJSONRPCErrorResponse(call.id ?? null, JSONRPCErrorCode.MethodNotFound, `Method not found: ${JSON.stringify(call.method.slice(0, 100))}`);
      return call.id === undefined ? null : reply;
    }
    const request = { jsonrpc: '2.0' as const, method: call.method, params: call.params, ...(call.id !== undefined ? { id: call.id } : {}) };
    try {
      return await this.server.receive(request, caller);
    } catch (err) {
      // json-rpc-2.0 maps thrown errors itself; reaching here is a bug in this layer
      const ref = this.internal(err, call.method, caller);
      return call.id === undefined ? null : createJSONRPCErrorResponse(call.id, JSONRPCErrorCode.InternalError, `internal error (ref ${ref})`);
    }
  }

  private async invoke(name: VerbName, impl: (params: unknown, caller: Caller) => Promise<unknown>, raw: unknown, caller: Caller): Promise<unknown> {
    const vmId = (raw as { vmId?: unknown } | null)?.vmId;
    const fields = { method: name, caller: caller.identity.name, ...(typeof vmId === 'string' ? { vmId: vmId.slice(0, 200) } : {}) };
    try {
      if (![...caller.identity.roles].some((role) => roleAllows(role, name))) {
        const roles = caller.identity.roles.size ? [...caller.identity.roles].join(', ') : 'none';
        throw new AgentError('PERMISSION_DENIED', `${caller.identity.name} (roles: ${roles}) may not call ${name}`, { roles: [...caller.identity.roles] });
      }
      this.log[READ_ONLY.has(name) ? 'debug' : 'info']({ event: 'rpc.call', ...fields }, `${name} called by ${caller.identity.name}`);
      return await impl(parseParams(CATALOG[name].params, raw ?? {}, name), caller);
    } catch (err) {
      throw this.toRpcError(err, fields, caller);
    }
  }

  private toRpcError(err: unknown, fields: { method: VerbName; caller: string; vmId?: string }, caller: Caller): JSONRPCErrorException {
    const agentError = err instanceof AgentError ? err : err instanceof LibvirtError ? libvirtFailure(err, 'libvirt failed') : null;
    if (agentError) {
      const level = OPERATOR_RELEVANT.has(agentError.errorName) ? 'warn' : 'info';
      this.log[level]({ event: 'rpc.refused', ...fields, code: agentError.code, error: agentError.errorName, err: agentError.message }, `${fields.method} refused: ${agentError.message}`);
      this.onRefused?.(fields.method, agentError.errorName);
      return new JSONRPCErrorException(agentError.message, agentError.code, { name: agentError.errorName, ...agentError.details });
    }
    const ref = this.internal(err, fields.method, caller);
    // -32603 means a bug of ours; the details (which may name host paths) stay in the log.
    return new JSONRPCErrorException(`internal error in ${fields.method} (ref ${ref}); the agent's log has the details`, -32603, { name: 'INTERNAL_ERROR', ref });
  }

  private internal(err: unknown, method: string, caller: Caller): string {
    const ref = randomUUID();
    this.log.error({ event: 'rpc.internal_error', method, caller: caller.identity.name, ref, err: err instanceof Error ? err.stack : String(err) }, 'verb failed unexpectedly');
    return ref;
  }
}
