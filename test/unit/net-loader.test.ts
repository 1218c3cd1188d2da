// The addon loader: where it looks, the error when the binary is missing, and
// `capability`. Each case runs in a child process so the module cache and the
// environment start clean.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addonCandidates, packageRoot } from '../../lib/net/addon';

const netModule = path.resolve(__dirname, '../../lib/net/index.js');

function runChild(script: string, env: NodeJS.ProcessEnv): unknown {
  const output = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return JSON.parse(output);
}

test('packageRoot finds the directory of mta-vip\'s package.json from the compiled code', () => {
  const root = packageRoot();
  assert.equal(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).name, 'mta-vip');
  assert.deepEqual(addonCandidates({}), [path.join(root, 'build', 'Release', 'mta_vip.node')]);
  assert.deepEqual(addonCandidates({ MTA_VIP_ADDON: '/x/y.node' }), ['/x/y.node']);
});

test('MTA_VIP_ADDON pointing at a missing file: one actionable error, capability.loaded false, nothing thrown on import', () => {
  const missing = path.join(os.tmpdir(), `mta-vip-missing-${process.pid}.node`);
  const result = runChild(
    `const net = require(${JSON.stringify(netModule)});
     const out = { loaded: net.capability.loaded, capabilityError: net.capability.error };
     try { net.interfaces(); } catch (e) { out.message = e.message; out.code = e.code; }
     process.stdout.write(JSON.stringify(out));`,
    { MTA_VIP_ADDON: missing },
  ) as { loaded: boolean; capabilityError: string; message: string; code: string };
  assert.equal(result.loaded, false);
  assert.equal(result.code, 'EADDONNOTBUILT');
  assert.match(result.message, /^mta-vip's native addon is not built \(looked in /);
  assert.ok(result.message.includes(missing), result.message);
  assert.match(result.message, /npm run build:native/);
  assert.match(result.message, /node-gyp rebuild --nodedir=/);
  assert.equal(result.capabilityError, result.message);
});

test('a file that is not an addon gives a load error naming the file', () => {
  const bogus = path.join(os.tmpdir(), `mta-vip-bogus-${process.pid}.node`);
  fs.writeFileSync(bogus, 'not an ELF file');
  try {
    const result = runChild(
      `const net = require(${JSON.stringify(netModule)});
       try { net.interfaces(); } catch (e) { process.stdout.write(JSON.stringify({ message: e.message, code: e.code })); }`,
      { MTA_VIP_ADDON: bogus },
    ) as { message: string; code: string };
    assert.equal(result.code, 'EADDONLOAD');
    assert.ok(result.message.includes(bogus), result.message);
  } finally {
    fs.rmSync(bogus, { force: true });
  }
});

test('argument errors come before the addon is even loaded (so before any syscall)', () => {
  const result = runChild(
    `const net = require(${JSON.stringify(netModule)});
     const calls = [
       () => net.addAddress('eth0', '1.2.3'),
       () => net.removeAddress('eth0', '198.51.100.7/33'),
       () => net.announce('eth0', ['nope']),
       () => net.probe('eth0', '198.51.100.7', { timeoutMs: -1 }),
       () => net.arpAllHosts('', '198.51.100.7'),
     ];
     Promise.all(calls.map((call) => call().then(() => 'resolved', (e) => e.name + ': ' + e.message)))
       .then((out) => process.stdout.write(JSON.stringify(out)));`,
    { MTA_VIP_ADDON: '/nonexistent/mta_vip.node' },
  ) as string[];
  assert.match(result[0]!, /^TypeError: addAddress: cidr "1\.2\.3"/);
  assert.match(result[1]!, /^RangeError: removeAddress: cidr/);
  assert.match(result[2]!, /^TypeError: announce: addresses\[0\] "nope"/);
  assert.match(result[3]!, /^RangeError: probe: options\.timeoutMs/);
  assert.match(result[4]!, /^TypeError: arpAllHosts: ifname/);
  for (const line of result) assert.doesNotMatch(line, /not built/);
});
