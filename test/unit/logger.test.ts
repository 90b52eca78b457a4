import assert from 'node:assert/strict';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  createJournalDestination,
  createPriorityPrefixDestination,
  encodeJournalEntry,
  entryFromPinoLine,
  journalFieldName,
  pinoLevelToPriority,
  stdoutIsJournal,
} from '../../src/common/journal.js';
import { createLogger, migrationFields, resolveLogTarget } from '../../src/common/logger.js';
import { receiveDatagrams } from '../../src/common/unix-dgram.js';

/** Decodes a native-protocol datagram (both encodings) into [key, value] pairs. */
function decode(buf: Buffer): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  while (i < buf.length) {
    const nl = buf.indexOf(0x0a, i);
    const line = buf.subarray(i, nl).toString();
    const eq = line.indexOf('=');
    if (eq >= 0) {
      out.push([line.slice(0, eq), line.slice(eq + 1)]);
      i = nl + 1;
    } else {
      const len = Number(buf.readBigUInt64LE(nl + 1));
      out.push([line, buf.subarray(nl + 9, nl + 9 + len).toString()]);
      assert.equal(buf[nl + 9 + len], 0x0a);
      i = nl + 10 + len;
    }
  }
  return out;
}

function capture(): { lines: string[]; write(s: string): void } {
  const lines: string[] = [];
  return { lines, write: (s: string) => void lines.push(s) };
}

describe('journal encoding', () => {
  it('maps pino levels to syslog priorities', () => {
    assert.deepEqual([60, 50, 40, 30, 20, 10].map(pinoLevelToPriority), [2, 3, 4, 6, 7, 7]);
  });

  it('turns log keys into journal field names', () => {
    assert.equal(journalFieldName('vmId'), 'VM_ID');
    assert.equal(journalFieldName('vmName'), 'VM_NAME');
    assert.equal(journalFieldName('migrationId'), 'MIGRATION_ID');
    assert.equal(journalFieldName('event'), 'EVENT');
    assert.equal(journalFieldName('dirty-rate'), 'DIRTY_RATE');
    // never overwrite what journald or we set, never pose as a trusted _FIELD
    assert.equal(journalFieldName('message'), 'VMIGRATE_MESSAGE');
    assert.equal(journalFieldName('priority'), 'VMIGRATE_PRIORITY');
    assert.equal(journalFieldName('syslogIdentifier'), 'VMIGRATE_SYSLOG_IDENTIFIER');
    assert.equal(journalFieldName('_pid'), 'VMIGRATE_PID');
    assert.equal(journalFieldName('2fa'), 'VMIGRATE_2FA');
    assert.ok(journalFieldName('x'.repeat(100)).length <= 64);
  });

  it('uses the length-prefixed form for values with newlines', () => {
    const buf = encodeJournalEntry([
      ['MESSAGE', 'hi'],
      ['STACK', 'a\nb'],
    ]);
    const expected = Buffer.concat([
      Buffer.from('MESSAGE=hi\nSTACK\n'),
      Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from('a\nb\n'),
    ]);
    assert.deepEqual(buf, expected);
    assert.deepEqual(decode(buf), [
      ['MESSAGE', 'hi'],
      ['STACK', 'a\nb'],
    ]);
  });

  it('builds fields from a pino line', () => {
    const line = JSON.stringify({
      level: 40, time: 'x', pid: 1, hostname: 'h', msg: 'slow', vmName: 'web1', iteration: 3,
      info: { a: 1 }, err: { type: 'Error', message: 'boom', stack: 'Error: boom\n  at x' },
    });
    const e = entryFromPinoLine(`${line}\n`, 'vmigrated');
    assert.ok(e);
    assert.equal(e.priority, 4);
    assert.deepEqual(Object.fromEntries(e.fields), {
      MESSAGE: 'slow',
      PRIORITY: '4',
      SYSLOG_IDENTIFIER: 'vmigrated',
      VM_NAME: 'web1',
      ITERATION: '3',
      INFO: '{"a":1}',
      ERR_TYPE: 'Error',
      ERR_MESSAGE: 'boom',
      ERR_STACK: 'Error: boom\n  at x',
      VMIGRATE_JSON: line,
    });
    assert.equal(entryFromPinoLine('not json', 'x'), null);
  });

  it('detects the journal stream only when dev:inode matches the fd', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmigrate-log-'));
    const fd = openSync(join(dir, 'f'), 'w');
    try {
      const st = fstatSync(fd);
      assert.equal(stdoutIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd), true);
      assert.equal(stdoutIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1}` }, fd), false);
      assert.equal(stdoutIsJournal({}, fd), false);
      assert.equal(resolveLogTarget('auto', {}), 'stdout');
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prefixes <N> for a journal stream', () => {
    const out = capture();
    createPriorityPrefixDestination(out).write('{"level":50,"msg":"x"}\n');
    assert.deepEqual(out.lines, ['<3>{"level":50,"msg":"x"}\n']);
  });
});

describe('createLogger', () => {
  it('writes JSON lines with migration fields', () => {
    const out = capture();
    const log = createLogger({ destination: out, level: 'debug' });
    log.child(migrationFields({ vmId: 'u1', vmName: 'web1', migrationId: 'm1' })).warn({ event: 'migration.stalled' }, 'no progress');
    log.trace('hidden');
    assert.equal(out.lines.length, 1);
    const rec = JSON.parse(out.lines[0]!) as Record<string, unknown>;
    assert.equal(rec.level, 40);
    assert.equal(rec.msg, 'no progress');
    assert.equal(rec.vmId, 'u1');
    assert.equal(rec.vmName, 'web1');
    assert.equal(rec.migrationId, 'm1');
    assert.equal(rec.event, 'migration.stalled');
    assert.match(String(rec.time), /^\d{4}-\d\d-\d\dT/);
  });

  it('sends native datagrams to a journal socket, falling back when it is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmigrate-log-'));
    const path = join(dir, 'socket');
    const got: Buffer[] = [];
    const rx = receiveDatagrams(path, (b) => got.push(b));
    const fallback = capture();
    try {
      const log = createLogger({ destination: createJournalDestination({ socketPath: path, fallback }) });
      log.error({ vmName: 'web1' }, 'bad\nthing');
      const end = Date.now() + 2000;
      while (got.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      const fields = Object.fromEntries(decode(got[0]!));
      assert.equal(fields.MESSAGE, 'bad\nthing');
      assert.equal(fields.PRIORITY, '3');
      assert.equal(fields.VM_NAME, 'web1');
      assert.equal(fields.SYSLOG_IDENTIFIER, 'vmigrated');
      assert.deepEqual(fallback.lines, []);
    } finally {
      rx.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const log = createLogger({ destination: createJournalDestination({ socketPath: path, fallback }) });
    log.info('after journald went away');
    assert.equal(fallback.lines.length, 1);
    assert.match(fallback.lines[0]!, /after journald went away/);
  });
});
