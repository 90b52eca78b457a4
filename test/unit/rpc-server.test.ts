// The RPC server in-process, over real TLS sockets with certificates from a throwaway CA made by
// openssl: who gets in, what each role may call, and the limits that keep a client from hurting it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { PeerCertificate } from 'node:tls';
import { pino } from 'pino';
import WebSocket from 'ws';
import { DEFAULT_ROLE_SUBJECTS } from '../../src/api/roles.js';
import { readTlsPaths, type TlsPem } from '../../src/client/tls.js';
import { startRpcServer, type RpcLimits, type RpcServer } from '../../src/daemon/rpc/server.js';
import { roleTable } from '../../src/daemon/security/subject.js';
import { TlsStore } from '../../src/daemon/security/tls-store.js';
import type { Caller, Verbs } from '../../src/daemon/verbs/types.js';
import { ensureCa, issueCert, type KeyPair } from '../../src/common/pki.js';

const dir = mkdtempSync(join(tmpdir(), 'vmigrate-rpc-'));
const pair = (name: string): KeyPair => ({ cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) });
let ca: KeyPair;
let serverStore: TlsStore;
const pem: Record<'manager' | 'reader' | 'peer' | 'stranger' | 'nobody', TlsPem> = {} as never;

const lines: Array<Record<string, unknown>> = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  }),
);

const DEFAULT_LIMITS: RpcLimits = { maxConnections: 50, maxRequestsInFlight: 8, maxBatch: 8, maxRequestBytes: 64 << 10, heartbeatMs: 0, maxSubscriberBufferBytes: 1 << 20 };

/** Verbs that need no libvirt: enough to see the server's checks around them. */
function fakeVerbs(hooks: { closed?: () => void; gate?: Promise<void> } = {}): Verbs {
  return {
    'Host.ping': async () => ({ ok: true as const, name: 'test', version: '0' }),
    'VM.list': async () => [],
    'VM.migrate': async (p) => ({ migrationId: 'm', vmId: p.vmId, vmName: p.vmId, state: 'pending' as const }),
    'VM.migrationCreate': async (_req, caller: Caller) => {
      await (hooks.gate ?? Promise.resolve());
      caller.onClose(() => hooks.closed?.());
      return { admissionId: 'x', libvirtUri: 'qemu+tls://h/system', hostUuid: 'u', name: 't' };
    },
    'Events.subscribe': async (p, caller) => {
      caller.subscribe(p.topics ?? ['migration.state']);
      return { topics: p.topics ?? ['migration.state'] };
    },
  };
}

async function server(opts: { limits?: Partial<RpcLimits>; verbs?: Verbs; localSocket?: string } = {}): Promise<RpcServer> {
  return startRpcServer({
    listen: { host: '127.0.0.1', port: 0 },
    tls: serverStore,
    roles: roleTable(DEFAULT_ROLE_SUBJECTS),
    localSocket: opts.localSocket ?? null,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    verbs: opts.verbs ?? fakeVerbs(),
    logger,
  });
}

function connect(url: string, tls?: TlsPem, extra: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : {}), ...extra });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

/** Send one frame, wait for the next message. */
async function exchange(ws: WebSocket, frame: string | Buffer, binary = false): Promise<unknown> {
  const reply = once(ws, 'message');
  ws.send(frame, { binary });
  const [data] = (await reply) as [Buffer];
  return JSON.parse(data.toString()) as unknown;
}

async function callAs(url: string, tls: TlsPem, method: string, params: unknown = {}): Promise<{ result?: unknown; error?: { code: number; message: string; data?: { name?: string } } }> {
  const ws = await connect(url, tls);
  try {
    return (await exchange(ws, JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }))) as never;
  } finally {
    ws.close();
  }
}

