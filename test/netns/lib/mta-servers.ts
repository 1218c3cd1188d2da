/**
 * The real MTAs from npm, run inside lab namespaces for the plugin tests:
 * Redis (Debian's redis-server) and CongoDB (a MongoDB wire-protocol server in
 * JavaScript) for ZoneMTA, ZoneMTA itself, Haraka, the sink they deliver to,
 * and swaks as the client. Each namespace has its own loopback, so every node
 * uses the default ports on 127.0.0.1 without clashing.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixturePath, type Lab, type LabProcess, run, waitFor } from '../harness';

const ROOT = path.resolve(__dirname, '..', '..', '..', '..');
/** The package's compiled plugins. */
export const ZONEMTA_PLUGIN = path.join(ROOT, 'dist', 'lib', 'plugins', 'zonemta.js');
export const HARAKA_PLUGIN = path.join(ROOT, 'dist', 'lib', 'plugins', 'haraka.js');
export const ZONEMTA_DIR = path.join(ROOT, 'node_modules', 'zone-mta');
export const HARAKA_BIN = path.join(ROOT, 'node_modules', 'Haraka', 'bin', 'haraka');

const SMARTMONGO = '@push.rocks/smartmongo@2.2.0';
// Its runtime dependencies CongoDB needs (a plain install of the package fails: one of
// its other dependencies is missing from the registry).
const CONGO_DEPS = ['bson@^6.10', 'mingo@^7.2', '@push.rocks/smartfs@^1.3.1', '@push.rocks/smartpath@^5.0.11', '@push.rocks/smartpromise@^4.0.3', '@push.rocks/smartrx@^3'];

