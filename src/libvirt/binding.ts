// Loads the native addon (native/build/Release/vmigrate_libvirt.node) and adapts it to the contract in
// ./types.ts: native rejections become LibvirtError, QMP error replies become QemuMonitorError.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { QemuMonitorError, fromNative } from './errors.js';
import type {
  Connection,
  Domain,
  DomainEvent,
  DomainInfo,
  DomainStateCode,
  DirtyRateStats,
  DomainSummary,
  JobStats,
  MemoryStats,
  MigrateParams,
} from './types.js';

// ---- Shape of the native module ---------------------------------------------------------------

// The native objects have the public contract's shape except where the wrappers below adapt them:
// a null dconnuri for non-peer-to-peer migration, native domains from lookups, and events by id.
type NativeDomain = Omit<Domain, 'migrateToUri3'> & {
  migrateToUri3(dconnuri: string | null, params: MigrateParams, flags: number): Promise<void>;
};

type DomainFactory = 'lookupByName' | 'lookupByUuid' | 'defineXml' | 'createXml';

type NativeConnection = Omit<Connection, 'uri' | 'onClose' | 'onDomainEvent' | DomainFactory> & {
  [K in DomainFactory]: (...args: Parameters<Connection[K]>) => Promise<NativeDomain>;
} & {
  subscribeEvents(cb: (ev: DomainEvent) => void): Promise<number>;
  unsubscribeEvents(id: number): Promise<void>;
};

export interface BindingInternals {
  /** Native threads in the addon's private pool (short calls; migrations get their own thread). */
  poolThreads: number;
  /** Promises in flight (while > 0 the addon keeps the event loop alive). */
  pending: number;
}

interface NativeAddon {
  open(uri: string, onClose: (reason: number) => void): Promise<NativeConnection>;
  internals(): BindingInternals;
}

// ---- Loading ----------------------------------------------------------------------------------

const ADDON_REL = ['native', 'build', 'Release', 'vmigrate_libvirt.node'];

/**
 * Path of the compiled addon: $VMIGRATE_LIBVIRT_ADDON, else <package root>/native/build/Release/...,
 * where the package root is the nearest directory above this file holding package.json and the addon
 * (works from src/libvirt via tsx and from dist/src/libvirt).
 */
export function addonPath(): string {
  const override = process.env['VMIGRATE_LIBVIRT_ADDON'];
  if (override) return path.resolve(override);
  let dir = path.dirname(fileURLToPath(import.meta.url));
  let firstRoot: string | undefined;
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) {
      firstRoot ??= dir;
      const candidate = path.join(dir, ...ADDON_REL);
      if (existsSync(candidate)) return candidate;
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  const root = firstRoot ?? process.cwd();
  throw new Error(
    `vmigrate libvirt addon not found at ${path.join(root, ...ADDON_REL)}; build it with ` +
      '`npm run install` (node-gyp rebuild --directory=native; needs libvirt-dev)',
  );
}

let addon: NativeAddon | undefined;

/** Loads the addon on first use, so importing this module never requires a built addon. */
function loadAddon(): NativeAddon {
  if (!addon) {
    const require = createRequire(import.meta.url);
    addon = require(addonPath()) as NativeAddon;
  }
  return addon;
}

export function bindingInternals(): BindingInternals {
  return loadAddon().internals();
}

// ---- Adapters ---------------------------------------------------------------------------------

/** Runs a native call, converting native errors (sync or async) into LibvirtError. */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fromNative(e);
  }
}

/** Invokes every listener; a throwing listener surfaces as an uncaught exception without skipping others. */
function invokeAll<A>(listeners: Iterable<(arg: A) => void>, arg: A): void {
  for (const l of listeners) {
    try {
      l(arg);
    } catch (e) {
      queueMicrotask(() => {
        throw e;
      });
    }
  }
}

/** Throws QemuMonitorError when a QMP reply carries a top-level "error" (exported for tests). */
export function checkQmpReply(command: string, reply: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(reply);
  } catch {
    return; // not JSON: hand it back as is
  }
  if (typeof parsed !== 'object' || parsed === null || !('error' in parsed)) return;
  const err = (parsed as { error: unknown }).error;
  const cls =
    typeof err === 'object' && err !== null && typeof (err as { class?: unknown }).class === 'string'
      ? (err as { class: string }).class
      : 'GenericError';
  const desc =
    typeof err === 'object' && err !== null && typeof (err as { desc?: unknown }).desc === 'string'
      ? (err as { desc: string }).desc
      : JSON.stringify(err);
  throw new QemuMonitorError(cls, desc, command, reply);
}

class DomainImpl implements Domain {
  readonly name: string;
  readonly uuid: string;

  constructor(
    private readonly native: NativeDomain,
    // Keeps the JS connection (and its native state) alive while a domain handle is reachable.
    readonly connection: ConnectionImpl,
  ) {
    this.name = native.name;
    this.uuid = native.uuid;
  }

