// Sampling a guest's zero pages from QEMU's memory: the pure parts (parsing the monitor's and the
// kernel's text, telling the guest's QEMU, the sampling itself with a fake reader).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findRamMapping, isGuestQemu, parseRamBlocks, sampleZeroShare } from '../../src/libvirt/guest-zero.js';

// QEMU 7.2, a 512 MiB pc guest (the lab's Linux guest)
const RAMBLOCK = `
              Block Name    PSize              Offset               Used              Total
                  pc.ram    4 KiB  0x0000000000000000 0x0000000020000000 0x0000000020000000
    /rom@etc/acpi/tables    4 KiB  0x0000000020080000 0x0000000000020000 0x0000000000200000
                 pc.bios    4 KiB  0x0000000020000000 0x0000000000040000 0x0000000000040000
`;

test('info ramblock: each block with its used and total bytes', () => {
  const blocks = parseRamBlocks(RAMBLOCK);
  assert.equal(blocks.length, 3);
  assert.deepEqual(blocks[0], { name: 'pc.ram', usedBytes: 512 * 1024 * 1024, totalBytes: 512 * 1024 * 1024 });
  assert.deepEqual(blocks[1], { name: '/rom@etc/acpi/tables', usedBytes: 0x20000, totalBytes: 0x200000 });
  assert.deepEqual(parseRamBlocks('unknown command: info ramblock'), []);
});

test('the RAM mapping: writable, not executable, exactly the block size', () => {
  // a 1 GiB guest under TCG: the code buffer is as large as the RAM, but executable
  const maps = [
    '7efda48c8000-7efda8000000 ---p 00000000 00:00 0',
    '7efdd4000000-7efe14000000 rwxp 00000000 00:00 0',
    '7efe14000000-7efe54000000 rw-p 00000000 00:00 0',
    '7efe18400000-7efe1a5a4000 r--p 00000000 fe:00 2149048    /tmp/lab/guest/initrd.cpio',
  ].join('\n');
  assert.deepEqual(findRamMapping(maps, 1024 * 1024 * 1024), { start: 0x7efe14000000, end: 0x7efe54000000 });
  assert.equal(findRamMapping(maps, 512 * 1024 * 1024), null);
});

test('the guest\'s QEMU is told by libvirt\'s -name guest=NAME', () => {
  const argv = (...a: string[]) => `${a.join('\0')}\0`;
  assert.equal(isGuestQemu(argv('/usr/bin/qemu-system-x86_64', '-name', 'guest=web1,debug-threads=on', '-S'), 'web1'), true);
  assert.equal(isGuestQemu(argv('/usr/bin/qemu-system-x86_64', '-name', 'guest=web1'), 'web1'), true);
  assert.equal(isGuestQemu(argv('/usr/bin/qemu-system-x86_64', '-name', 'guest=web10,debug-threads=on'), 'web1'), false);
  assert.equal(isGuestQemu(argv('/usr/sbin/sshd', '-D'), 'web1'), false);
});

test('the zero share from sampled pages', async () => {
  const PAGE = 4096;
  // pages 0..999: every fourth page holds data
  const read = async (i: number) => {
    const b = Buffer.alloc(PAGE);
    if (i % 4 === 0) b[PAGE - 1] = 1;
    return b;
  };
  let seed = 7;
  const rng = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const share = await sampleZeroShare(read, 1000, 2000, rng);
  assert.ok(Math.abs(share - 0.75) < 0.04, `share ${share}`);
  assert.equal(await sampleZeroShare(async () => Buffer.alloc(PAGE), 10, 100), 1, 'never more samples than pages matter');
  assert.equal(await sampleZeroShare(read, 0), 0);
});
