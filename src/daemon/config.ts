// vmigrated's configuration: defaults < JSON file (--config) < VMIGRATED_* environment < flags.
// Every key is validated on its own so an error names the key, the bad value and where it came from.
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { LOG_LEVELS, type LogLevel, type LogTarget } from '../common/logger.js';
import { DEFAULT_POLICY, POLICY_NAMES, resolvePolicy } from '../controller/policy.js';
import { DEFAULT_ROLE_SUBJECTS, ROLES, type Role } from '../api/roles.js';
import { parseSubjectPattern } from './security/subject.js';
import type { RpcLimits } from './rpc/server.js';
import { parseAllowRule } from './security/libvirt-uri.js';

export const DEFAULT_CONFIG_PATH = '/etc/vmigrate/vmigrated.json';
export const DEFAULT_LISTEN = '127.0.0.1:4411';
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9411';
export const DEFAULT_PKI_DIR = '/etc/vmigrate/pki';

export interface ListenAddress {
  host: string;
  port: number;
}

/** The settings; the RPC limits (maxConnections, ...) keep a hostile or broken client from exhausting the agent. */
export interface DaemonConfig extends RpcLimits {
  /** host name shown to clients */
  name: string;
  libvirtUri: string;
  /** JSON-RPC/WebSocket endpoint */
  listen: ListenAddress;
  /** Prometheus /metrics endpoint; null = disabled */
  metricsListen: ListenAddress | null;
  logLevel: LogLevel;
  logTarget: LogTarget;
  /** how often a running migration is sampled */
  monitorIntervalMs: number;
  /** a sample (job stats call) taking longer than this counts as failed */
  sampleTimeoutMs: number;
  maxIncoming: number;
  maxOutgoing: number;
  /** memory this host offers to VMs, MiB (`--memory-capacity`); null = the host's available memory (/proc/meminfo MemAvailable).
   *  Set it to reserve memory for the host, or to give lab hosts sharing one machine their own size. */
  memoryCapacity: number | null;
  /** how long an outgoing migration beyond maxOutgoing waits in the FIFO when VM.migrate does not say, s */
  queueTimeoutSec: number;
  /** pause between rounds of dirty-rate samples over the running guests (page sampling, 1 s each), s;
   *  0 = no sampling. A migration then knows whether its guest was quiet in the minutes before it. */
  dirtyRateSampleSec: number;
  /** address QEMU's migration stream should use on this host as destination; null = libvirt's choice */
  migrationAddress: string | null;
  /** libvirt URI a source host's libvirtd uses to reach this host (peer-to-peer); null = derived:
   *  qemu+tls://<hostname>/system for a local qemu:/// URI, else libvirtUri itself */
  peerLibvirtUri: string | null;
  /** where the agent keeps its record of running migrations, to find them again after a crash */
  stateDir: string;
  /** encrypt migration streams when a migrate request does not say (VM.migrate's tls) */
  migrationTls: boolean;
  /** policy used when a migrate request names none: a built-in name or a policy object */
  defaultPolicy: string | Record<string, unknown>;
  /** mutual TLS on the API (wss://); off is allowed only on a loopback listen address */
  tls: boolean;
  /** PEM files: the CA bundle that signs peers and clients, and this agent's certificate and key */
  tlsCa: string;
  tlsCert: string;
  tlsKey: string;
  /** certificate subject patterns per role, e.g. {"manager": ["OU=vmigrate-manager"]} */
  roles: Record<Role, string[]>;
  /** optional local endpoint for tools on this host: a Unix socket, mode 0600 (root only); null = off */
  localSocket: string | null;
  /** libvirt URIs a migration may be sent to: patterns such as qemu+tls://HOST/system, where HOST may be a star */
  allowedLibvirtUris: string[];
  /** the file that was read, or null when the default file does not exist */
  configFile: string | null;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Key = Exclude<keyof DaemonConfig, 'configFile'>;

interface Field {
  schema: z.ZodType;
  /** what a valid value looks like, for the error message */
  expected: string;
  /** how a string from env/flags becomes a value: integer, boolean, or JSON (objects, lists) */
  kind?: 'integer' | 'boolean' | 'json';
}

const listenSchema = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/)
  .transform((s): ListenAddress => {
    const i = s.lastIndexOf(':');
    return { host: s.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(s.slice(i + 1)) };
  })
  .refine((a) => a.port <= 65535);