  getInfo(): Promise<DomainInfo> {
    return call(() => this.native.getInfo());
  }
  getState(): Promise<{ state: DomainStateCode; reason: number }> {
    return call(() => this.native.getState());
  }
  getXmlDesc(flags = 0): Promise<string> {
    return call(() => this.native.getXmlDesc(flags));
  }
  create(): Promise<void> {
    return call(() => this.native.create());
  }
  destroy(): Promise<void> {
    return call(() => this.native.destroy());
  }
  undefine(): Promise<void> {
    return call(() => this.native.undefine());
  }
  migrateToUri3(dconnuri: string, params: MigrateParams, flags: number): Promise<void> {
    return call(() => this.native.migrateToUri3(dconnuri, params, flags));
  }
  getJobStats(flags = 0): Promise<JobStats> {
    return call(() => this.native.getJobStats(flags));
  }
  abortJob(flags = 0): Promise<void> {
    return call(() => this.native.abortJob(flags));
  }
  migrateSetMaxDowntime(ms: number): Promise<void> {
    return call(() => this.native.migrateSetMaxDowntime(ms));
  }
  migrateSetMaxSpeed(mibPerSec: number): Promise<void> {
    return call(() => this.native.migrateSetMaxSpeed(mibPerSec));
  }
  migrateStartPostCopy(): Promise<void> {
    return call(() => this.native.migrateStartPostCopy());
  }
  async qemuMonitorCommand(command: string, hmp = false): Promise<string> {
    const reply = await call(() => this.native.qemuMonitorCommand(command, hmp));
    if (!hmp) checkQmpReply(command, reply);
    return reply;
  }
  startDirtyRateCalc(seconds: number, flags = 0): Promise<void> {
    return call(() => this.native.startDirtyRateCalc(seconds, flags));
  }
  getDirtyRateStats(): Promise<DirtyRateStats> {
    return call(() => this.native.getDirtyRateStats());
  }
  memoryStats(): Promise<MemoryStats> {
    return call(() => this.native.memoryStats());
  }
}

class CloseNotifier {
  readonly listeners = new Set<(reason: number) => void>();
  reason: number | undefined;
  fire = (reason: number): void => {
    if (this.reason !== undefined) return;
    this.reason = reason;
    invokeAll(this.listeners, reason);
    this.listeners.clear();
  };
}

class ConnectionImpl implements Connection {
  constructor(
    readonly uri: string,
    private readonly native: NativeConnection,
    private readonly closeNotifier: CloseNotifier,
  ) {}

  private wrap(p: () => Promise<NativeDomain>): Promise<Domain> {
    return call(async () => new DomainImpl(await p(), this));
  }

  getHostname(): Promise<string> {
    return call(() => this.native.getHostname());
  }
  getLibVersion(): Promise<number> {
    return call(() => this.native.getLibVersion());
  }
  getVersion(): Promise<number> {
    return call(() => this.native.getVersion());
  }
  getCapabilities(): Promise<string> {
    return call(() => this.native.getCapabilities());
  }
  getHostUuid(): Promise<string> {
    return call(() => this.native.getHostUuid());
  }
  listAllDomains(): Promise<DomainSummary[]> {
    return call(() => this.native.listAllDomains());
  }
  lookupByName(name: string): Promise<Domain> {
    return this.wrap(() => this.native.lookupByName(name));
  }
  lookupByUuid(uuid: string): Promise<Domain> {
    return this.wrap(() => this.native.lookupByUuid(uuid));
  }
  defineXml(xml: string): Promise<Domain> {
    return this.wrap(() => this.native.defineXml(xml));
  }
  createXml(xml: string, flags = 0): Promise<Domain> {
    return this.wrap(() => this.native.createXml(xml, flags));
  }
  setKeepAlive(intervalSec: number, count: number): Promise<void> {
    return call(() => this.native.setKeepAlive(intervalSec, count));
  }

  onClose(cb: (reason: number) => void): void {
    if (typeof cb !== 'function') throw new TypeError('onClose callback must be a function');
    const n = this.closeNotifier;
    if (n.reason !== undefined) {
      const reason = n.reason;
      queueMicrotask(() => invokeAll([cb], reason));
      return;
    }
    n.listeners.add(cb);
  }

  async onDomainEvent(cb: (ev: DomainEvent) => void): Promise<() => Promise<void>> {
    if (typeof cb !== 'function') throw new TypeError('onDomainEvent callback must be a function');
    const id = await call(() => this.native.subscribeEvents((ev) => invokeAll([cb], ev)));
    let done = false;
    return () => {
      if (done) return Promise.resolve();
      done = true;
      return call(() => this.native.unsubscribeEvents(id));
    };
  }

  isAlive(): boolean {
    return this.native.isAlive();
  }

  close(): Promise<void> {
    return call(() => this.native.close());
  }
}

/**
 * Opens a libvirt connection (virConnectOpenAuth with the default auth callback), e.g.
 * `qemu:///system`, `qemu+unix:///system?socket=/path/libvirt-sock`, `qemu+tls://host/system`,
 * `test:///default`. libvirt's event loop is started on its own native thread before the first open.
 */
export async function openConnection(uri: string): Promise<Connection> {
  if (typeof uri !== 'string') throw new TypeError('uri must be a string');
  const notifier = new CloseNotifier();
  const native = await call(() => loadAddon().open(uri, notifier.fire));
  return new ConnectionImpl(uri, native, notifier);
}
