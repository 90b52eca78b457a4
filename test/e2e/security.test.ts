// Security on the lab, against the real agents with their real certificates: who is refused, that a
// forbidden destination never reaches libvirtd, that hostile destination agents fail only their
// own migration, and that an admission is freed whenever its caller goes away.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import { defineGuest, destroyGuest, labDown, type LabHostInfo, type LabInfo } from '../../src/lab/index.js';
import { labAgentTls, labClientTls } from '../../src/lab/lab-pki.js';
import { ensureCa, issueCert } from '../../src/common/pki.js';
import { call, callError, rawCall, sleep, type ClientTlsPaths } from '../helpers/raw-rpc.js';
import { migrateCompletes, twoHosts } from '../helpers/lab-hosts.js';

const isRoot = process.getuid?.() === 0;
const work = mkdtempSync(join(tmpdir(), 'vmigrate-security-'));
let lab: LabInfo;
let A: LabHostInfo;
let B: LabHostInfo;
const agent = (h: LabHostInfo): string => h.agentUrl ?? assert.fail(`lab host ${h.name} has no agent`);

interface Vm {
  name: string;
  state: string;
}

const runningOn = async (h: LabHostInfo, name: string): Promise<boolean> => (await call<Vm[]>(agent(h), 'VM.list')).some((v) => v.name === name && v.state === 'running');

/** A script that, if anything ever ran it, would leave a marker file. */
function markerScript(name: string): { script: string; marker: string } {
  const marker = join(work, `${name}.ran`);
  const script = join(work, `${name}.sh`);
  writeFileSync(script, `#!/bin/sh\nid > ${marker}\n`);
  chmodSync(script, 0o755);
  return { script, marker };
}

/** Does a TLS WebSocket connection with these options open? */
function opens(url: string, options: WebSocket.ClientOptions): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, options);
    const got: string[] = [];
    ws.on('message', (m) => got.push(String(m)));
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('error', (e) => resolve(`refused: ${e.message}${got.length ? ` after ${got.length} messages` : ''}`));
  });
}

type Behaviour = 'null' | 'garbage' | 'huge' | 'silent' | 'bad-uri' | 'not-a-peer';

/** A destination "agent" that speaks TLS with a certificate of the lab's CA, then misbehaves. */
async function hostileAgent(behaviour: Behaviour, badUri?: string): Promise<{ url: string; close(): Promise<void> }> {
  const own = behaviour === 'not-a-peer' ? await labClientTls(lab.dir, 'manager') : await labAgentTls(lab.dir, `hostile-${behaviour}`);
  // a manager's certificate is a client certificate: issue a server one with the manager's OU
  const serverPair = behaviour === 'not-a-peer'
    ? await issueCert({ cert: own.ca, key: own.ca.replace(/ca\.pem$/, 'ca-key.pem') }, { cert: join(work, 'mgr-server.pem'), key: join(work, 'mgr-server-key.pem') }, { cn: 'impostor', ou: 'vmigrate-manager', san: ['IP:127.0.0.1'], usage: ['serverAuth'] })
    : own;
  const https: Server = createServer({ ca: readFileSync(own.ca), cert: readFileSync(serverPair.cert), key: readFileSync(serverPair.key), requestCert: true, rejectUnauthorized: true });
  const wss = new WebSocketServer({ server: https });
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const req = JSON.parse(String(data)) as { id: number };
      if (behaviour === 'null') ws.send('null');
      else if (behaviour === 'garbage') ws.send('\u0000{]]garbage');
      else if (behaviour === 'huge') ws.send(JSON.stringify({ jsonrpc: '2.0', id: req.id, result: { admissionId: 'x'.repeat(4 << 20) } }));
      else if (behaviour === 'bad-uri') ws.send(JSON.stringify({ jsonrpc: '2.0', id: req.id, result: { admissionId: 'a1', libvirtUri: badUri, hostUuid: '00000000-0000-4000-8000-000000000001', name: 'evil' } }));
      // silent: never answers
    });
  });
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  return {
    url: `wss://127.0.0.1:${(https.address() as AddressInfo).port}`,
    close: () =>
      new Promise((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        https.close(() => r());
      }),
  };
}

