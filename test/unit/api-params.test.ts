import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MigrateParamsSchema } from '../../src/api/params.js';
import { parseParams } from '../../src/api/validate.js';
import { AgentError, ErrorCodes } from '../../src/api/errors.js';
import { AdmissionDesk } from '../../src/migration/admission.js';

function rejects(params: unknown, pattern: RegExp): void {
  assert.throws(() => parseParams(MigrateParamsSchema, params, 'VM.migrate'), (e: unknown) => {
    assert.ok(e instanceof AgentError);
    assert.equal(e.code, ErrorCodes.INVALID_PARAMS);
    assert.match(e.message, pattern);
    return true;
  });
}

test('VM.migrate params: bad fields are named with the value received', () => {
  rejects({ dst: 'ws://x:1' }, /vmId/);
  rejects({ vmId: 'g', dst: 'http://x' }, /dst.*"http:\/\/x"/);
  rejects({ vmId: 'g', dst: 'ws://x:1', bandwidth: -5 }, /bandwidth.*-5/);
  rejects({ vmId: 'g', dst: 'ws://x:1', bandwidht: 5 }, /unknown parameter\(s\) bandwidht/);
  rejects({ vmId: 'g', dst: 'ws://x:1', autoConvergeInitial: 150 }, /autoConvergeInitial.*150/);
  rejects({ vmId: 'g', dst: 'ws://x:1', tls: 'yes' }, /tls.*"yes"/);
  rejects('nonsense', /params/);
});

test('VM.migrate params: a valid request passes through unchanged', () => {
  const p = parseParams(MigrateParamsSchema, { vmId: 'g', dst: { libvirtUri: 'qemu+tls://b/system' }, bandwidth: 100, policy: 'minimal-downtime' }, 'VM.migrate');
  assert.deepEqual(p.dst, { libvirtUri: 'qemu+tls://b/system' });
  assert.equal(p.bandwidth, 100);
  assert.equal(parseParams(MigrateParamsSchema, { vmId: 'g', dst: 'ws://b:1', tls: true }, 'VM.migrate').tls, true);
});

const here = { name: 'b', hostUuid: 'host-b', libvirtUri: 'qemu:///system' };
const req = (vmUuid: string) => ({ vmUuid, vmName: 'g', memoryBytes: 1, sourceName: 'a', sourceHostUuid: 'host-a' });
const U1 = '11111111-1111-1111-1111-111111111111';
const U2 = '22222222-2222-2222-2222-222222222222';
const U3 = '33333333-3333-3333-3333-333333333333';

test('admission: limit, duplicates, same host and running VM are refused with distinct codes', () => {
  const desk = new AdmissionDesk(2);
  const a = desk.admit(req(U1), here, false);
  assert.equal(a.libvirtUri, 'qemu:///system');
  assert.throws(() => desk.admit(req(U1), here, false), { code: ErrorCodes.DESTINATION_REFUSED });
  desk.admit(req(U2), here, false);
  assert.throws(() => desk.admit(req(U3), here, false), { code: ErrorCodes.TOO_MANY_MIGRATIONS });
  desk.end(a.admissionId);
  assert.equal(desk.incoming, 1);
  desk.admit(req(U3), here, false);
  assert.throws(() => desk.admit({ ...req(U1), sourceHostUuid: 'host-b' }, here, false), { code: ErrorCodes.SAME_HOST });
  assert.throws(() => new AdmissionDesk(5).admit(req(U1), here, true), { code: ErrorCodes.DESTINATION_REFUSED });
});

test('admission: an admission expires so a dead source cannot hold a slot', async () => {
  const desk = new AdmissionDesk(1, 10);
  desk.admit(req(U1), here, false);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(desk.incoming, 0);
});
