import type { VerbName, VerbParams, VerbResult } from '../../api/catalog.js';

/** Per-connection facts a verb may need (for subscriptions). */
export interface Caller {
  subscribe(topics: string[]): void;
  unsubscribe(): void;
  /** run fn when this client's connection closes */
  onClose(fn: () => void): void;
}

/** A verb receives params already validated against its catalog schema. */
export type VerbImpl<K extends VerbName> = (params: VerbParams<K>, caller: Caller) => Promise<VerbResult<K>>;
export type Verbs = { [K in VerbName]?: VerbImpl<K> };