before(async () => {
  ca = await ensureCa(join(dir, 'ca'));
  const srv = await issueCert(ca, pair('server'), { cn: 'agent', ou: 'vmigrate-peer', san: ['IP:127.0.0.1'], usage: ['serverAuth', 'clientAuth'] });
  serverStore = new TlsStore({ ca: ca.cert, ...srv });
  for (const [name, ou] of [['manager', 'vmigrate-manager'], ['reader', 'vmigrate-reader'], ['peer', 'vmigrate-peer'], ['nobody', 'somebody-else']] as const) {
    pem[name] = readTlsPaths({ ca: ca.cert, ...(await issueCert(ca, pair(name), { cn: name, ou, usage: ['clientAuth'] })) });
  }
  const otherCa = await ensureCa(join(dir, 'other-ca'));
  pem.stranger = readTlsPaths({ ca: ca.cert, ...(await issueCert(otherCa, pair('stranger'), { cn: 'stranger', ou: 'vmigrate-manager', usage: ['clientAuth'] })) });
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('RPC server: who gets in', () => {
  it('serves a client certificate of its CA, and logs the caller of every verb', async () => {
    const s = await server();
    try {
      assert.deepEqual((await callAs(s.url, pem.manager, 'Host.ping')).result, { ok: true, name: 'test', version: '0' });
      assert.equal(((await callAs(s.url, pem.manager, 'VM.migrate', { vmId: 'g', dst: 'wss://x:1' })).result as { vmId: string }).vmId, 'g');
      const line = lines.find((l) => l.event === 'rpc.call' && l.method === 'VM.migrate');
      assert.equal(line?.caller, 'CN=manager,OU=vmigrate-manager,O=vmigrate lab');
      assert.equal(line?.level, 30);
    } finally {
      await s.close();
    }
  });

  it('refuses a client without a certificate, and one whose certificate another CA signed', async () => {
    const s = await server();
    try {
      await assert.rejects(connect(s.url, undefined, { ca: pem.manager.ca }));
      await assert.rejects(connect(s.url, pem.stranger));
    } finally {
      await s.close();
    }
  });

  it('gives a plain ws:// client nothing', async () => {
    const s = await server();
    try {
      const ws = new WebSocket(s.url.replace('wss://', 'ws://'));
      const messages: unknown[] = [];
      ws.on('message', (m) => messages.push(m));
      const outcome = await new Promise<string>((resolve) => {
        ws.once('open', () => resolve('open'));
        ws.once('error', (e) => resolve(`error: ${e.message}`));
      });
      assert.match(outcome, /^error/);
      assert.deepEqual(messages, []);
    } finally {
      await s.close();
    }
  });

  it('refuses a browser (any Origin header)', async () => {
    const s = await server();
    try {
      await assert.rejects(connect(s.url, pem.manager, { origin: 'https://evil.example' }), /HTTP 403/);
    } finally {
      await s.close();
    }
  });

  it('lets a reader read and refuses it everything else with PERMISSION_DENIED', async () => {
    const s = await server();
    try {
      assert.deepEqual((await callAs(s.url, pem.reader, 'VM.list')).result, []);
      const refused = await callAs(s.url, pem.reader, 'VM.migrate', { vmId: 'g', dst: 'wss://x:1' });
      assert.equal(refused.error?.code, 1014);
      assert.equal(refused.error?.data?.name, 'PERMISSION_DENIED');
      assert.match(refused.error!.message, /CN=reader.*\(roles: reader\) may not call VM\.migrate/);
      assert.equal((await callAs(s.url, pem.peer, 'VM.migrate', { vmId: 'g', dst: 'wss://x:1' })).error?.code, 1014);
      assert.equal((await callAs(s.url, pem.nobody, 'Host.ping')).error?.code, 1014);
      assert.ok((await callAs(s.url, pem.peer, 'VM.migrationCreate', { vmUuid: '0b0b4a3e-1c8e-4f57-9b8f-2f1f0a3c4d5e', vmName: 'g', memoryBytes: 1, sourceName: 'a', sourceHostUuid: 'u' })).result);
    } finally {
      await s.close();
    }
  });

  it('serves the local socket (mode 0600) as a manager', async () => {
    const path = join(dir, 'agent.sock');
    const s = await server({ localSocket: path });
    try {
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const ws = await connect(`ws+unix://${path}:/`);
      const reply = (await exchange(ws, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'VM.migrate', params: { vmId: 'g', dst: 'wss://x:1' } }))) as { result?: unknown };
      ws.close();
      assert.ok(reply.result);
    } finally {
      await s.close();
    }
  });

  it('presents new certificates after a reload, without a restart', async () => {
    const s = await server();
    const cnOf = async (): Promise<string> => {
      const ws = await connect(s.url, pem.manager);
      const cert = (Reflect.get(ws, '_socket') as { getPeerCertificate(): PeerCertificate }).getPeerCertificate();
      ws.close();
      return String(cert.subject.CN);
    };
    try {
      assert.equal(await cnOf(), 'agent');
      await issueCert(ca, pair('server'), { cn: 'agent-rotated', ou: 'vmigrate-peer', san: ['IP:127.0.0.1'], usage: ['serverAuth', 'clientAuth'] });
      serverStore.reload();
      assert.equal(await cnOf(), 'agent-rotated');
    } finally {
      await s.close();
    }
  });
});

