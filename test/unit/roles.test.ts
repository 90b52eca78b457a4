// Roles from certificate subjects, and which verbs each role may call.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CATALOG, type VerbName } from '../../src/api/catalog.js';
import { DEFAULT_ROLE_SUBJECTS, roleAllows } from '../../src/api/roles.js';
import { parseSubjectPattern, roleTable, rolesOf, subjectText } from '../../src/daemon/security/subject.js';

const table = roleTable(DEFAULT_ROLE_SUBJECTS);

describe('roles', () => {
  it('gives each default OU its role, and nothing to an unknown subject', () => {
    assert.deepEqual([...rolesOf({ O: 'x', OU: 'vmigrate-peer', CN: 'a' }, table)], ['peer']);
    assert.deepEqual([...rolesOf({ OU: 'vmigrate-manager', CN: 'engine' }, table)], ['manager']);
    assert.deepEqual([...rolesOf({ OU: ['vmigrate-reader', 'vmigrate-peer'] }, table)].sort(), ['peer', 'reader']);
    assert.deepEqual([...rolesOf({ CN: 'vmigrate-manager' }, table)], []);
  });

  it('requires every RDN of a pattern', () => {
    const t = roleTable({ manager: ['CN=engine,O=Example'], peer: [], reader: [] });
    assert.equal(rolesOf({ CN: 'engine', O: 'Example' }, t).has('manager'), true);
    assert.equal(rolesOf({ CN: 'engine', O: 'Other' }, t).has('manager'), false);
  });

  it('refuses empty or malformed patterns', () => {
    assert.throws(() => parseSubjectPattern(''), /every certificate/);
    assert.throws(() => parseSubjectPattern('OU'), /ATTRIBUTE=VALUE/);
    assert.throws(() => parseSubjectPattern('OU=a,'), /ATTRIBUTE=VALUE/);
  });

  it('lets a manager call every verb, a peer only the agent-to-agent verbs (and capacity), a reader only reads', () => {
    const verbs = Object.keys(CATALOG) as VerbName[];
    assert.ok(verbs.every((v) => roleAllows('manager', v)));
    assert.deepEqual(verbs.filter((v) => roleAllows('peer', v)), ['Host.getCapabilities', 'VM.migrationCreate', 'VM.migrationEnd']);
    assert.deepEqual(verbs.filter((v) => roleAllows('reader', v)), ['Host.ping', 'Host.getCapabilities', 'Host.evacuationStatus', 'VM.list', 'VM.migrateStatus', 'Events.subscribe', 'Events.unsubscribe']);
  });

  it('writes subjects the way logs show them', () => {
    assert.equal(subjectText({ O: 'vmigrate lab', OU: 'vmigrate-peer', CN: 'a' }), 'CN=a,OU=vmigrate-peer,O=vmigrate lab');
  });
});
