// A restarted agent serves while it re-attaches its predecessor's migrations; its VM verbs answer
// only once that is done (afterReady), so no caller is told NO_MIGRATION for a migration that runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { afterReady, type Caller, type VerbImpl } from '../../src/daemon/verbs/types.js';

const caller = {} as Caller;

test('VM verbs wait for adoption to finish, then answer from the adopted state', async () => {
  let adopted = false;
  let finish = (): void => {};
  const ready = new Promise<void>((r) => (finish = r));
  const status: VerbImpl<'VM.migrateStatus'> = async () => {
    if (!adopted) throw new Error('NO_MIGRATION');
    return { state: 'running' } as never;
  };
  const gated = afterReady(ready, { 'VM.migrateStatus': status });
  const answer = gated['VM.migrateStatus']!({ vmId: 'g' }, caller);
  let answered = false;
  void answer.then(() => (answered = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(answered, false, 'answered before adoption finished');
  adopted = true;
  finish();
  assert.deepEqual(await answer, { state: 'running' });
});

test('a failed adoption does not block the verbs for ever', async () => {
  const gated = afterReady(Promise.reject(new Error('libvirt down')), { 'VM.list': async () => [] });
  assert.deepEqual(await gated['VM.list']!({} as never, caller), []);
});
