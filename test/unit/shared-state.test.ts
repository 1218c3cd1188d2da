// Where the plugins share the cluster's state with their worker processes:
// a directory only this user can enter, and a file only this user can read;
// a directory that is not private is refused with what to do.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { defaultStateFile, ensurePrivateDir } from '../../lib/plugins/shared-state';

test('the default state file is in a private directory (RUNTIME_DIRECTORY when systemd gives one), never a predictable name in /tmp itself', () => {
  const runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-runtime-'));
  fs.chmodSync(runtime, 0o700);
  try {
    assert.equal(defaultStateFile('lab', 'n1', { RUNTIME_DIRECTORY: runtime }), path.join(runtime, 'lab-n1.json'));
    const file = defaultStateFile('lab/../x', 'n 1', {});
    assert.equal(path.dirname(path.dirname(file)), os.tmpdir());
    assert.notEqual(path.dirname(file), os.tmpdir());
    assert.equal(path.basename(file), 'lab_.._x-n_1.json');
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o077, 0, 'mode 0700');
  } finally {
    fs.rmSync(runtime, { recursive: true, force: true });
  }
});

test('a state directory others can enter, or a symlink in its place, is refused with ESTATEDIR and the fix', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-statedir-'));
  try {
    const open = path.join(base, 'open');
    fs.mkdirSync(open, { mode: 0o777 });
    fs.chmodSync(open, 0o777);
    assert.throws(() => ensurePrivateDir(open), (error: NodeJS.ErrnoException) => error.code === 'ESTATEDIR' && /has mode 777.*Remove it/.test(error.message));
    const link = path.join(base, 'link');
    const target = path.join(base, 'target');
    fs.mkdirSync(target, { mode: 0o700 });
    fs.symlinkSync(target, link);
    assert.throws(() => ensurePrivateDir(link), /is not a directory \(a symlink\?\)/);
    const ok = path.join(base, 'fresh', 'dir');
    ensurePrivateDir(ok);
    assert.equal(fs.statSync(ok).mode & 0o777, 0o700);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});
