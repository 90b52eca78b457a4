import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { buildOpenRpc } from '../../src/api/openrpc.js';
import { CATALOG } from '../../src/api/catalog.js';
import type { MigrationStatusSchema, CapabilitiesSchema } from '../../src/api/result-schemas.js';
import type { Capabilities, MigrationStatus } from '../../src/api/results.js';
import type { AgentContext } from '../../src/daemon/context.js';
import { hostVerbs } from '../../src/daemon/verbs/host.js';
import { vmVerbs } from '../../src/daemon/verbs/vm.js';
import { estimateVerbs } from '../../src/daemon/verbs/estimate.js';
import { eventVerbs } from '../../src/daemon/verbs/events.js';
import { evacuationVerbs } from '../../src/daemon/verbs/evacuate.js';

// Compile-time: the documented result schemas and the TypeScript types are the same shape.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const statusSame: Equal<z.input<typeof MigrationStatusSchema>, MigrationStatus> = true;
const capsSame: Equal<z.input<typeof CapabilitiesSchema>, Capabilities> = true;

const root = new URL('../../../', import.meta.url);

test('docs/openrpc.json is what the verb catalog generates (run `npm run openrpc` after changing the API)', () => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string };
  const onDisk: unknown = JSON.parse(readFileSync(new URL('docs/openrpc.json', root), 'utf8'));
  assert.deepEqual(onDisk, JSON.parse(JSON.stringify(buildOpenRpc(pkg.version))));
  assert.ok(statusSame && capsSame);
});

test('the server implements exactly the documented verbs', () => {
  const ctx = {} as AgentContext; // the verb tables are built without touching the context
  const served = Object.keys({ ...hostVerbs(ctx), ...vmVerbs(ctx), ...estimateVerbs(ctx), ...evacuationVerbs(ctx), ...eventVerbs() }).sort();
  assert.deepEqual(served, Object.keys(CATALOG).sort());
});

test('every documented method names its params, result and error codes', () => {
  const doc = buildOpenRpc('0') as { methods: { name: string; params: { name: string; required: boolean }[]; errors: { code: number }[] }[] };
  const migrate = doc.methods.find((m) => m.name === 'VM.migrate');
  assert.ok(migrate);
  assert.deepEqual(migrate.params.filter((p) => p.required).map((p) => p.name).sort(), ['dst', 'vmId']);
  assert.ok(migrate.errors.some((e) => e.code === 1001));
});
