// Events.* verbs: a connection subscribes to migration notifications instead of polling.
import { SubscribeSchema } from '../../api/params.js';
import { parseParams } from '../../api/validate.js';
import type { Verbs } from './types.js';

export const ALL_TOPICS = ['migration.state', 'migration.progress', 'migration.action'];

export function eventVerbs(): Verbs {
  return {
    'Events.subscribe': async (params, caller) => {
      const p = parseParams(SubscribeSchema, params, 'Events.subscribe');
      const topics = p?.topics ?? ALL_TOPICS;
      caller.subscribe(topics);
      return { topics };
    },
    'Events.unsubscribe': async (params, caller) => {
      parseParams(SubscribeSchema, params, 'Events.unsubscribe');
      caller.unsubscribe();
      return { topics: [] };
    },
  };
}
