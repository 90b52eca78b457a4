import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, test } from 'node:test';
import { ConfigError, envName, flagName, helpRequested, loadConfig, peerLibvirtUri, usage } from '../../src/daemon/config.js';

const dir = mkdtempSync(join(tmpdir(), 'vmigrate-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(content: unknown, name = 'c.json'): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

// an env without VMIGRATED_CONFIG pointing at a missing default would read /etc; point it at nothing
const noFile = { VMIGRATED_CONFIG: undefined };

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has documented defaults', () => {
    const c = loadConfig(['--config', file({})], noFile);
    assert.deepEqual(
      { ...c, configFile: undefined },
      {
        name: hostname(),
        libvirtUri: 'qemu:///system',
        listen: { host: '127.0.0.1', port: 4411 },
        metricsListen: { host: '127.0.0.1', port: 9411 },
        logLevel: 'info',
        logTarget: 'auto',
        monitorIntervalMs: 1000,
        sampleTimeoutMs: 5000,
        maxIncoming: 2,
        maxOutgoing: 2,
        memoryCapacity: null,
        queueTimeoutSec: 600,
        dirtyRateSampleSec: 5,
        migrationAddress: null,
        peerLibvirtUri: null,
        stateDir: '/run/vmigrate',
        migrationTls: false,
        defaultPolicy: 'minimal-downtime',
        tls: true,
        tlsCa: '/etc/vmigrate/pki/ca.pem',
        tlsCert: '/etc/vmigrate/pki/agent.pem',
        tlsKey: '/etc/vmigrate/pki/agent-key.pem',
        roles: { manager: ['OU=vmigrate-manager'], peer: ['OU=vmigrate-peer'], reader: ['OU=vmigrate-reader'] },
        localSocket: null,
        allowedLibvirtUris: ['qemu+tls://*/system'],
        maxConnections: 64,
        maxRequestsInFlight: 16,
        maxBatch: 32,
        maxRequestBytes: 1048576,
        heartbeatMs: 15000,
        maxSubscriberBufferBytes: 4194304,
        configFile: undefined,
      },
    );
  });

  it('layers file < env < flags', () => {
    const path = file({ name: 'from-file', maxIncoming: 4, maxOutgoing: 5, logLevel: 'debug', listen: '0.0.0.0:5000' });
    const c = loadConfig(['--config', path, '--max-outgoing', '7', '--listen', '[::1]:6000'], {
      VMIGRATED_MAX_INCOMING: '3',
      VMIGRATED_MAX_OUTGOING: '6',
      VMIGRATED_METRICS_LISTEN: 'off',
    });
    assert.equal(c.configFile, path);
    assert.equal(c.name, 'from-file');
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.maxIncoming, 3);
    assert.equal(c.maxOutgoing, 7);
    assert.deepEqual(c.listen, { host: '::1', port: 6000 });
    assert.equal(c.metricsListen, null);
  });

  it('accepts the lab command line', () => {
    const c = loadConfig(
      ['--config', file({}), '--name', 'hostA', '--libvirt-uri', 'qemu+unix:///system?socket=/tmp/a/libvirt-sock',
        '--listen', '127.0.0.1:14411', '--metrics-listen', '127.0.0.1:19411'],
      {},
    );
    assert.equal(c.name, 'hostA');
    assert.equal(c.libvirtUri, 'qemu+unix:///system?socket=/tmp/a/libvirt-sock');
    assert.deepEqual(c.metricsListen, { host: '127.0.0.1', port: 19411 });
  });

  it('names the key, value and source of a bad setting', () => {
    assert.equal(
      configError(() => loadConfig(['--config', file({})], { VMIGRATED_MAX_INCOMING: 'abc' })),
      'config key "maxIncoming": expected a positive integer, got "abc" (from VMIGRATED_MAX_INCOMING)',
    );
    assert.equal(
      configError(() => loadConfig(['--config', file({}), '--max-outgoing', '0'], {})),
      'config key "maxOutgoing": expected a positive integer, got 0 (from --max-outgoing)',
    );
    const path = file({ listen: 'localhost' });
    assert.equal(
      configError(() => loadConfig(['--config', path], {})),
      `config key "listen": expected HOST:PORT, e.g. 127.0.0.1:4411 or [::]:4411, got "localhost" (from ${path})`,
    );
    assert.match(configError(() => loadConfig(['--config', file({ logLevel: 'loud' })], {})), /config key "logLevel": expected one of fatal, error/);
    assert.match(configError(() => loadConfig(['--config', file({ listen: '1.2.3.4:70000' })], {})), /"listen".*"1\.2\.3\.4:70000"/);
    assert.match(configError(() => loadConfig(['--config', file({ maxIncoming: 1.5 })], {})), /"maxIncoming".*got 1\.5/);
  });

  it('rejects unknown keys, bad JSON, unknown flags and a missing explicit file', () => {
    const typo = file({ maxIncomming: 3 });
    assert.equal(configError(() => loadConfig(['--config', typo], {})), `config key "maxIncomming": unknown key (from ${typo})`);
    assert.match(configError(() => loadConfig(['--config', file('{"name":', 'bad.json')], {})), /invalid JSON/);
    assert.match(configError(() => loadConfig(['--config', file('[1]', 'arr.json')], {})), /expected a JSON object/);
    assert.match(configError(() => loadConfig(['--bogus'], {})), /command line: .*--bogus/);
    assert.match(configError(() => loadConfig(['--config', join(dir, 'nope.json')], {})), /nope\.json: ENOENT/);
    assert.match(configError(() => loadConfig([], { VMIGRATED_CONFIG: join(dir, 'nope.json') })), /ENOENT/);
  });

  it('takes the file from VMIGRATED_CONFIG', () => {
    const c = loadConfig([], { VMIGRATED_CONFIG: file({ name: 'via-env' }) });
    assert.equal(c.name, 'via-env');
  });

  it('validates the default policy with the controller and accepts null to disable optional listeners', () => {
    const c = loadConfig(['--config', file({ defaultPolicy: { base: 'protect-workload' }, metricsListen: null, migrationAddress: '10.0.0.2' })], {});
    assert.deepEqual(c.defaultPolicy, { base: 'protect-workload' });
    assert.equal(loadConfig(['--config', file({}), '--default-policy', 'stock'], {}).defaultPolicy, 'stock');
    assert.match(
      configError(() => loadConfig(['--config', file({})], { VMIGRATED_DEFAULT_POLICY: 'yolo' })),
      /^config key "defaultPolicy": expected a policy name \(minimal-downtime, .*\) or a policy object, got "yolo" \(from VMIGRATED_DEFAULT_POLICY\): .*yolo/,
    );
    assert.equal(c.metricsListen, null);
    assert.equal(c.migrationAddress, '10.0.0.2');
  });

  it('reads migrationTls as a boolean from the file, and as true/false from env and flags', () => {
    assert.equal(loadConfig(['--config', file({ migrationTls: true })], {}).migrationTls, true);
    assert.equal(loadConfig(['--config', file({})], { VMIGRATED_MIGRATION_TLS: 'true' }).migrationTls, true);
    assert.equal(loadConfig(['--config', file({ migrationTls: true }), '--migration-tls', 'false'], {}).migrationTls, false);
    assert.equal(
      configError(() => loadConfig(['--config', file({})], { VMIGRATED_MIGRATION_TLS: 'yes please' })),
      'config key "migrationTls": expected true or false, got "yes please" (from VMIGRATED_MIGRATION_TLS)',
    );
  });

  it('derives env and flag names and answers --help', () => {
    assert.equal(envName('libvirtUri'), 'VMIGRATED_LIBVIRT_URI');
    assert.equal(envName('metricsListen'), 'VMIGRATED_METRICS_LISTEN');
    assert.equal(flagName('monitorIntervalMs'), 'monitor-interval-ms');
    assert.equal(helpRequested(['--listen', 'x', '-h']), 'help');
    assert.equal(helpRequested(['--version']), 'version');
    assert.equal(helpRequested([]), null);
    assert.match(usage(), /--max-incoming\s+VMIGRATED_MAX_INCOMING/);
  });
});

