import type { VerbName, VerbParams, VerbResult } from '../../api/catalog.js';
import type { Role } from '../../api/roles.js';

/** Who is calling: the certificate subject (or the local socket) and the roles it grants. */
export interface Identity {
  /** for logs: "CN=a,OU=vmigrate-peer,O=..." or "local socket" */
  name: string;
  roles: ReadonlySet<Role>;
}

/** Per-connection facts a verb may need (identity, subscriptions, the connection's end). */
export interface Caller {
  identity: Identity;
  subscribe(topics: string[]): void;
  unsubscribe(): void;
  /** run fn when this client's connection closes; at once when it already has */
  onClose(fn: () => void): void;
}

/** A verb receives params already validated against its catalog schema. */
export type VerbImpl<K extends VerbName> = (params: VerbParams<K>, caller: Caller) => Promise<VerbResult<K>>;
export type Verbs = { [K in VerbName]?: VerbImpl<K> };

/** The same verbs, each answering only once `ready` settles: a restarted agent serves while it
 *  re-attaches its predecessor's migrations, and a VM verb answered before that would not know them
 *  (NO_MIGRATION for a migration that runs, or a second migration of a VM already migrating). */
export function afterReady(ready: Promise<unknown>, verbs: Verbs): Verbs {
  const out: Record<string, unknown> = {};
  for (const [name, impl] of Object.entries(verbs) as [VerbName, VerbImpl<VerbName>][]) {
    out[name] = async (params: never, caller: Caller) => {
      await ready.catch(() => undefined);
      return impl(params, caller);
    };
  }
  return out as Verbs;
}
