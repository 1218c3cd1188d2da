// The CLI's own behaviour, without a cluster: help on stdout with exit 0, the
// version, usage errors (unknown flags, a flag without its value, a missing
// argument) with exit 64 naming what is wrong, and an unreachable endpoint
// named with its URL and how to enable it. The commands against a real node
// are tested in test/netns/cluster.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';

const CLI = path.resolve(__dirname, '..', '..', 'lib', 'ops', 'cli.js');
const VERSION = (require('../../../package.json') as { version: string }).version;

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, MTA_VIP_ADMIN_URL: '' } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('--help prints the commands on stdout and exits 0; --version prints the package version', () => {
  const help = cli('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /move <vip> --clear/);
  assert.equal(help.stderr, '');
  assert.deepEqual(cli('-v'), { code: 0, stdout: `${VERSION}\n`, stderr: '' });
});

test('usage errors exit 64 and say what is wrong', () => {
  for (const [args, message] of [
    [['--bogus', 'status'], /Unknown option '--bogus'/],
    [['status', '--url'], /--url <value>' argument missing/],
    [['move', '198.18.1.1'], /move takes <vip> <node>, or <vip> --clear/],
    [['move', '198.18.1.1', 'n2', '--clear'], /move takes <vip> <node>, or <vip> --clear/],
    [[], /no command given/],
    [['stats'], /unknown command "stats"/],
  ] as Array<[string[], RegExp]>) {
    const result = cli(...args);
    assert.equal(result.code, 64, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.match(result.stderr, /mta-vip --help/);
  }
});

test('an endpoint that does not answer is named, with how to enable it', () => {
  const result = cli('status', '--url', 'http://127.0.0.1:47999');
  assert.equal(result.code, 1);
  assert.match(result.stderr, /cannot reach the admin endpoint at http:\/\/127\.0\.0\.1:47999 \(ECONNREFUSED\).*createAdminServer/);
});
