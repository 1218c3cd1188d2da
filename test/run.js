#!/usr/bin/env node
// Runs the compiled test suites with node's built-in test runner.
//   node test/run.js            every suite (unit, package, sim, then netns)
//   node test/run.js unit       pure tests only, no privileges needed
//   node test/run.js package    the packed package installed into an empty project
//   node test/run.js sim        the deterministic cluster simulation (2,000 seeded schedules)
//   node test/run.js netns      multi-node tests in network namespaces (root)
// Namespace tests make namespaces named after MTA_VIP_RUN_ID; after the run this
// script checks that none is left, deletes any it finds and fails the run.
'use strict';
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

const root = path.resolve(__dirname, '..');
const suites = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'package', 'sim', 'netns'];

function testFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...testFiles(full));
    else if (entry.name.endsWith('.test.js')) out.push(full);
  }
  return out.sort();
}

const runId = process.env.MTA_VIP_RUN_ID || `mv${crypto.randomBytes(3).toString('hex')}`;
const files = suites.flatMap((suite) => testFiles(path.join(root, 'dist', 'test', suite)));
if (!files.length) {
  console.error(`no compiled tests under dist/test/{${suites.join(',')}}: run "npm run build:ts" first`);
  process.exit(1);
}

// One file at a time: namespace tests share the kernel and 2 cores; unit tests are fast anyway.
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], {
  stdio: 'inherit',
  env: { ...process.env, MTA_VIP_RUN_ID: runId },
});

let leftovers = [];
try {
  leftovers = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0])
    .filter((name) => name && name.startsWith(runId));
} catch {
  // no iproute2 or no permission: nothing can have been created either
}
for (const ns of leftovers) spawnSync('ip', ['netns', 'del', ns]);
if (leftovers.length) {
  console.error(`test run left ${leftovers.length} network namespaces behind (${leftovers.join(' ')}): deleted them; the clean-up of some test is broken`);
  process.exit(1);
}
process.exit(result.status === null ? 1 : result.status);