/** Why the MTA tests cannot run here (missing package or tool), or undefined. */
export function mtaSkipReason(mta: 'zonemta' | 'haraka'): string | undefined {
  const missing: string[] = [];
  if (mta === 'zonemta' && !fs.existsSync(path.join(ZONEMTA_DIR, 'app.js'))) missing.push('zone-mta (npm install --save-dev zone-mta@3.10.3)');
  if (mta === 'haraka' && !fs.existsSync(HARAKA_BIN)) missing.push('Haraka (npm install --save-dev Haraka@3.3.4)');
  for (const tool of mta === 'zonemta' ? ['redis-server', 'redis-cli', 'swaks'] : ['swaks']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) missing.push(`${tool} (apt-get install ${tool.startsWith('redis') ? 'redis-server' : tool})`);
  }
  if (!missing.length) return undefined;
  const reason = `needs ${missing.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(`CI=true but the ${mta} plugin test cannot run: ${reason}`);
  return reason;
}

/**
 * CongoDB's module path. Fetched once with `npm pack` into os.tmpdir() (never into the
 * repository) and reused by later runs: the folder is complete only once renamed into place.
 */
export async function congoDbModule(): Promise<string> {
  const dir = path.join(os.tmpdir(), 'mta-vip-congodb-2.2.0');
  const entry = path.join(dir, 'package', 'dist_ts', 'congodb', 'index.js');
  if (fs.existsSync(entry)) return entry;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-congodb-build-'));
  try {
    await runIn(work, ['npm', 'pack', '--silent', SMARTMONGO], 120_000);
    const tarball = fs.readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new Error(`npm pack ${SMARTMONGO} produced no tarball in ${work}`);
    await run(['tar', 'xzf', path.join(work, tarball), '-C', work]);
    const deps = path.join(work, 'deps');
    fs.mkdirSync(deps);
    fs.writeFileSync(path.join(deps, 'package.json'), '{"private":true}');
    await runIn(deps, ['npm', 'install', '--silent', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock', ...CONGO_DEPS], 180_000);
    fs.symlinkSync(path.join('..', 'deps', 'node_modules'), path.join(work, 'package', 'node_modules'));
    // relative link: the folder is renamed below
    try {
      fs.renameSync(work, dir);
    } catch (error) {
      if (!fs.existsSync(entry)) throw error; // another run won the race
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return entry;
}

async function runIn(cwd: string, argv: string[], timeoutMs: number): Promise<void> {
  const [file, ...args] = argv;
  await promisify(execFile)(file as string, args, { cwd, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
}

/** Processes the MTA tests start outside spawnNode (redis), and a last-resort sweep of a namespace. */
export class MtaProcesses {
  private readonly children = new Map<ChildProcess, string>();

  constructor(private readonly lab: Lab) {}

  /** Debian's redis-server on 127.0.0.1:port inside the host, without persistence; resolves once it answers PING. */
  async redis(host: string, port = 6379, bind = '127.0.0.1'): Promise<void> {
    const child = spawn('ip', ['netns', 'exec', this.lab.host(host).ns, 'redis-server', '--port', String(port), '--bind', bind, '--protected-mode', 'no', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    this.children.set(child, host);
    child.once('exit', () => this.children.delete(child));
    await waitFor(
      async () => (await this.lab.exec(host, ['redis-cli', '-h', bind, '-p', String(port), 'ping'], { allowFailure: true })).stdout.includes('PONG'),
      { timeoutMs: 10_000, intervalMs: 100, what: `redis on ${host}` },
    );
  }

  /** CongoDB on 127.0.0.1:port inside the host. */
  async congo(host: string, module: string, port = 27017, bind = '127.0.0.1'): Promise<LabProcess> {
    const proc = this.lab.spawnNode(host, fixturePath('congodb'), [JSON.stringify({ module, port, host: bind })]);
    await proc.nextMessage((m: { type?: string }) => m.type === 'listening', 20_000);
    return proc;
  }

  /** The sink on host:port. */
  async sink(host: string, port = 2525): Promise<LabProcess> {
    const proc = this.lab.spawnNode(host, fixturePath('sink'), [JSON.stringify({ host: this.lab.host(host).ipv4, port })]);
    await proc.nextMessage((m: { type?: string }) => m.type === 'listening', 10_000);
    return proc;
  }

  /** Kills every process still running in the host's namespace (all started by this test), then our own children. */
  async sweep(hosts: string[]): Promise<void> {
    for (const host of hosts) {
      for (const pid of await this.lab.pids(host)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    // Only the processes in those hosts: a node's sweep must not take the shared Redis with it.
    for (const [child, host] of this.children) {
      if (!hosts.includes(host)) continue;
      child.kill('SIGKILL');
      this.children.delete(child);
    }
  }
}

/** ZoneMTA's main process (app.js, run from its own folder as it requires) with `config` merged over its defaults. */
export function spawnZoneMta(lab: Lab, host: string, dir: string, config: Record<string, unknown>): LabProcess {
  const file = path.join(dir, `zonemta-${host}.js`);
  fs.writeFileSync(file, `module.exports = ${JSON.stringify(config, null, 2)};\n`);
  return lab.spawnNode(host, path.join(ZONEMTA_DIR, 'app.js'), [`--config=${file}`], { wrapper: ['env', '-C', ZONEMTA_DIR] });
}

/** Creates a Haraka directory (`haraka -i`) and writes `files` (relative path -> content) into it. */
export function makeHarakaDir(dir: string, files: Record<string, string>): void {
  const result = spawnSync(process.execPath, [HARAKA_BIN, '-i', dir], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`haraka -i ${dir} failed: ${result.stderr}`);
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  }
}

/** Haraka (`haraka -c dir`) in the host. */
export function spawnHaraka(lab: Lab, host: string, dir: string): LabProcess {
  return lab.spawnNode(host, HARAKA_BIN, ['-c', dir]);
}

/** Sends one message with swaks from `client`; resolves with swaks's exit code and output. */
export async function swaks(lab: Lab, client: string, server: string, port: number, from: string, to: string, subject: string): Promise<{ code: number; output: string }> {
  const r = await lab.exec(client, ['swaks', '--server', server, '--port', String(port), '--from', from, '--to', to, '--header', `Subject: ${subject}`, '--timeout', '5'], { allowFailure: true, timeoutMs: 15_000 });
  return { code: r.code, output: r.stdout + r.stderr };
}

/** Resolves when `proc`'s output (stdout and stderr) matches `pattern`. */
export function outputMatches(proc: LabProcess, pattern: RegExp, timeoutMs: number, what: string): Promise<true> {
  return waitFor(async () => {
    if (proc.exit) throw new Error(`${what}: the process exited (${JSON.stringify(proc.exit)}) first; output:\n${(proc.stdout + proc.stderr).slice(-3000)}`);
    return pattern.test(proc.stdout) || pattern.test(proc.stderr) ? true : null;
  }, { timeoutMs, intervalMs: 100, what }).catch((error: Error) => {
    throw new Error(`${error.message}\n--- output of ${proc.description} ---\n${(proc.stdout + proc.stderr).slice(-4000)}`);
  });
}

/** What the sink fixture reports for each message. */
export interface Received {
  type: 'received';
  remoteAddress: string;
  from: string;
  to: string[];
  subject: string;
}

/** The one node among `nodes` whose eth0 carries `ip`, or null (none, or several). */
export async function holderOf(lab: Lab, nodes: readonly string[], ip: string): Promise<string | null> {
  const found: string[] = [];
  for (const node of nodes) if ((await lab.addresses(node)).some((a) => a.address === ip)) found.push(node);
  return found.length === 1 ? (found[0] as string) : null;
}

/** Waits until each ip of `expected` is held by its node, and only by it. */
export async function waitHolders(lab: Lab, nodes: readonly string[], expected: Record<string, string>, timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      for (const [ip, node] of Object.entries(expected)) if ((await holderOf(lab, nodes, ip)) !== node) return null;
      return true;
    },
    { timeoutMs, intervalMs: 100, what: `holders ${JSON.stringify(expected)}` },
  );
}

/** The sink's report of the message with `subject`; on timeout the MTAs' recent output is in the error. */
export async function receivedBySubject(sink: LabProcess, mtas: ReadonlyMap<string, LabProcess>, subject: string, timeoutMs = 30_000): Promise<Received> {
  return sink.nextMessage<Received>((m: Received) => m.type === 'received' && m.subject === subject, timeoutMs).catch((error: Error) => {
    const logs = [...mtas].map(([node, p]) => `--- ${node} ---\n${(p.stdout + p.stderr).slice(-4000)}`).join('\n');
    throw new Error(`${error.message}\n${logs}`);
  });
}
