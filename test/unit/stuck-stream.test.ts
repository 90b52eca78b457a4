// Finding a stuck migration stream in `ss` output (src/migration/stuck-stream.ts, pure parts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { killFilter, parseEstablished, stuckSocketsOf } from '../../src/migration/stuck-stream.js';

// captured on the lab with QEMU 10.0: pid 19238 is the source QEMU of a throttled migration on a cut
// link (4 MB unsent), 19269 its destination, 16191 an agent
const SS = [
  '0      0       127.0.0.11:18332   127.0.0.1:42408 users:(("qemu-system-x86",pid=19269,fd=14))',
  '0      4192370  127.0.0.1:42408  127.0.0.11:18332 users:(("qemu-system-x86",pid=19238,fd=13))',
  '0      0        127.0.0.1:5900   127.0.0.1:51000 users:(("qemu-system-x86",pid=19238,fd=20))',
  '0      120      127.0.0.1:47036  127.0.0.1:17102 users:(("node",pid=16191,fd=30))',
  '0      2048     [::1]:40000      [::1]:49152 users:(("qemu-system-x86",pid=777,fd=9),("qemu-system-x86",pid=778,fd=9))',
  'garbage line',
  '',
].join('\n');

test('parses the established sockets with their unsent bytes, ends and owners (IPv4 and IPv6)', () => {
  const s = parseEstablished(SS);
  assert.equal(s.length, 5);
  assert.deepEqual(s[1], { sendQ: 4192370, local: { addr: '127.0.0.1', port: 42408 }, peer: { addr: '127.0.0.11', port: 18332 }, pids: [19238] });
  assert.deepEqual(s[4], { sendQ: 2048, local: { addr: '::1', port: 40000 }, peer: { addr: '::1', port: 49152 }, pids: [777, 778] });
});

test('only the sockets of that QEMU with data the peer has not taken: its idle VNC client is left alone', () => {
  const all = parseEstablished(SS);
  assert.deepEqual(stuckSocketsOf(all, 19238).map((x) => x.local.port), [42408]);
  assert.deepEqual(stuckSocketsOf(all, 19269), [], 'the destination end holds nothing');
  assert.deepEqual(stuckSocketsOf(all, 16191).length, 1);
  assert.deepEqual(stuckSocketsOf(all, 4242), []);
});

test('the kill filter names exactly the one connection', () => {
  const [stuck] = stuckSocketsOf(parseEstablished(SS), 19238);
  assert.deepEqual(killFilter(stuck!), ['-K', '-tn', 'state', 'established', 'src', '127.0.0.1', 'sport', '=', ':42408', 'dst', '127.0.0.11', 'dport', '=', ':18332']);
});
