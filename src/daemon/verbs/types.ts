/** Per-connection facts a verb may need (for subscriptions). */
export interface Caller {
  subscribe(topics: string[]): void;
  unsubscribe(): void;
}

export type Verb = (params: unknown, caller: Caller) => Promise<unknown>;
export type Verbs = Record<string, Verb>;
