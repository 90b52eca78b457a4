// The destination allow-list: what may reach libvirtd as a peer-to-peer URI, and what never does.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkLibvirtUri, checkMigrationUri, parseAllowRule, UriRefused } from '../../src/daemon/security/libvirt-uri.js';

const defaults = ['qemu+tls://*/system'].map(parseAllowRule);
const lab = [...defaults, parseAllowRule('qemu+unix:///system?socket=/tmp/lab/*')];

function refusedPart(uri: string, rules = lab): string {
  try {
    checkLibvirtUri(uri, rules);
  } catch (err) {
    assert.ok(err instanceof UriRefused, String(err));
    return err.part;
  }
  assert.fail(`${uri} was allowed`);
}

describe('checkLibvirtUri', () => {
  it('allows qemu+tls to any host by default, and the lab sockets when configured', () => {
    checkLibvirtUri('qemu+tls://host-b.example/system', defaults);
    checkLibvirtUri('qemu+tls://10.0.0.2/system', defaults);
    checkLibvirtUri('qemu+unix:///system?socket=/tmp/lab/b/run/libvirt/libvirt-sock', lab);
  });

  it('names the part that is not allowed', () => {
    assert.equal(refusedPart('qemu+ext://x/system?command=/tmp/evil.sh'), 'query command=');
    assert.equal(refusedPart('qemu+ssh://x/system'), 'transport');
    assert.equal(refusedPart('qemu:///system'), 'transport');
    assert.equal(refusedPart('qemu+unix:///system?socket=/tmp/vmigrate-lab/a/sock', defaults), 'transport');
    assert.equal(refusedPart('qemu+unix:///system?socket=/var/run/libvirt/libvirt-sock'), 'query socket=');
    assert.equal(refusedPart('qemu+unix:///system?socket=/tmp/lab/../../etc/sock'), 'query socket=');
    assert.equal(refusedPart('qemu+unix:///system'), 'query socket=');
    assert.equal(refusedPart('qemu+tls://h/system?mode=legacy'), 'query mode=');
    assert.equal(refusedPart('qemu+tls://h/system?no_verify=1'), 'query no_verify=');
    assert.equal(refusedPart('qemu+tls://h/session'), 'path');
    assert.equal(refusedPart('qemu+tls:///system'), 'host');
  });

  it('refuses anything libvirt could read differently: separators, escapes, user info', () => {
    assert.equal(refusedPart('qemu+unix:///system?socket=/tmp/lab/x;command=/bin/sh'), 'characters');
    assert.equal(refusedPart('qemu+tls://h/system?%63ommand=/bin/sh'), 'characters');
    assert.equal(refusedPart('qemu+tls://root@h/system'), 'characters');
    assert.equal(refusedPart('qemu+tls://h/system#x'), 'characters');
    assert.equal(refusedPart('qemu+tls://h/sys tem'), 'characters');
  });

  it('rejects malformed allow rules at configuration time', () => {
    assert.throws(() => parseAllowRule('not a uri'), /not a URI/);
    assert.throws(() => parseAllowRule('qemu+unix:///system?command=x'), /only socket=/);
  });
});

describe('checkMigrationUri', () => {
  it('allows tcp://HOST[:PORT] only', () => {
    checkMigrationUri('tcp://127.0.0.11');
    checkMigrationUri('tcp://10.1.2.3:49152');
    checkMigrationUri('tcp://[fd00::2]:49152');
    for (const bad of ['exec:cat > /tmp/x', 'unix:/tmp/s', 'tcp://h/x', 'tcp://h?x=1', 'tcp://h:1;x', 'rdma://h']) assert.throws(() => checkMigrationUri(bad), UriRefused, bad);
  });
});
