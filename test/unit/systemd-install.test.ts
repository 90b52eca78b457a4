// systemd/install.sh staged into a temp dir: a runnable tree, valid default config, a unit that verifies.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/daemon/config.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const built = existsSync(join(repo, 'dist/src/daemon/main.js'));
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

describe('systemd/install.sh --destdir', { skip: built ? false : 'dist/src/daemon/main.js not built' }, () => {
  const dest = mkdtempSync(join(tmpdir(), 'vmigrate-install-'));
  const install = () =>
    spawnSync('sh', [join(repo, 'systemd/install.sh'), '--destdir', dest, '--node', process.execPath], { encoding: 'utf8' });
  before(() => {
    const r = install();
    assert.equal(r.status, 0, r.stderr);
  });
  after(() => rmSync(dest, { recursive: true, force: true }));

  it('installs wrappers that exec node on the installed tree', () => {
    const wrapper = join(dest, 'usr/local/bin/vmigrated');
    assert.equal(statSync(wrapper).mode & 0o777, 0o755);
    assert.equal(readFileSync(wrapper, 'utf8'), `#!/bin/sh\nexec ${process.execPath} /opt/vmigrate/dist/src/daemon/main.js "$@"\n`);
    assert.ok(existsSync(join(dest, 'usr/local/bin/vmigrate')));
    assert.ok(!existsSync(join(dest, 'opt/vmigrate/node_modules/typescript')), 'dev dependencies pruned');
    const r = spawnSync(process.execPath, [join(dest, 'opt/vmigrate/dist/src/daemon/main.js'), '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: vmigrated/);
  });

  it('ships a default config that loads, and keeps an edited one on reinstall', () => {
    const conf = join(dest, 'etc/vmigrate/vmigrated.json');
    const c = loadConfig(['--config', conf], {});
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 4411 });
    writeFileSync(conf, '{"maxIncoming": 5}\n');
    assert.equal(install().status, 0);
    assert.equal(readFileSync(conf, 'utf8'), '{"maxIncoming": 5}\n');
  });

  it('installs a unit that passes systemd-analyze verify', { skip: hasAnalyze ? false : 'no systemd-analyze' }, () => {
    const unit = readFileSync(join(dest, 'etc/systemd/system/vmigrated.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/vmigrated --config \/etc\/vmigrate\/vmigrated.json$/m);
    // verify checks that ExecStart exists on this machine: point it at the staged wrapper
    const copy = join(dest, 'vmigrated.service');
    writeFileSync(copy, unit.replace('ExecStart=/usr/local/bin/vmigrated', `ExecStart=${join(dest, 'usr/local/bin/vmigrated')}`));
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual((r.stdout + r.stderr).split('\n').filter((l) => l.includes('vmigrated.service')), []);
  });
});
