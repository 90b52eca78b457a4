// Property-based fuzzing of a live lab agent (fast-check): at least 10,000 generated frames, plus
// the hand-picked nasty ones, each checked against an oracle written from the JSON-RPC 2.0
// specification and the verb catalog (not from the server's code). Afterwards the same agent
// process must still answer and still migrate a guest.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import WebSocket from 'ws';
import { CATALOG } from '../../src/api/catalog.js';
import { ErrorCodes } from '../../src/api/errors.js';
import { defineGuest, destroyGuest, labDown, type LabHostInfo } from '../../src/lab/index.js';
import { wsOptions } from '../helpers/raw-rpc.js';
import { migrateCompletes, twoHosts } from '../helpers/lab-hosts.js';

const isRoot = process.getuid?.() === 0;
const RUNS = Number(process.env.VMIGRATE_FUZZ_RUNS ?? 10_000);
// the agent's defaults (src/daemon/config.ts); the oracle needs them to know the answer
const MAX_BATCH = 32;
const MAX_REQUEST_BYTES = 1 << 20;
const MAX_DEPTH = 32;
const CONNECTION_CODES = [ErrorCodes.PERMISSION_DENIED, ErrorCodes.TOO_MANY_REQUESTS];

type Id = string | number | null;
/** What one request must get: nothing, or an error/success with this id and one of these codes. */
type Expect = null | { id: Id; codes: number[] | 'verb' ; method?: string };

const isPlain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const validId = (v: unknown): v is Id => typeof v === 'string' || typeof v === 'number' || v === null;

function depth(v: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[v, 1]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    max = Math.max(max, d);
    for (const c of Array.isArray(x) ? x : Object.values(x)) stack.push([c, d + 1]);
  }
  return max;
}

/** The JSON-RPC 2.0 specification's answer to one request object. */
function expectOne(v: unknown): Expect {
  if (!isPlain(v)) return { id: null, codes: [-32600] };
  const hasId = Object.hasOwn(v, 'id');
  if (hasId && !validId(v.id)) return { id: null, codes: [-32600] };
  const id = hasId ? (v.id as Id) : null;
  const params = v.params;
  const badEnvelope =
    v.jsonrpc !== '2.0' || typeof v.method !== 'string' || Object.hasOwn(v, 'result') || Object.hasOwn(v, 'error') ||
    (Object.hasOwn(v, 'params') && (typeof params !== 'object' || params === null)) || depth(params) > MAX_DEPTH;
  if (badEnvelope) return { id, codes: [-32600] };
  if (!hasId) return null; // a notification: never answered
  if (!Object.hasOwn(CATALOG, v.method as string)) return { id, codes: [-32601] };
  return { id, codes: 'verb', method: v.method as string };
}

/** The expected answer to a whole frame: null (none), one answer, or a batch of answers in any order. */
function expectFrame(text: string | Buffer): { batch: boolean; items: Exclude<Expect, null>[] } | null {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  if (bytes.length > MAX_REQUEST_BYTES) return { batch: false, items: [{ id: null, codes: [-32600] }] };
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return { batch: false, items: [{ id: null, codes: [-32700] }] };
  }
  if (!Array.isArray(value)) {
    const e = expectOne(value);
    return e ? { batch: false, items: [e] } : null;
  }
  if (value.length === 0 || value.length > MAX_BATCH) return { batch: false, items: [{ id: null, codes: [-32600] }] };
  const items = value.map(expectOne).filter((e): e is Exclude<Expect, null> => e !== null);
  return items.length ? { batch: true, items } : null;
}

interface Answer {
  jsonrpc: unknown;
  id: unknown;
  result?: unknown;
  error?: { code: unknown; message: unknown; data?: unknown };
}

