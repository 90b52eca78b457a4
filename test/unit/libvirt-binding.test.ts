// The native libvirt binding against libvirt's built-in test driver (test:///default, no daemon).
// test:///default shares one in-memory host per process, so each test uses its own domain names.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { bindingInternals, checkQmpReply } from '../../src/libvirt/binding.js';
import {
  DomainState,
  ErrorCode,
  LibvirtError,
  QemuMonitorError,
  isClosedConnection,
  isNoDomain,
  isUnsupported,
  openConnection,
  type Connection,
  type DomainEvent,
} from '../../src/libvirt/index.js';

const URI = 'test:///default';
// virDomainEventType
const EV = { DEFINED: 0, UNDEFINED: 1, STARTED: 2, STOPPED: 5 } as const;

const domainXml = (name: string): string =>
  `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>` +
  `<os><type>hvm</type></os></domain>`;

async function waitFor(pred: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function rejectsLibvirt(p: Promise<unknown>, code?: number): Promise<LibvirtError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof LibvirtError, `expected LibvirtError, got ${String(e)}`);
    assert.equal(typeof e.code, 'number');
    assert.equal(typeof e.domain, 'number');
    assert.ok(e.message.length > 0);
    if (code !== undefined) assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail('expected a rejection');
}

describe('libvirt binding (test:///default)', () => {
  let conn: Connection;

  before(async () => {
    conn = await openConnection(URI);
  });
  after(async () => {
    await conn.close();
  });

  it('opens and reports host facts', async () => {
    assert.equal(conn.uri, URI);
    assert.equal(conn.isAlive(), true);
    assert.ok((await conn.getHostname()).length > 0);
    const lib = await conn.getLibVersion();
    assert.ok(lib >= 9_000_000, `lib version ${lib}`);
    assert.equal(typeof (await conn.getVersion()), 'number');
    assert.match(await conn.getCapabilities(), /<capabilities>/);
    // The test driver reports no host UUID: a LibvirtError, not a crash or an empty string.
    await conn.getHostUuid().then(
      (u) => assert.match(u, /^[0-9a-f-]{36}$/i),
      (e: unknown) => assert.ok(e instanceof LibvirtError),
    );
  });

  it('lists domains and looks them up by name and UUID', async () => {
    const list = await conn.listAllDomains();
    const t = list.find((d) => d.name === 'test');
    assert.ok(t, 'the test driver has a domain named "test"');
    assert.match(t.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(typeof t.active, 'boolean');
    assert.equal(typeof t.persistent, 'boolean');

    const byName = await conn.lookupByName('test');
    assert.equal(byName.name, 'test');
    assert.equal(byName.uuid, t.uuid);
    const byUuid = await conn.lookupByUuid(t.uuid);
    assert.equal(byUuid.name, 'test');

    const info = await byName.getInfo();
    assert.ok(info.maxMemKiB > 0 && info.nrVirtCpu > 0);
    assert.ok(Object.values(DomainState).includes(info.state));
    const st = await byName.getState();
    assert.equal(typeof st.state, 'number');
    assert.equal(typeof st.reason, 'number');
    assert.match(await byName.getXmlDesc(), /<name>test<\/name>/);
  });

  it('defines, starts, destroys and undefines a domain, with lifecycle events', async () => {
    const name = 'vmigrate-ut-lifecycle';
    const events: DomainEvent[] = [];
    const unsubscribe = await conn.onDomainEvent((ev) => {
      if (ev.domainName === name) events.push(ev);
    });
    const kinds = (): number[] => events.flatMap((e) => (e.kind === 'lifecycle' ? [e.event] : []));

    const dom = await conn.defineXml(domainXml(name));
    assert.equal(dom.name, name);
    assert.equal((await dom.getState()).state, DomainState.SHUTOFF);
    await dom.create();
    assert.equal((await dom.getState()).state, DomainState.RUNNING);
    const summary = (await conn.listAllDomains()).find((d) => d.name === name);
    assert.ok(summary?.active && summary.persistent && summary.id > 0);
    await dom.destroy();
    assert.equal((await dom.getState()).state, DomainState.SHUTOFF);
    await dom.undefine();
    await rejectsLibvirt(conn.lookupByName(name), ErrorCode.NO_DOMAIN);

    await waitFor(() => kinds().length >= 4, 'four lifecycle events');
    assert.deepEqual(kinds(), [EV.DEFINED, EV.STARTED, EV.STOPPED, EV.UNDEFINED]);
    const first = events[0];
    assert.ok(first && first.kind === 'lifecycle');
    assert.equal(first.domainUuid, dom.uuid);

    await unsubscribe();
    await unsubscribe(); // idempotent
    const transient = await conn.createXml(domainXml(`${name}-2`));
    await transient.destroy();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(kinds().length, 4, 'no events after unsubscribe');
  });

  it('rejects unknown domains with VIR_ERR_NO_DOMAIN', async () => {
    const e = await rejectsLibvirt(conn.lookupByName('no-such-domain'), ErrorCode.NO_DOMAIN);
    assert.ok(isNoDomain(e));
    await rejectsLibvirt(conn.lookupByUuid('00000000-0000-0000-0000-000000000042'), ErrorCode.NO_DOMAIN);
    await rejectsLibvirt(conn.lookupByUuid('not-a-uuid'));
    await rejectsLibvirt(conn.defineXml('<domain'));
  });

  it('rejects bad arguments with TypeError', async () => {
    const dom = await conn.lookupByName('test');
    const bad = conn as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const badDom = dom as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    await assert.rejects(bad['lookupByName']!.call(conn, 42), TypeError);
    await assert.rejects(bad['lookupByUuid']!.call(conn), TypeError);
    await assert.rejects(bad['createXml']!.call(conn, {}), TypeError);
    await assert.rejects(bad['createXml']!.call(conn, '<domain/>', -1), TypeError);
    await assert.rejects(bad['setKeepAlive']!.call(conn, 'x', 1), TypeError);
    await assert.rejects(badDom['getXmlDesc']!.call(dom, 1.5), TypeError);
    await assert.rejects(badDom['migrateSetMaxDowntime']!.call(dom, 'fast'), TypeError);
    await assert.rejects(badDom['migrateSetMaxSpeed']!.call(dom, Number.NaN), TypeError);
    await assert.rejects(badDom['qemuMonitorCommand']!.call(dom, null), TypeError);
    await assert.rejects(badDom['migrateToUri3']!.call(dom, 5, {}, 0), TypeError);
    await assert.rejects(dom.migrateToUri3('qemu:///x', { no_such_param: 1 } as never, 0), /unknown migration parameter/);
    await assert.rejects(dom.migrateToUri3('qemu:///x', { bandwidth: '10' } as never, 0), TypeError);
    await assert.rejects(dom.migrateToUri3('qemu:///x', { 'auto_converge.initial': -1 }, 0), TypeError);
    await assert.rejects(dom.migrateToUri3('qemu:///x', [] as never, 0), TypeError);
    assert.throws(() => conn.onClose('nope' as never), TypeError);
    await assert.rejects(conn.onDomainEvent(null as never), TypeError);
    await assert.rejects(openConnection(7 as never), TypeError);
  });

  it('reports driver limitations as LibvirtError (job stats, monitor, keepalive, migration)', async () => {
    const dom = await conn.lookupByName('test');
    // The test driver has no job statistics: it must reject cleanly rather than crash.
    await dom.getJobStats().then(
      (s) => assert.equal(typeof s.type, 'number'),
      (e: unknown) => assert.ok(e instanceof LibvirtError),
    );
    await dom.getJobStats(1).catch((e: unknown) => assert.ok(e instanceof LibvirtError));
    await dom.abortJob().catch((e: unknown) => assert.ok(e instanceof LibvirtError));
    assert.ok(isUnsupported(await rejectsLibvirt(dom.qemuMonitorCommand('{"execute":"query-status"}'))));
    await rejectsLibvirt(dom.qemuMonitorCommand('info status', true));
    await rejectsLibvirt(conn.setKeepAlive(5, 3));
    // Typed parameters are built and passed; the test driver then refuses the migration itself.
    await rejectsLibvirt(
      dom.migrateToUri3(
        '',
        {
          migrate_uri: 'tcp://127.0.0.10:49152',
          destination_name: 'test',
          bandwidth: 100,
          'bandwidth.postcopy': 200,
          'auto_converge.initial': 20,
          'auto_converge.increment': 10,
          'parallel.connections': 2,
          compression: 'xbzrle',
          listen_address: '127.0.0.10',
        },
        1,
      ),
    );
    await rejectsLibvirt(dom.migrateSetMaxDowntime(300));
    await rejectsLibvirt(dom.migrateSetMaxSpeed(100));
    await rejectsLibvirt(dom.migrateStartPostCopy());
  });

  it('turns a QMP error reply into QemuMonitorError', () => {
    const reply = '{"id":"libvirt-42","error":{"class":"CommandNotFound","desc":"The command foo has not been found"}}';
    assert.throws(
      () => checkQmpReply('{"execute":"foo"}', reply),
      (e: unknown) =>
        e instanceof QemuMonitorError &&
        e instanceof LibvirtError &&
        e.qmpClass === 'CommandNotFound' &&
        e.qmpDesc === 'The command foo has not been found' &&
        /CommandNotFound: The command foo has not been found/.test(e.message),
    );
    checkQmpReply('{"execute":"query-status"}', '{"return":{"status":"running"},"id":"libvirt-1"}');
  });

  it('resolves many concurrent calls', async () => {
    const dom = await conn.lookupByName('test');
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      calls.push(i % 3 === 0 ? conn.getHostname() : i % 3 === 1 ? dom.getInfo() : conn.lookupByName('test'));
    }
    calls.push(conn.lookupByName('missing').catch((e: unknown) => e));
    const results = await Promise.all(calls);
    assert.equal(results.length, 301);
    assert.ok(isNoDomain(results[300]));
    const internals = bindingInternals();
    assert.equal(internals.pending, 0);
    assert.ok(internals.poolThreads >= 1 && internals.poolThreads <= 64);
  });

  it('handles closed connections without crashing', async () => {
    const c = await openConnection(URI);
    const dom = await c.lookupByName('test');
    const unsubscribe = await c.onDomainEvent(() => {});
    let closeReason: number | undefined;
    c.onClose((r) => (closeReason = r));
    const inflight = c.getHostname(); // started before close: must still settle
    await c.close();
    await c.close(); // double close is a no-op
    await inflight.catch((e: unknown) => assert.ok(e instanceof LibvirtError));
    assert.equal(c.isAlive(), false);
    assert.ok(isClosedConnection(await rejectsLibvirt(c.getHostname(), ErrorCode.INVALID_CONN)));
    await rejectsLibvirt(c.lookupByName('test'), ErrorCode.INVALID_CONN);
    await rejectsLibvirt(c.listAllDomains(), ErrorCode.INVALID_CONN);
    await rejectsLibvirt(c.onDomainEvent(() => {}), ErrorCode.INVALID_CONN);
    // A domain handle outliving its connection.
    await rejectsLibvirt(dom.getInfo(), ErrorCode.INVALID_CONN);
    await rejectsLibvirt(dom.migrateToUri3('qemu:///x', {}, 0), ErrorCode.INVALID_CONN);
    await rejectsLibvirt(dom.getJobStats(), ErrorCode.INVALID_CONN);
    await unsubscribe();
    assert.equal(closeReason, undefined, 'explicit close() is not reported through onClose');
    // The shared test host is unaffected.
    assert.equal((await conn.lookupByName('test')).name, 'test');
  });

  it('rejects opening an unknown URI with a LibvirtError', async () => {
    await rejectsLibvirt(openConnection('test:///nonexistent/file.xml'));
    await rejectsLibvirt(openConnection('qemu+unix:///system?socket=/nonexistent/libvirt-sock'));
  });
});