describe('RPC server: frames and limits', () => {
  it('answers every malformed frame and keeps serving', async () => {
    const s = await server();
    const ws = await connect(s.url, pem.manager);
    try {
      assert.deepEqual(await exchange(ws, '[null]'), [{ jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request: a request must be a JSON object' } }]);
      assert.equal(((await exchange(ws, '[]')) as { error: { code: number } }).error.code, -32600);
      assert.equal(((await exchange(ws, '{')) as { error: { code: number } }).error.code, -32700);
      assert.equal(((await exchange(ws, Buffer.from([0x22, 0xc3, 0x28, 0x22]))) as { error: { code: number } }).error.code, -32700);
      assert.equal(((await exchange(ws, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 7 }))) as { error: { code: number } }).error.code, -32600);
      assert.equal(((await exchange(ws, JSON.stringify({ jsonrpc: '2.0', id: 1, method: '__proto__' }))) as { error: { code: number } }).error.code, -32601);
      assert.equal(((await exchange(ws, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'constructor' }))) as { error: { code: number } }).error.code, -32601);
      assert.equal(((await exchange(ws, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'Host.ping', params: [1] }))) as { error: { code: number } }).error.code, -32602);
      assert.equal(((await exchange(ws, '{"jsonrpc":"2.0","id":1,"method":"Host.ping","params":{"__proto__":{"x":1}}}')) as { error: { code: number } }).error.code, -32602);
      const binary = (await exchange(ws, Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'Host.ping' })), true)) as { id: number; result: unknown };
      assert.equal(binary.id, 9);
      assert.equal(((await exchange(ws, 'x'.repeat(100_000))) as { error: { code: number } }).error.code, -32600);
      // a notification gets no answer, even when wrong; the next request is answered
      ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'nope' }));
      assert.equal(((await exchange(ws, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'Host.ping' }))) as { id: number }).id, 2);
    } finally {
      ws.close();
      await s.close();
    }
  });

  it('closes the connection on a frame far over the limit instead of reading it', async () => {
    const s = await server();
    const ws = await connect(s.url, pem.manager);
    try {
      const closed = once(ws, 'close');
      ws.send('x'.repeat(200_000));
      const [code] = (await closed) as [number];
      assert.equal(code, 1009);
    } finally {
      await s.close();
    }
  });

  it('refuses connections over the limit', async () => {
    const s = await server({ limits: { maxConnections: 2 } });
    const open = [await connect(s.url, pem.manager), await connect(s.url, pem.manager)];
    try {
      await assert.rejects(connect(s.url, pem.manager), /HTTP 503/);
    } finally {
      for (const ws of open) ws.close();
      await s.close();
    }
  });

  it('answers requests over the in-flight limit with TOO_MANY_REQUESTS', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = await server({ limits: { maxRequestsInFlight: 2 }, verbs: fakeVerbs({ gate }) });
    const ws = await connect(s.url, pem.peer);
    try {
      const req = (id: number): string => JSON.stringify({ jsonrpc: '2.0', id, method: 'VM.migrationCreate', params: { vmUuid: '0b0b4a3e-1c8e-4f57-9b8f-2f1f0a3c4d5e', vmName: 'g', memoryBytes: 1, sourceName: 'a', sourceHostUuid: 'u' } });
      const replies: Array<{ id: number; error?: { code: number } }> = [];
      ws.on('message', (d: Buffer) => replies.push(JSON.parse(d.toString()) as never));
      ws.send(req(1));
      ws.send(req(2));
      ws.send(req(3));
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(replies.map((r) => [r.id, r.error?.code]), [[3, 1015]]);
      release();
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(replies.map((r) => r.id).sort(), [1, 2, 3]);
    } finally {
      ws.close();
      await s.close();
    }
  });

  it('runs a close hook registered after the caller has gone (no admission is left held)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let freed = 0;
    const s = await server({ verbs: fakeVerbs({ gate, closed: () => (freed += 1) }) });
    try {
      const ws = await connect(s.url, pem.peer);
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'VM.migrationCreate', params: { vmUuid: '0b0b4a3e-1c8e-4f57-9b8f-2f1f0a3c4d5e', vmName: 'g', memoryBytes: 1, sourceName: 'a', sourceHostUuid: 'u' } }));
      await new Promise((r) => setTimeout(r, 100));
      ws.terminate();
      await new Promise((r) => setTimeout(r, 100));
      release();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(freed, 1);
    } finally {
      await s.close();
    }
  });

  it('drops a client that stops answering pings, keeps one that answers', async () => {
    const s = await server({ limits: { heartbeatMs: 150 } });
    try {
      const silent = await connect(s.url, pem.manager, { autoPong: false });
      const live = await connect(s.url, pem.manager);
      const [code] = (await once(silent, 'close')) as [number];
      assert.equal(code, 1006);
      assert.equal(live.readyState, WebSocket.OPEN);
      live.close();
      assert.ok(lines.some((l) => l.event === 'rpc.heartbeat_lost'));
    } finally {
      await s.close();
    }
  });

  it('drops a subscriber that stops reading, and logs it; others keep receiving', async () => {
    const s = await server({ limits: { maxSubscriberBufferBytes: 256 << 10 } });
    try {
      const slow = await connect(s.url, pem.reader);
      const fast = await connect(s.url, pem.reader);
      for (const ws of [slow, fast]) await exchange(ws, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'Events.subscribe', params: { topics: ['migration.progress'] } }));
      (Reflect.get(slow, '_socket') as { pause(): void }).pause();
      let received = 0;
      fast.on('message', () => (received += 1));
      const closed = once(slow, 'close');
      const payload = { blob: 'x'.repeat(64 << 10) };
      for (let i = 0; i < 400 && slow.readyState === WebSocket.OPEN; i++) {
        s.notify('migration.progress', payload);
        await new Promise((r) => setImmediate(r));
      }
      (Reflect.get(slow, '_socket') as { resume(): void }).resume();
      await closed;
      assert.ok(received > 0);
      assert.ok(lines.some((l) => l.event === 'rpc.subscriber_dropped' && l.level === 40));
      fast.close();
    } finally {
      await s.close();
    }
  });
});