/** Checks one answer against one expectation: shape, id, and a code the spec or catalog allows. */
function check(answer: Answer, e: Exclude<Expect, null>, frame: string): void {
  const where = `frame ${frame.slice(0, 300)} -> ${JSON.stringify(answer).slice(0, 300)}`;
  assert.equal(answer.jsonrpc, '2.0', where);
  assert.deepEqual(answer.id, e.id, where);
  assert.ok(Object.hasOwn(answer, 'result') !== Object.hasOwn(answer, 'error'), `exactly one of result/error: ${where}`);
  if (answer.error) {
    assert.equal(typeof answer.error.code, 'number', where);
    assert.equal(typeof answer.error.message, 'string', where);
    assert.notEqual(answer.error.code, -32603, `never an internal error: ${where}`);
    const allowed = e.codes === 'verb'
      ? [-32602, ...CONNECTION_CODES, ...CATALOG[e.method as keyof typeof CATALOG].errors.map((n) => ErrorCodes[n])]
      : e.codes;
    assert.ok(allowed.includes(answer.error.code as number), `code ${String(answer.error.code)} not allowed (${allowed.join(',')}): ${where}`);
  } else {
    assert.equal(e.codes, 'verb', `success where the spec wants an error: ${where}`);
  }
}

/** One connection that sends a frame and collects what comes back. */
class Wire {
  private readonly inbox: unknown[] = [];
  private wake: (() => void) | null = null;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      this.inbox.push(JSON.parse(d.toString()));
      this.wake?.();
    });
    ws.on('close', () => this.wake?.());
  }

  static open(url: string): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, wsOptions(url));
      ws.once('open', () => resolve(new Wire(ws)));
      ws.once('error', reject);
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** The next message, or undefined after timeoutMs. */
  async next(timeoutMs: number): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0 && this.open && Date.now() < deadline) {
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, Math.max(1, deadline - Date.now()));
      });
    }
    return this.inbox.shift();
  }

  /** Anything already received that nobody asked for. */
  drain(): unknown[] {
    return this.inbox.splice(0);
  }
}

/** Sends a frame and checks the answer (or its absence) against the oracle. */
async function probe(wire: Wire, frame: string | Buffer, binary = false): Promise<void> {
  const text = Buffer.isBuffer(frame) ? frame.toString('latin1') : frame;
  const expected = expectFrame(frame);
  wire.ws.send(frame, { binary });
  if (expected === null) {
    // no answer: a ping after it must be the next thing that comes back
    wire.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 'sentinel', method: 'Host.ping' }));
    const next = (await wire.next(10_000)) as Answer | undefined;
    assert.equal(next?.id, 'sentinel', `a notification was answered: ${text.slice(0, 300)} -> ${JSON.stringify(next).slice(0, 300)}`);
    return;
  }
  const answer = (await wire.next(15_000)) as Answer | Answer[] | undefined;
  assert.ok(answer !== undefined, `no answer to ${text.slice(0, 300)}`);
  if (!expected.batch) {
    assert.ok(!Array.isArray(answer), `batch answer to a single request: ${text.slice(0, 200)}`);
    check(answer, expected.items[0]!, text);
    return;
  }
  assert.ok(Array.isArray(answer) && answer.length === expected.items.length, `batch of ${expected.items.length} answers expected: ${text.slice(0, 300)} -> ${JSON.stringify(answer).slice(0, 300)}`);
  // answers may come in any order: match by id, ids may repeat
  const left = [...expected.items];
  for (const a of answer) {
    const i = left.findIndex((e) => JSON.stringify(e.id) === JSON.stringify(a.id));
    assert.ok(i >= 0, `unexpected id ${JSON.stringify(a.id)} in ${JSON.stringify(answer).slice(0, 300)}`);
    check(a, left.splice(i, 1)[0]!, text);
  }
}

// ---- generators --------------------------------------------------------------------------------

