// `vmigrate pki`: certificates an agent accepts, with the role in the OU, checked with openssl.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'vmigrate-pki-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const vmigrate = (...args: string[]) => spawnSync(process.execPath, [CLI, 'pki', ...args], { encoding: 'utf8' });
const openssl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8' });

describe('vmigrate pki', () => {
  it('makes a CA, an agent certificate for its host names and a manager certificate', () => {
    assert.equal(vmigrate('ca', '--dir', dir, '--org', 'Example').status, 0);
    const agent = vmigrate('issue', '--dir', dir, '--org', 'Example', '--role', 'peer', '--name', 'hv1', '--host', 'hv1.example.com', '--host', '10.0.0.11');
    assert.equal(agent.status, 0, agent.stderr);
    assert.equal(vmigrate('issue', '--dir', dir, '--org', 'Example', '--role', 'manager', '--name', 'engine').status, 0);
    assert.match(openssl('verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'hv1.pem'), join(dir, 'engine.pem')), /hv1\.pem: OK\n.*engine\.pem: OK/);
    const text = openssl('x509', '-in', join(dir, 'hv1.pem'), '-noout', '-subject', '-ext', 'subjectAltName,extendedKeyUsage');
    assert.match(text, /OU = vmigrate-peer, CN = hv1/);
    assert.match(text, /DNS:hv1\.example\.com, IP Address:10\.0\.0\.11/);
    assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(openssl('x509', '-in', join(dir, 'engine.pem'), '-noout', '-subject'), /O = Example, OU = vmigrate-manager, CN = engine/);
    assert.equal(statSync(join(dir, 'hv1-key.pem')).mode & 0o077, 0, 'keys are private');
  });

  it('refuses an agent certificate without host names, and names that would change the subject', () => {
    const noHost = vmigrate('issue', '--dir', dir, '--role', 'peer', '--name', 'hv2');
    assert.notEqual(noHost.status, 0);
    assert.match(noHost.stderr, /--host is needed/);
    const bad = vmigrate('issue', '--dir', dir, '--role', 'reader', '--name', 'x/OU=vmigrate-manager');
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /letters, digits/);
  });
});