describe('process lifetime', () => {
  const index = fileURLToPath(new URL('../../src/libvirt/index.js', import.meta.url));

  function runScript(body: string, timeoutMs = 5000): Promise<{ code: number | null; out: string; ms: number }> {
    const src = `import * as lv from ${JSON.stringify(index)};\n${body}`;
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', src], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`child did not exit within ${timeoutMs} ms; output:\n${out}`));
      }, timeoutMs);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, out, ms: Date.now() - t0 });
      });
    });
  }

  it('exits by itself after close, with events subscribed and handlers registered', async () => {
    const r = await runScript(`
      const c = await lv.openConnection('test:///default');
      c.onClose(() => {});
      let n = 0;
      await c.onDomainEvent(() => n++);
      const d = await c.lookupByName('test');
      await d.destroy();
      await d.create();
      await new Promise((r) => setTimeout(r, 100));
      await c.close();
      console.log('events', n);
    `);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /events 2/);
  });

  it('does not keep the process alive when a connection is left open', async () => {
    const r = await runScript(`
      const c = await lv.openConnection('test:///default');
      await c.onDomainEvent(() => {});
      await c.getHostname();
      console.log('done');
    `);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /done/);
  });

  it('survives worker threads that use the addon and exit mid-call', async () => {
    const r = await runScript(`
      const { Worker } = await import('node:worker_threads');
      const body = 'import * as lv from ' + JSON.stringify(${JSON.stringify(index)}) + ';' +
        'const c = await lv.openConnection("test:///default"); await c.onDomainEvent(() => {});' +
        'c.listAllDomains(); const d = await c.lookupByName("test"); d.getInfo(); process.exit(0);';
      for (let i = 0; i < 5; i++) {
        const w = new Worker(body, { eval: true, type: 'module' });
        await new Promise((res) => w.on('exit', res));
      }
      const c = await lv.openConnection('test:///default');
      console.log('main still works', (await c.lookupByName('test')).name);
      await c.close();
    `, 10000);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /main still works test/);
  });

  it('keeps the process alive until an in-flight call settles', async () => {
    const r = await runScript(`
      const c = await lv.openConnection('test:///default');
      c.listAllDomains().then((l) => console.log('listed', l.length > 0));
    `);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /listed true/);
  });
});