const VERBS = Object.keys(CATALOG);
const idArb = fc.oneof(fc.integer(), fc.string({ maxLength: 12 }), fc.constant(null), fc.double(), fc.boolean(), fc.array(fc.integer(), { maxLength: 2 }), fc.object({ maxDepth: 1 }));
const methodArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...VERBS) },
  fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'rpc.discover', '', 'VM.migrate ', 'vm.list'),
  fc.string({ maxLength: 20 }),
  fc.oneof(fc.integer(), fc.constant(null), fc.boolean(), fc.array(fc.string(), { maxLength: 2 }), fc.object({ maxDepth: 1 })),
);
const keyArb = fc.oneof(
  fc.constantFrom('vmId', 'dst', 'bandwidth', 'maxDowntime', 'policy', 'topics', 'admissionId', 'vmUuid', 'postcopy', 'maxThrottle', '__proto__', 'constructor', 'prototype', 'toString'),
  fc.string({ maxLength: 8 }),
);
const valueArb = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom('no-such-vm', 'wss://127.0.0.1:9', 'ws://127.0.0.1:9', { libvirtUri: 'qemu+ext://x/system?command=/bin/true' }, { libvirtUri: 'qemu+unix:///system?socket=/etc/x' }, 'minimal-downtime', { base: 'stock', maxDowntimeMs: 600000 }, 600000, 99, -1, 1e308, ['migration.state']),
);
const paramsArb = fc.oneof(
  { weight: 5, arbitrary: fc.dictionary(keyArb, valueArb, { maxKeys: 5 }) },
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.jsonValue({ maxDepth: 1 }),
);
const requestArb = fc.record(
  {
    jsonrpc: fc.oneof({ weight: 8, arbitrary: fc.constant('2.0') }, fc.constantFrom('1.0', '2', 2, null)),
    id: idArb,
    method: methodArb,
    params: paramsArb,
    result: fc.jsonValue({ maxDepth: 1 }),
    error: fc.jsonValue({ maxDepth: 1 }),
  },
  { requiredKeys: [] },
);
const frameArb: fc.Arbitrary<{ frame: string | Buffer; binary: boolean }> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ jsonrpc: fc.constant('2.0'), id: fc.integer({ min: 0 }), method: methodArb, params: paramsArb }, { requiredKeys: ['jsonrpc', 'method'] }).map((r) => ({ frame: JSON.stringify(r), binary: false })) },
  { weight: 6, arbitrary: requestArb.map((r) => ({ frame: JSON.stringify(r), binary: false })) },
  { weight: 3, arbitrary: fc.array(fc.oneof(requestArb, fc.jsonValue({ maxDepth: 2 })), { minLength: 0, maxLength: 40 }).map((a) => ({ frame: JSON.stringify(a), binary: false })) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => ({ frame: JSON.stringify(v) ?? 'null', binary: false })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }).map((s) => ({ frame: s, binary: false })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 60 }).map((b) => ({ frame: Buffer.from(b), binary: true })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 60 }).map((b) => ({ frame: Buffer.from(b), binary: false })) },
  { weight: 1, arbitrary: requestArb.map((r) => ({ frame: Buffer.from(JSON.stringify(r)), binary: true })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((n) => ({ frame: `${'['.repeat(n)}${']'.repeat(n)}`, binary: false })) },
  { weight: 1, arbitrary: fc.integer({ min: 20, max: 5000 }).map((n) => ({ frame: `{"jsonrpc":"2.0","id":1,"method":"VM.list","params":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`, binary: false })) },
);

// ---- hand-picked frames ------------------------------------------------------------------------

