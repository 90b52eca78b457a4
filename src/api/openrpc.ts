// Builds the OpenRPC document of the agent from the verb catalog. `npm run openrpc` writes it to
// docs/openrpc.json; a unit test fails when the checked-in file differs from what this builds.
import { z } from 'zod';
import { CATALOG, NOTIFICATIONS } from './catalog.js';
import { ErrorCodes, type ErrorName } from './errors.js';

type Json = Record<string, unknown>;

const ERROR_TEXT: Record<ErrorName, string> = {
  INVALID_PARAMS: 'a parameter is missing, unknown or of the wrong type; the message names it and the value received',
  VM_NOT_FOUND: 'no VM with that name or UUID on this host',
  VM_NOT_RUNNING: 'the VM is not running',
  MIGRATION_IN_PROGRESS: 'the VM is already being migrated',
  DESTINATION_UNREACHABLE: 'the destination agent cannot be reached',
  NO_MIGRATION: 'no (running) migration of that VM is known on this host',
  DESTINATION_REFUSED: 'the destination refused to admit the migration',
  TOO_MANY_MIGRATIONS: 'the outgoing (source) or incoming (destination) migration limit is reached',
  LIBVIRT_ERROR: 'libvirt failed; data.libvirtCode holds its error code',
  SAME_HOST: 'the destination is this host',
  NOT_CANCELLABLE: 'the migration already ended',
  ABORTED_BY_POLICY: 'the controller aborted the migration (reported in status)',
  MIGRATION_FAILED: 'libvirt reported that the migration failed (reported in status)',
  INVALID_POLICY: 'the policy is unknown or invalid; the message names the field',
  PERMISSION_DENIED: "the caller's roles (from its certificate subject) do not allow this verb",
  TOO_MANY_REQUESTS: 'too many requests in flight on this connection; retry when answers arrive',
  STATE_WRITE_FAILED: 'the agent could not record the migration in its state directory; nothing was started',
  MEASUREMENT_FAILED: "QEMU's dirty-rate measurement gave no result in time (e.g. one was already running)",
  NO_EVACUATION: 'no evacuation with that id is known on this host',
  EVACUATION_IN_PROGRESS: 'an evacuation of this host is already running',
  NO_DESTINATION: 'no destination can take the VM: none reachable, or none with enough free memory (reported in evacuation status)',
};

/** Any verb may answer these: they come from the connection, not from the verb. */
const CONNECTION_ERRORS: ErrorName[] = ['PERMISSION_DENIED', 'TOO_MANY_REQUESTS'];

function schema(t: z.ZodType): Json {
  const s = z.toJSONSchema(t, { io: 'input', unrepresentable: 'any' }) as Json;
  delete s.$schema;
  return s;
}

export function buildOpenRpc(version: string): Json {
  const methods = Object.entries(CATALOG).map(([name, spec]) => ({
    name,
    summary: spec.summary,
    paramStructure: 'by-name',
    params: Object.entries(spec.params.shape).map(([pname, ptype]) => ({
      name: pname,
      required: !(ptype as z.ZodType).safeParse(undefined).success,
      schema: schema(ptype as z.ZodType),
    })),
    result: { name: `${name}.result`, schema: schema(spec.result) },
    errors: [...spec.errors, ...CONNECTION_ERRORS].map((e) => ({ code: ErrorCodes[e], message: e, data: { description: ERROR_TEXT[e] } })),
  }));
  return {
    openrpc: '1.3.2',
    info: {
      title: 'vmigrated',
      version,
      description: 'JSON-RPC 2.0 over WebSocket (mutual TLS) API of the vmigrate live-migration agent. Errors carry a stable code and data.name.',
    },
    servers: [{ name: 'default', url: 'wss://127.0.0.1:4411', description: 'mutual TLS: a client certificate signed by the agent\'s CA is required' }],
    methods,
    components: {
      errors: Object.fromEntries(Object.entries(ErrorCodes).map(([n, code]) => [n, { code, message: n, data: { description: ERROR_TEXT[n as ErrorName] } }])),
    },
    'x-notifications': Object.entries(NOTIFICATIONS).map(([name, description]) => ({ name, description, params: schema(CATALOG['VM.migrateStatus'].result) })),
  };
}