describe('security on the lab', { skip: isRoot ? false : 'needs root (lab hosts)' }, () => {
  let operator: ClientTlsPaths;
  let reader: ClientTlsPaths;

  before(async () => {
    ({ lab, A, B } = await twoHosts());
    operator = lab.tls;
    reader = await labClientTls(lab.dir, 'reader');
  });

  after(async () => {
    await labDown();
    rmSync(work, { recursive: true, force: true });
  });

  test('without a client certificate, with one from another CA, or over plain ws://: no way in', async () => {
    const ca = readFileSync(operator.ca);
    assert.match(await opens(agent(A), { ca }), /^refused/);
    const otherCa = await ensureCa(join(work, 'other-ca'));
    const stranger = await issueCert(otherCa, { cert: join(work, 'stranger.pem'), key: join(work, 'stranger-key.pem') }, { cn: 'stranger', ou: 'vmigrate-manager', usage: ['clientAuth'] });
    assert.match(await opens(agent(A), { ca, cert: readFileSync(stranger.cert), key: readFileSync(stranger.key) }), /^refused/);
    const plain = await opens(agent(A).replace('wss://', 'ws://'), {});
    assert.match(plain, /^refused/);
    assert.doesNotMatch(plain, /messages/, 'a plain ws:// client gets no JSON-RPC answer');
    assert.equal(await opens(agent(A), { ca, cert: readFileSync(operator.cert), key: readFileSync(operator.key) }), 'open');
  });

  test('a reader may list and read status, and is refused VM.migrate with PERMISSION_DENIED', async () => {
    const name = 'sec-reader';
    await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 8, rateMiB: 4 });
    try {
      const listed = await rawCall(agent(A), 'VM.list', {}, 30_000, reader);
      assert.ok((listed.result as Vm[]).some((v) => v.name === name));
      const refused = await rawCall(agent(A), 'VM.migrate', { vmId: name, dst: agent(B) }, 30_000, reader);
      assert.equal(refused.error?.code, 1014);
      assert.equal(refused.error?.data?.name, 'PERMISSION_DENIED');
      assert.match(refused.error!.message, /OU=vmigrate-reader/);
      assert.ok(await runningOn(A, name));
      const log = readFileSync(join(lab.dir, 'a', 'agent.log'), 'utf8');
      assert.match(log, /"event":"rpc.refused","method":"VM.migrate","caller":"CN=reader,OU=vmigrate-reader,O=vmigrate lab"/);
    } finally {
      await destroyGuest(A.libvirtUri, name);
    }
  });

  test('a forbidden libvirt URI is refused with INVALID_PARAMS naming the part, and never reaches libvirtd', async () => {
    const name = 'sec-uri';
    await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 8, rateMiB: 4 });
    try {
      const ext = markerScript('ext');
      const cases: Array<[string, RegExp]> = [
        [`qemu+ext://x/system?command=${ext.script}`, /command=.*never allowed/],
        [`qemu+ssh://x/system`, /transport qemu\+ssh is not allowed/],
        [`qemu+unix:///system?socket=/run/libvirt/libvirt-sock`, /socket=\/run\/libvirt\/libvirt-sock is outside the allowed directories/],
        [`qemu+tls://x/system?mode=legacy`, /query key mode= is not allowed/],
      ];
      for (const [uri, why] of cases) {
        const err = await callError(agent(A), 'VM.migrate', { vmId: name, dst: { libvirtUri: uri } });
        assert.equal(err.code, -32602, uri);
        assert.match(err.message, /dst\.libvirtUri/);
        assert.match(err.message, why);
      }
      const viaAgent = await callError(agent(A), 'VM.migrate', { vmId: name, dst: { agent: agent(B), libvirtUri: `qemu+ext://x/system?command=${ext.script}` } });
      assert.equal(viaAgent.code, -32602);
      await sleep(1000);
      assert.equal(existsSync(ext.marker), false, 'the command of a refused URI never ran');
      assert.doesNotMatch(readFileSync(join(lab.dir, 'a', 'libvirtd.log'), 'utf8'), /qemu\+ext|ext\.sh/, 'libvirtd never saw the URI');
      assert.ok(await runningOn(A, name));
      // the agent still migrates this VM to an allowed destination
      await migrateCompletes(A, B, name);
    } finally {
      await destroyGuest(A.libvirtUri, name).catch(() => undefined);
    }
  });

  test('hostile destination agents fail only their own migration, within a timeout', { timeout: 240_000 }, async () => {
    const name = 'sec-hostile';
    await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 8, rateMiB: 4 });
    const pid = A.agentPid ?? assert.fail('no agent pid');
    try {
      const evil = markerScript('returned');
      const expected: Record<Behaviour, number[]> = {
        null: [1004, 1006],
        garbage: [1004, 1006],
        huge: [1004, 1006],
        silent: [1004],
        'bad-uri': [1006],
        'not-a-peer': [1004],
      };
      for (const behaviour of Object.keys(expected) as Behaviour[]) {
        const dst = await hostileAgent(behaviour, `qemu+ext://x/system?command=${evil.script}`);
        try {
          const t0 = Date.now();
          const err = await callError(agent(A), 'VM.migrate', { vmId: name, dst: dst.url });
          const took = Date.now() - t0;
          assert.ok(expected[behaviour].includes(err.code), `${behaviour}: got ${err.code} ${err.message}`);
          assert.ok(took < 25_000, `${behaviour}: answered after ${took} ms`);
          assert.doesNotMatch(err.message, /\/tmp\/vmigrate-lab\/.*sock|\bat [A-Za-z.]+ \(/, 'no host paths or stacks in the answer');
        } finally {
          await dst.close();
        }
        assert.doesNotThrow(() => process.kill(pid, 0), `${behaviour}: the source agent process is still the same`);
        assert.equal((await call<{ ok: boolean }>(agent(A), 'Host.ping')).ok, true, `${behaviour}: source agent still serves`);
        assert.ok(await runningOn(A, name), `${behaviour}: VM still runs on the source`);
      }
      assert.equal(existsSync(evil.marker), false, "the command in a destination's returned URI never ran");
    } finally {
      await destroyGuest(A.libvirtUri, name);
    }
  });

  test('an admission is freed when its caller disconnects, even in the middle of VM.migrationCreate', async () => {
    const peer = await labAgentTls(lab.dir, 'sec-peer');
    const peerOpts = { ca: readFileSync(peer.ca), cert: readFileSync(peer.cert), key: readFileSync(peer.key) };
    const request = (i: number): string =>
      JSON.stringify({ jsonrpc: '2.0', id: i, method: 'VM.migrationCreate', params: { vmUuid: `0b0b4a3e-1c8e-4f57-9b8f-2f1f0a3c4d5${i}`, vmName: `ghost${i}`, memoryBytes: 1 << 20, sourceName: 'elsewhere', sourceHostUuid: '00000000-0000-4000-8000-00000000000a' } });
    // more than b's incoming limit (2), each dropped as soon as it is sent
    for (let i = 0; i < 4; i++) {
      const ws = new WebSocket(agent(B), peerOpts);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => {
          ws.send(request(i));
          ws.terminate();
          resolve();
        });
        ws.once('error', reject);
      });
    }
    await sleep(500);
    const metrics = await fetch(B.metricsUrl!).then((r) => r.text());
    assert.match(metrics, /^vmigrate_migrations_incoming 0$/m);
    // and a real migration is still admitted
    const name = 'sec-admit';
    await defineGuest({ host: 'a', name, ramMiB: 128, wsMiB: 8, rateMiB: 4 });
    try {
      await migrateCompletes(A, B, name);
    } finally {
      await destroyGuest(A.libvirtUri, name).catch(() => undefined);
    }
  });

  test('the local socket is root-only and serves as a manager', async () => {
    const url = A.agentSocketUrl ?? assert.fail('no local socket');
    const path = url.replace(/^ws\+unix:\/\//, '').replace(/:\/$/, '');
    const { statSync } = await import('node:fs');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const reply = await rawCall(url, 'VM.list', {});
    assert.ok(Array.isArray(reply.result));
  });
});