const NASTY: Array<string | Buffer> = [
  '[null]', '[]', '[[]]', '[[[]]]', '[1,2,3]', 'null', '0', '"x"', 'true', '{}', '{"jsonrpc":"2.0"}',
  '{"jsonrpc":"2.0","id":1,"method":1}', '{"jsonrpc":"2.0","id":1,"method":null}', '{"jsonrpc":"2.0","id":1,"method":{}}',
  '{"jsonrpc":"2.0","id":1,"method":"__proto__"}', '{"jsonrpc":"2.0","id":1,"method":"constructor"}',
  '{"jsonrpc":"2.0","id":1,"method":"VM.migrate","params":{"__proto__":{"vmId":"x"}}}',
  '{"jsonrpc":"2.0","id":1,"method":"VM.migrate","params":{"vmId":"x","dst":"wss://127.0.0.1:9","policy":{"__proto__":{"steer":false}}}}',
  '{"jsonrpc":"2.0","id":1,"method":"VM.migrate","params":{"constructor":{"prototype":{"x":1}}}}',
  '{"jsonrpc":"2.0","id":1,"method":"VM.migrateChangeParams","params":{"vmId":"x","maxDowntime":600000}}',
  '{"jsonrpc":"2.0","id":{"__proto__":1},"method":"Host.ping"}',
  '[{"jsonrpc":"2.0","method":"Host.ping"},{"jsonrpc":"2.0","method":"VM.list"}]',
  JSON.stringify(Array(MAX_BATCH + 1).fill({ jsonrpc: '2.0', id: 1, method: 'Host.ping' })),
  JSON.stringify(Array(MAX_BATCH).fill({ jsonrpc: '2.0', id: 1, method: 'Host.ping' })),
  `${'['.repeat(400_000)}${']'.repeat(400_000)}`,
  `{"jsonrpc":"2.0","id":1,"method":"VM.list","params":${'['.repeat(200_000)}${']'.repeat(200_000)}}`,
  `{"jsonrpc":"2.0","id":1,"method":"Host.ping","params":{"x":"${'y'.repeat(MAX_REQUEST_BYTES)}"}}`,
  `{"jsonrpc":"2.0","id":1,"method":"VM.list","params":{"x":"${'y'.repeat(900_000)}"}}`,
  Buffer.from([0xff, 0xfe, 0xfd]), Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]), Buffer.from('\u0000\u0001'),
];

describe('fuzzing a live agent', { skip: isRoot ? false : 'needs root (lab hosts)' }, () => {
  let A: LabHostInfo;
  let B: LabHostInfo;

  before(async () => {
    ({ A, B } = await twoHosts());
  });
  after(async () => {
    await labDown();
  });

  test(`${RUNS} generated frames and the hand-picked ones each get the answer JSON-RPC 2.0 prescribes`, { timeout: 1_200_000 }, async () => {
    const url = A.agentUrl!;
    let wire = await Wire.open(url);
    const t0 = Date.now();
    let frames = 0;
    const send = async (frame: string | Buffer, binary: boolean): Promise<void> => {
      if (!wire.open) wire = await Wire.open(url);
      await probe(wire, frame, binary);
      frames += 1;
      assert.deepEqual(wire.drain(), [], 'nothing unasked for arrives');
    };
    for (const frame of NASTY) await send(frame, false);
    await send(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 'bin', method: 'Host.ping' })), true);
    await fc.assert(fc.asyncProperty(frameArb, ({ frame, binary }) => send(frame, binary)), { numRuns: RUNS, endOnFailure: true });
    // a frame far past the limit closes the connection (1009) without an answer; the agent lives on
    const closed = new Promise<number>((r) => wire.ws.once('close', (code) => r(code)));
    wire.ws.send('x'.repeat(3 * MAX_REQUEST_BYTES));
    assert.equal(await closed, 1009);
    console.log(`fuzz: ${frames} frames checked in ${((Date.now() - t0) / 1000).toFixed(1)} s, 0 crashes`);
    assert.ok(frames >= RUNS);
    assert.doesNotThrow(() => process.kill(A.agentPid!, 0), 'the agent process survived');
  });

  test('afterwards the same agent still answers and still migrates a guest', { timeout: 180_000 }, async () => {
    const name = 'fuzz-after';
    await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 8, rateMiB: 4 });
    try {
      await migrateCompletes(A, B, name);
    } finally {
      await destroyGuest(A.libvirtUri, name).catch(() => undefined);
    }
  });
});
