// Events.* verbs: a connection subscribes to migration notifications instead of polling.
import { TOPICS } from '../../api/params.js';
import type { Verbs } from './types.js';

export function eventVerbs(): Verbs {
  return {
    'Events.subscribe': async (params, caller) => {
      const topics = params.topics ?? [...TOPICS];
      caller.subscribe(topics);
      return { topics };
    },
    'Events.unsubscribe': async (_params, caller) => {
      caller.unsubscribe();
      return { topics: [] };
    },
  };
}
