// The frame checker: every shape a client can send gets the answer JSON-RPC 2.0 prescribes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFrame, depthExceeds, type Decoded } from '../../src/daemon/rpc/frames.js';

const limits = { maxRequestBytes: 4096, maxBatch: 4, maxDepth: 8 };
const decode = (text: string | Buffer): Decoded => decodeFrame(Buffer.isBuffer(text) ? text : Buffer.from(text), limits);

function replyCode(d: Decoded): number {
  assert.equal(d.kind, 'reply');
  return (d as { reply: { error: { code: number } } }).reply.error.code;
}

describe('decodeFrame', () => {
  it('passes a well-formed request and a notification', () => {
    const d = decode('{"jsonrpc":"2.0","id":7,"method":"Host.ping","params":{}}');
    assert.deepEqual(d, { kind: 'single', item: { call: { id: 7, method: 'Host.ping', params: {} } } });
    const n = decode('{"jsonrpc":"2.0","method":"Host.ping"}');
    assert.deepEqual(n, { kind: 'single', item: { call: { id: undefined, method: 'Host.ping', params: undefined } } });
  });

  it('answers parse errors, invalid UTF-8 and oversized frames with id null', () => {
    assert.equal(replyCode(decode('{"jsonrpc":')), -32700);
    assert.equal(replyCode(decode(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))), -32700);
    assert.equal(replyCode(decode('"' + 'x'.repeat(5000) + '"')), -32600);
  });

  it('answers the empty batch and an oversized batch with one error', () => {
    assert.equal(replyCode(decode('[]')), -32600);
    assert.equal(replyCode(decode(JSON.stringify(Array(5).fill({ jsonrpc: '2.0', id: 1, method: 'Host.ping' })))), -32600);
  });

  it('answers each bad element of a batch on its own', () => {
    const d = decode('[null, 1, [], {"jsonrpc":"2.0","id":3,"method":"Host.ping"}]');
    assert.equal(d.kind, 'batch');
    const items = (d as { items: Array<{ reply?: { id: unknown; error: { code: number } }; call?: unknown }> }).items;
    assert.deepEqual(items.slice(0, 3).map((i) => [i.reply?.id, i.reply?.error.code]), [[null, -32600], [null, -32600], [null, -32600]]);
    assert.ok(items[3]!.call);
  });

  it('keeps the id when only the envelope is wrong, drops it when the id itself is', () => {
    const wrongMethod = decode('{"jsonrpc":"2.0","id":"x","method":5}');
    assert.deepEqual([(wrongMethod as { item: { reply: { id: unknown; error: { code: number } } } }).item.reply.id, (wrongMethod as { item: { reply: { error: { code: number } } } }).item.reply.error.code], ['x', -32600]);
    for (const text of ['{"jsonrpc":"2.0","id":{},"method":"a"}', '{"jsonrpc":"2.0","id":[1],"method":"a"}', '{"jsonrpc":"2.0","id":true,"method":"a"}']) {
      const d = decode(text) as { item: { reply: { id: unknown; error: { code: number } } } };
      assert.deepEqual([d.item.reply.id, d.item.reply.error.code], [null, -32600], text);
    }
    const noVersion = decode('{"id":1,"method":"a"}') as { item: { reply: { id: unknown } } };
    assert.equal(noVersion.item.reply.id, 1);
    const badParams = decode('{"jsonrpc":"2.0","id":2,"method":"a","params":"x"}') as { item: { reply: { error: { code: number } } } };
    assert.equal(badParams.item.reply.error.code, -32600);
    const response = decode('{"jsonrpc":"2.0","id":2,"result":1}') as { item: { reply: { error: { code: number } } } };
    assert.equal(response.item.reply.error.code, -32600);
  });

  it('refuses params nested deeper than the limit without recursing', () => {
    const deep = '{"jsonrpc":"2.0","id":1,"method":"a","params":' + '['.repeat(20) + ']'.repeat(20) + '}';
    assert.equal((decode(deep) as { item: { reply: { error: { code: number } } } }).item.reply.error.code, -32600);
    const huge = '['.repeat(400_000) + ']'.repeat(400_000);
    assert.equal(depthExceeds(JSON.parse(huge), 64), true);
  });

  it('treats __proto__ and constructor as ordinary strings and keys', () => {
    const d = decode('{"jsonrpc":"2.0","id":1,"method":"__proto__","params":{"__proto__":{"polluted":1}}}');
    assert.equal(d.kind, 'single');
    assert.equal(({} as { polluted?: number }).polluted, undefined);
  });
});