test('peers reach a local libvirt over TLS by host name unless told otherwise', () => {
  assert.equal(peerLibvirtUri({ libvirtUri: 'qemu:///system', peerLibvirtUri: null }, 'hv1'), 'qemu+tls://hv1/system');
  assert.equal(peerLibvirtUri({ libvirtUri: 'qemu+unix:///system?socket=/x', peerLibvirtUri: null }, 'hv1'), 'qemu+unix:///system?socket=/x');
  assert.equal(peerLibvirtUri({ libvirtUri: 'qemu:///system', peerLibvirtUri: 'qemu+tcp://10.0.0.2/system' }, 'hv1'), 'qemu+tcp://10.0.0.2/system');
  const c = loadConfig(['--peer-libvirt-uri', 'qemu+ssh://root@hv2/system'], {});
  assert.equal(c.peerLibvirtUri, 'qemu+ssh://root@hv2/system');
  assert.throws(() => loadConfig([], { VMIGRATED_PEER_LIBVIRT_URI: 'not a uri' }), /peerLibvirtUri.*not a uri.*VMIGRATED_PEER_LIBVIRT_URI/);
});

describe('loadConfig: TLS and limits', () => {
  it('refuses a non-loopback listen address without TLS, saying why', () => {
    const msg = configError(() => loadConfig(['--config', file({}), '--listen', '0.0.0.0:4411', '--tls', 'false'], noFile));
    assert.match(msg, /"listen".*0\.0\.0\.0:4411 is not a loopback address and "tls" is false \(from --tls\)/);
    assert.match(msg, /unauthenticated/);
  });

  it('allows a plain loopback endpoint when TLS is turned off explicitly', () => {
    for (const listen of ['127.0.0.1:4411', '[::1]:4411', 'localhost:4411']) {
      assert.equal(loadConfig(['--config', file({}), '--listen', listen], { VMIGRATED_TLS: 'off' }).tls, false);
    }
  });

  it('reads roles and allow-lists as JSON from env and flags, and checks them', () => {
    const c = loadConfig(['--config', file({}), '--roles', '{"manager":["CN=engine"]}'], { VMIGRATED_ALLOWED_LIBVIRT_URIS: '["qemu+tls://*/system","qemu+unix:///system?socket=/srv/lab/*"]' });
    assert.deepEqual(c.roles, { manager: ['CN=engine'], peer: [], reader: [] });
    assert.equal(c.allowedLibvirtUris.length, 2);
    assert.match(configError(() => loadConfig(['--config', file({ roles: { admin: ['CN=x'] } })], noFile)), /"roles"/);
    assert.match(configError(() => loadConfig(['--config', file({ roles: { manager: ['CN'] } })], noFile)), /"roles".*ATTRIBUTE=VALUE/);
    assert.match(configError(() => loadConfig(['--config', file({ allowedLibvirtUris: ['qemu+unix:///system?command=x'] })], noFile)), /"allowedLibvirtUris".*only socket=/);
  });
});