const int = (min: number, max: number): z.ZodType => z.number().int().min(min).max(max);

const absPath = z.string().regex(/^\/\S*$/);
const subjectList = z.array(z.string().superRefine((v, ctx) => {
  try {
    parseSubjectPattern(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
}));

const FIELDS: Record<Key, Field> = {
  name: { schema: z.string().trim().min(1).max(253), expected: 'a non-empty string' },
  libvirtUri: { schema: z.string().regex(/^[a-z][a-z0-9+.-]*:\/\/\S*$/), expected: 'a libvirt URI like qemu:///system' },
  listen: { schema: listenSchema, expected: 'HOST:PORT, e.g. 127.0.0.1:4411 or [::]:4411' },
  metricsListen: {
    schema: z.union([z.null(), z.enum(['off', '']).transform(() => null), listenSchema]),
    expected: 'HOST:PORT, or "off" / null to disable',
  },
  logLevel: { schema: z.enum(LOG_LEVELS), expected: `one of ${LOG_LEVELS.join(', ')}` },
  logTarget: { schema: z.enum(['auto', 'journal', 'stdout']), expected: 'one of auto, journal, stdout' },
  monitorIntervalMs: { schema: int(50, 60_000), expected: 'an integer from 50 to 60000', kind: 'integer' },
  sampleTimeoutMs: { schema: int(100, 600_000), expected: 'an integer from 100 to 600000', kind: 'integer' },
  maxIncoming: { schema: int(1, 1000), expected: 'a positive integer', kind: 'integer' },
  maxOutgoing: { schema: int(1, 1000), expected: 'a positive integer', kind: 'integer' },
  memoryCapacity: {
    schema: z.union([z.null(), z.enum(['off', '']).transform(() => null), int(0, 1 << 30)]),
    expected: 'a non-negative integer (MiB), or null for the host\'s available memory',
    kind: 'integer',
  },
  queueTimeoutSec: { schema: int(1, 86_400), expected: 'an integer from 1 to 86400', kind: 'integer' },
  dirtyRateSampleSec: { schema: int(0, 3_600), expected: 'an integer from 0 (off) to 3600', kind: 'integer' },
  migrationAddress: {
    schema: z.union([z.null(), z.string().regex(/^[^\s/]+$/)]),
    expected: 'a host name or IP address, or null',
  },
  stateDir: { schema: z.string().regex(/^\/\S*$/), expected: 'an absolute directory path' },
  peerLibvirtUri: {
    schema: z.union([z.null(), z.string().regex(/^[a-z][a-z0-9+.-]*:\/\/\S*$/)]),
    expected: 'a libvirt URI like qemu+tls://host.example/system, or null',
  },
  migrationTls: { schema: z.boolean(), expected: 'true or false', kind: 'boolean' },
  tls: { schema: z.boolean(), expected: 'true or false', kind: 'boolean' },
  tlsCa: { schema: absPath, expected: 'an absolute path of a PEM file' },
  tlsCert: { schema: absPath, expected: 'an absolute path of a PEM file' },
  tlsKey: { schema: absPath, expected: 'an absolute path of a PEM file' },
  roles: {
    schema: z.strictObject(Object.fromEntries(ROLES.map((r) => [r, subjectList.optional()]))).transform(
      (v): Record<Role, string[]> => Object.fromEntries(ROLES.map((r) => [r, (v as Partial<Record<Role, string[]>>)[r] ?? []])) as Record<Role, string[]>,
    ),
    expected: `an object of subject patterns per role (${ROLES.join(', ')}), e.g. {"manager": ["OU=vmigrate-manager"]}`,
    kind: 'json',
  },
  localSocket: { schema: z.union([z.null(), absPath]), expected: 'an absolute path for a Unix socket, or null' },
  allowedLibvirtUris: {
    schema: z.array(z.string().superRefine((v, ctx) => {
      try {
        parseAllowRule(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })),
    expected: 'a list of libvirt URI patterns, e.g. ["qemu+tls://*/system"]',
    kind: 'json',
  },
  maxConnections: { schema: int(1, 100_000), expected: 'an integer from 1 to 100000', kind: 'integer' },
  maxRequestsInFlight: { schema: int(1, 10_000), expected: 'an integer from 1 to 10000', kind: 'integer' },
  maxBatch: { schema: int(1, 10_000), expected: 'an integer from 1 to 10000', kind: 'integer' },
  maxRequestBytes: { schema: int(1024, 64 << 20), expected: 'an integer from 1024 to 67108864', kind: 'integer' },
  heartbeatMs: { schema: z.union([z.literal(0), int(100, 3_600_000)]), expected: '0 (off) or an integer from 100 to 3600000', kind: 'integer' },
  maxSubscriberBufferBytes: { schema: int(1024, 1 << 30), expected: 'an integer from 1024 to 1073741824', kind: 'integer' },
  defaultPolicy: {
    // the controller's own validator, so a bad policy fails at start, not at the first migration
    schema: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).superRefine((v, ctx) => {
      try {
        resolvePolicy(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
    expected: `a policy name (${POLICY_NAMES.join(', ')}) or a policy object`,
  },
};

const KEYS = Object.keys(FIELDS) as Key[];

function defaults(): Record<Key, unknown> {
  return {
    name: hostname(),
    libvirtUri: 'qemu:///system',
    listen: DEFAULT_LISTEN,
    metricsListen: DEFAULT_METRICS_LISTEN,
    logLevel: 'info',
    logTarget: 'auto',
    monitorIntervalMs: 1000,
    sampleTimeoutMs: 5000,
    maxIncoming: 2,
    maxOutgoing: 2,
    memoryCapacity: null,
    queueTimeoutSec: 600,
    dirtyRateSampleSec: 5,
    migrationAddress: null,
    peerLibvirtUri: null,
    stateDir: '/run/vmigrate',
    // Off: TLS needs libvirt's migration PKI (migrate_tls_x509_cert_dir) on every host, or every
    // migration fails; like Nova's live_migration_with_native_tls, an operator turns it on once it is.
    migrationTls: false,
    defaultPolicy: DEFAULT_POLICY,
    tls: true,
    tlsCa: `${DEFAULT_PKI_DIR}/ca.pem`,
    tlsCert: `${DEFAULT_PKI_DIR}/agent.pem`,
    tlsKey: `${DEFAULT_PKI_DIR}/agent-key.pem`,
    roles: DEFAULT_ROLE_SUBJECTS,
    localSocket: null,
    allowedLibvirtUris: ['qemu+tls://*/system'],
    maxConnections: 64,
    maxRequestsInFlight: 16,
    maxBatch: 32,
    maxRequestBytes: 1 << 20,
    heartbeatMs: 15_000,
    maxSubscriberBufferBytes: 4 << 20,
  };
}

/** libvirtUri -> VMIGRATED_LIBVIRT_URI */
export function envName(key: Key): string {
  return `VMIGRATED_${key.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

/** libvirtUri -> libvirt-uri */
export function flagName(key: Key): string {
  return key.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
}

const FLAG_OPTIONS = Object.fromEntries([
  ['config', { type: 'string' as const }],
  ['help', { type: 'boolean' as const, short: 'h' }],
  ['version', { type: 'boolean' as const }],
  ...KEYS.map((k) => [flagName(k), { type: 'string' as const }]),
]);

/** Usage text for --help. */
export function usage(): string {
  const lines = KEYS.map((k) => `  --${flagName(k).padEnd(22)} ${envName(k).padEnd(30)} ${FIELDS[k].expected}`);
  return [
    'Usage: vmigrated [--config FILE] [options]',
    '',
    `Settings come from defaults < the JSON file (default ${DEFAULT_CONFIG_PATH}, or $VMIGRATED_CONFIG)`,
    '< environment < flags. Keys of the JSON file are the camelCase names of the flags.',
    '',
    '  --config FILE            VMIGRATED_CONFIG',
    ...lines,
    '  -h, --help',
    '  --version',
  ].join('\n');
}

/** True for --help / -h / --version, which the caller answers before loading anything. */
export function helpRequested(argv: readonly string[]): 'help' | 'version' | null {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  return argv.includes('--version') ? 'version' : null;
}

/**
 * Builds the daemon configuration. argv excludes node and script (process.argv.slice(2)).
 * Throws ConfigError naming the key, value and source of the first problem.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): DaemonConfig {
  let flags: Record<string, unknown>;
  try {
    flags = parseArgs({ args: [...argv], options: FLAG_OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ConfigError(`command line: ${(err as Error).message}`);
  }

  const raw = defaults();
  const source: Record<Key, string> = Object.fromEntries(KEYS.map((k) => [k, 'default'])) as Record<Key, string>;

  const explicit = typeof flags.config === 'string' ? flags.config : env.VMIGRATED_CONFIG || undefined;
  const path = explicit ?? DEFAULT_CONFIG_PATH;
  let configFile: string | null = null;
  if (explicit !== undefined || existsSync(path)) {
    configFile = path;
    for (const [key, value] of Object.entries(readConfigFile(path))) {
      if (!(KEYS as string[]).includes(key)) throw new ConfigError(`config key "${key}": unknown key (from ${path})`);
      raw[key as Key] = value;
      source[key as Key] = path;
    }
  }

  for (const key of KEYS) {
    const value = env[envName(key)];
    if (value !== undefined) {
      raw[key] = fromString(key, value);
      source[key] = envName(key);
    }
  }
  for (const key of KEYS) {
    const value = flags[flagName(key)];
    if (typeof value === 'string') {
      raw[key] = fromString(key, value);
      source[key] = `--${flagName(key)}`;
    }
  }

  const out: Partial<Record<Key, unknown>> = {};
  for (const key of KEYS) {
    const parsed = FIELDS[key].schema.safeParse(raw[key]);
    if (!parsed.success) {
      const custom = parsed.error.issues.find((i) => i.code === 'custom');
      throw new ConfigError(
        `config key "${key}": expected ${FIELDS[key].expected}, got ${JSON.stringify(raw[key])} (from ${source[key]})` +
          (custom ? `: ${custom.message}` : ''),
      );
    }
    out[key] = parsed.data;
  }
  const config = { ...(out as Omit<DaemonConfig, 'configFile'>), configFile };
  if (!config.tls && !isLoopback(config.listen.host)) {
    throw new ConfigError(
      `config key "listen": ${config.listen.host}:${config.listen.port} is not a loopback address and "tls" is false (from ${source.tls}): ` +
        'the API would accept unauthenticated callers from the network; turn tls on, or listen on 127.0.0.1 / [::1]',
    );
  }
  return config;
}

/** Only these hosts keep an unauthenticated API on this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** How a peer's libvirtd reaches this host: a local URI means nothing to a remote host, so default to
 *  libvirt's usual TLS transport to this host name (as VDSM and Nova do). */
export function peerLibvirtUri(c: Pick<DaemonConfig, 'libvirtUri' | 'peerLibvirtUri'>, host: string = hostname()): string {
  if (c.peerLibvirtUri) return c.peerLibvirtUri;
  return c.libvirtUri.startsWith('qemu:///') ? `qemu+tls://${host}/system` : c.libvirtUri;
}

function fromString(key: Key, value: string): unknown {
  const v = value.trim();
  const kind = FIELDS[key].kind;
  if (kind === 'integer' && /^-?\d+$/.test(v)) return Number(v);
  if (kind === 'boolean') {
    if (['true', 'on', 'yes', '1'].includes(v)) return true;
    if (['false', 'off', 'no', '0'].includes(v)) return false;
  }
  if (kind === 'json') {
    try {
      return JSON.parse(v) as unknown;
    } catch {
      return v; // reported by the schema, naming the key
    }
  }
  if ((key === 'migrationAddress' || key === 'peerLibvirtUri' || key === 'localSocket') && (v === '' || v === 'off')) return null;
  return v;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path}: invalid JSON: ${(err as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError(`config file ${path}: expected a JSON object`);
  }
  return data as Record<string, unknown>;
}
