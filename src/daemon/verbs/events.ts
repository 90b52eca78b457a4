// Events.* verbs: a connection subscribes to migration notifications instead of polling.
import type { Verbs } from './types.js';

export const ALL_TOPICS = ['migration.state', 'migration.progress', 'migration.action'];

export function eventVerbs(): Verbs {
  return {
    'Events.subscribe': async (params, caller) => {
      const topics = params.topics ?? ALL_TOPICS;
      caller.subscribe(topics);
      return { topics };
    },
    'Events.unsubscribe': async (_params, caller) => {
      caller.unsubscribe();
      return { topics: [] };
    },
  };
}
