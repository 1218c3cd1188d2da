// The package as a user gets it: `npm pack`, installed into an empty project preferring npm's cache
// (`npm ci` has put the dependencies' tarballs there; version lists may still come from the
// registry, as they do for a user), its addon built by its own install script. Then
// require() and import of every documented entry point, a TypeScript file type-checked against the
// published types in a project made by `tsc --init`, and the CLI through npx.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

const ROOT = path.join(__dirname, '..', '..', '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const run = promisify(execFile);

async function sh(cwd: string, file: string, args: string[], timeoutMs = 240_000): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(file, args, { cwd, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024, env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' } });
  } catch (error) {
    const e = error as Error & { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} in ${cwd} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

function skipReason(): string | undefined {
  if (!fs.existsSync(path.join(ROOT, 'build', 'Release', 'mta_vip.node'))) return 'the addon is not built here (npm install)';
  return undefined;
}

describe('the packed package, installed into an empty project', { skip: skipReason() }, () => {
  let work: string;
  let project: string;

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-package-'));
    // dist/ is built (npm test builds it first): no prepare script in the pack.
    const { stdout } = await sh(ROOT, 'npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work]);
    const filename = (JSON.parse(stdout) as Array<{ filename: string }>)[0]?.filename;
    assert.ok(filename, `npm pack named its tarball: ${stdout}`);
    project = path.join(work, 'app');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    // The same @types/node as this checkout's, so its tarball is in the cache; the addon is built by
    // the package's own install script.
    const typesNode = (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8')) as { version: string }).version;
    await sh(project, 'npm', ['install', '--prefer-offline', '--no-package-lock', path.join(work, filename), `@types/node@${typesNode}`], 600_000);
  });

  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('the tarball ships what it needs and no dangling source maps', async () => {
    const pkg = path.join(project, 'node_modules', 'mta-vip');
    for (const file of ['LICENSE', 'README.md', 'package.json', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/plugins/zonemta.js', 'dist/lib/plugins/haraka.js', 'build/Release/mta_vip.node']) {
      assert.ok(fs.existsSync(path.join(pkg, file)), `${file} in the installed package`);
    }
    assert.ok(!fs.existsSync(path.join(pkg, 'dist', 'test')), 'no tests in the package');
    const maps = (fs.readdirSync(path.join(pkg, 'dist', 'lib'), { recursive: true }) as string[]).filter((f) => f.endsWith('.map'));
    assert.ok(maps.length > 20, `source maps shipped (${maps.length})`);
    for (const map of maps) {
      const json = JSON.parse(fs.readFileSync(path.join(pkg, 'dist', 'lib', map), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
      assert.equal(json.sourcesContent?.length, json.sources.length, `${map} carries its sources (the .ts files are not shipped)`);
    }
  });

  test('require() of every entry point: the API, the documented errors, both plugins, the addon', async () => {
    const script = `
      const assert = require('node:assert/strict');
      const m = require('mta-vip');
      for (const name of ['createCluster', 'VipCluster', 'SmtpListener', 'validateConfig', 'createAdminServer', 'ConfigError', 'PluginConfigError', 'BindingNotLocalError', 'BindingMovedError', 'RelayError']) assert.equal(typeof m[name], 'function', name);
      assert.equal(m.ErrorCodes.BINDING_MOVED, 'EBINDINGMOVED');
      assert.equal(typeof require('mta-vip/zonemta').init, 'function');
      assert.equal(typeof require('mta-vip/haraka').register, 'function');
      const net = require('mta-vip/net');
      assert.ok(Array.isArray(net.interfaces()) && net.interfaces().some((i) => i.name === 'lo'), 'the addon answers');
      assert.equal(require('mta-vip/package.json').name, 'mta-vip');
      assert.throws(() => require('mta-vip/dist/lib/cluster'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
      console.log('ok');`;
    assert.equal((await sh(project, process.execPath, ['-e', script])).stdout.trim(), 'ok');
  });

  test('import from an ES module, named exports included', async () => {
    fs.writeFileSync(path.join(project, 'esm.mjs'), `
      import { createCluster, ErrorCodes, BindingNotLocalError } from 'mta-vip';
      import * as zonemta from 'mta-vip/zonemta';
      import { interfaces } from 'mta-vip/net';
      if (typeof createCluster !== 'function' || !ErrorCodes || typeof BindingNotLocalError !== 'function') throw new Error('named exports');
      if (typeof zonemta.init !== 'function' || typeof interfaces !== 'function') throw new Error('subpaths');
      console.log('ok');`);
    assert.equal((await sh(project, process.execPath, ['esm.mjs'])).stdout.trim(), 'ok');
  });

  // What a user's TypeScript sees: the same file checked in a modern ESM project made by tsc --init
  // (nodenext, verbatimModuleSyntax) and in a classic CommonJS one without esModuleInterop, with
  // the library's own declarations checked too (no skipLibCheck).
  const APP_TS = `
    import { createCluster, BindingNotLocalError, type ClusterConfig, type VipStatus } from 'mta-vip';
    import { init as zonemta } from 'mta-vip/zonemta';
    import { interfaces } from 'mta-vip/net';
    const config: ClusterConfig = {
      node: 'mx1',
      cluster: { id: 'mail', secret: 'at least sixteen bytes of secret', bind: '198.18.0.11', peers: ['198.18.0.11', '198.18.0.12'] },
      listeners: ['198.18.1.25:25'],
      bindings: [{ name: 'acme', address: '198.18.1.26' }],
    };
    const cluster = createCluster(config);
    cluster.on('acquired', (e) => console.log(e.ip, e.epoch, e.tookMs));
    const vips: VipStatus[] = cluster.status().vips;
    const isNotLocal = (error: unknown): boolean => error instanceof BindingNotLocalError;
    export { vips, isNotLocal, zonemta, interfaces };
  `;

  async function typeCheck(dir: string): Promise<void> {
    const { stdout } = await sh(dir, process.execPath, [TSC, '--noEmit', '-p', '.']).catch((error: Error) => ({ stdout: error.message }));
    assert.equal(stdout.trim(), '', `tsc --noEmit in ${path.basename(dir)} (${fs.readFileSync(path.join(dir, 'tsconfig.json'), 'utf8').replace(/\/\/.*$/gm, '').replace(/\s+/g, ' ')})`);
  }

  test('a TypeScript file type-checks against the published types in an ESM project made by tsc --init', async () => {
    const dir = path.join(project, 'esm');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'esm-app', private: true, type: 'module' }));
    await sh(dir, process.execPath, [TSC, '--init']);
    fs.writeFileSync(path.join(dir, 'app.ts'), APP_TS);
    await typeCheck(dir);
  });

  // smtp-server's and nodemailer's own declarations, which the API's option types come from, use
  // default imports of node modules: with skipLibCheck off they need allowSyntheticDefaultImports
  // (README). The library's declarations themselves are checked in full here.
  for (const [name, libCheck] of [['cjs-skiplibcheck', { skipLibCheck: true }], ['cjs-libcheck', { skipLibCheck: false, allowSyntheticDefaultImports: true }]] as const) {
    test(`the same file type-checks in a CommonJS project without esModuleInterop (${JSON.stringify(libCheck)})`, async () => {
      const dir = path.join(project, name);
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
        compilerOptions: { module: 'commonjs', moduleResolution: 'node10', target: 'es2022', strict: true, esModuleInterop: false, types: ['node'], ...libCheck },
        files: ['app.ts'],
      }));
      fs.writeFileSync(path.join(dir, 'app.ts'), APP_TS);
      await typeCheck(dir);
    });
  }

  test('npx mta-vip --help prints the usage on stdout and exits 0; --version prints the version', async () => {
    const help = await sh(project, 'npx', ['--offline', '--no-install', 'mta-vip', '--help']);
    assert.match(help.stdout, /^usage: mta-vip <command>/m);
    const version = await sh(project, 'npx', ['--offline', '--no-install', 'mta-vip', '--version']);
    assert.equal(version.stdout.trim(), (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });
});
