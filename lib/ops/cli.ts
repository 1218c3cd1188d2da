#!/usr/bin/env node
/**
 * mta-vip status|explain|move: talks to a node's admin endpoint.
 *
 *   mta-vip status [--json]            VIPs, owners, flags; peers
 *   mta-vip explain <vip>              why the owner is the owner
 *   mta-vip move <vip> <node>          planned move (the holder drains, the node takes it)
 *   mta-vip move <vip> --clear         lifts the move
 * Options: --url http://127.0.0.1:7980 (or MTA_VIP_ADMIN_URL), --token T (or MTA_VIP_ADMIN_TOKEN).
 */
import type { ClusterStatus } from '../cluster';

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs as parseArgv } from 'node:util';

const USAGE = `usage: mta-vip <command> [options]

commands:
  status [--json]          VIPs, owners, flags, epochs; peers
  explain <vip>            why the owner is the owner
  move <vip> <node>        planned move: the holder drains, <node> takes the VIP
  move <vip> --clear       lifts a move: the election decides again

options:
  --url URL                the node's admin endpoint (default $MTA_VIP_ADMIN_URL or http://127.0.0.1:7980)
  --token T                its bearer token (default $MTA_VIP_ADMIN_TOKEN)
  --json                   status as JSON
  -h, --help               this help
  -v, --version            the package version`;

interface Args {
  command: string | undefined;
  rest: string[];
  url: string;
  token: string | undefined;
  json: boolean;
  clear: boolean;
  help: boolean;
  version: boolean;
}

/** A usage error: exit 64 (EX_USAGE) with the message and a pointer to --help. */
class UsageError extends Error {}

function parseArgs(argv: string[]): Args {
  try {
    const { values, positionals } = parseArgv({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        json: { type: 'boolean', default: false },
        clear: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'v', default: false },
      },
    });
    const [command, ...rest] = positionals;
    return {
      command,
      rest,
      url: values.url ?? process.env.MTA_VIP_ADMIN_URL ?? 'http://127.0.0.1:7980',
      token: values.token ?? process.env.MTA_VIP_ADMIN_TOKEN,
      json: values.json === true,
      clear: values.clear === true,
      help: values.help === true,
      version: values.version === true,
    };
  } catch (error) {
    // parseArgs names the flag: "Unknown option '--bogus'", "Option '--url <value>' argument missing".
    throw new UsageError((error as Error).message);
  }
}

function packageVersion(): string {
  // dist/lib/ops/cli.js -> package.json at the package root.
  const file = path.resolve(__dirname, '..', '..', '..', 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

async function call(args: Args, method: string, path: string, body?: unknown): Promise<unknown> {
  let url: URL;
  try {
    url = new URL(path, args.url);
  } catch {
    throw new UsageError(`--url ${JSON.stringify(args.url)} is not a URL; give the admin endpoint, e.g. --url http://127.0.0.1:7980`);
  }
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { ...(args.token ? { authorization: `Bearer ${args.token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(
      `cannot reach the admin endpoint at ${url.origin} (${cause?.code ?? cause?.message ?? (error as Error).message}): is the node running with its admin endpoint enabled (createAdminServer(cluster, { port }) in the application)? Point --url or MTA_VIP_ADMIN_URL at it.`,
    );
  }
  const data = (await response.json()) as { error?: string };
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${data.error ?? ''}`);
  return data;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  ').trimEnd()).join('\n');
}

function printStatus(status: ClusterStatus): void {
  const rows = [['VIP', 'STATE', 'OWNER', 'RULE', 'FLAGS', 'HERE', 'EPOCH']];
  for (const v of status.vips) {
    const flags = [v.flags.broken ? 'BROKEN' : '', v.flags.conflict ? 'conflict' : '', v.flags.unsafe ? 'UNSAFE' : ''].filter(Boolean).join(',') || '-';
    rows.push([v.ip, v.state, v.owner ?? '-', v.rule, flags, v.phase, String(v.epoch)]);
  }
  console.log(`node ${status.node}  settled=${status.settled}  quorum=${status.quorum}`);
  console.log(table(rows));
  console.log('');
  console.log(table([['PEER', 'ADDRESS', 'LIVE', 'LAST HEARD', 'LOSS', 'DEAD AFTER'], ...status.peers.map((p) => [p.node, p.address, String(p.live), `${p.lastHeardMsAgo} ms ago`, `${p.lossPercent} %`, `${p.silenceLimitMs} ms`])]));
  for (const v of status.vips) {
    for (const evidence of [v.flags.broken, v.flags.conflict, v.flags.unsafe]) if (evidence) console.log(`\n${v.ip}: ${evidence.message}`);
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  if (args.version) {
    console.log(packageVersion());
    return 0;
  }
  switch (args.command) {
    case 'status': {
      const status = (await call(args, 'GET', '/status')) as ClusterStatus;
      if (args.json) console.log(JSON.stringify(status, null, 2));
      else printStatus(status);
      return 0;
    }
    case 'explain': {
      const [ip] = args.rest;
      if (!ip) throw new Error('usage: mta-vip explain <vip>');
      console.log(JSON.stringify(await call(args, 'GET', `/explain?ip=${encodeURIComponent(ip)}`), null, 2));
      return 0;
    }
    case 'move': {
      const [ip, node] = args.rest;
      if (!ip || (!node && !args.clear) || (node && args.clear)) throw new UsageError('move takes <vip> <node>, or <vip> --clear to lift a move');
      console.log(JSON.stringify(await call(args, 'POST', '/move', { ip, node: args.clear ? null : node }), null, 2));
      return 0;
    }
    case undefined:
      throw new UsageError('no command given');
    default:
      throw new UsageError(`unknown command ${JSON.stringify(args.command)}`);
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    console.error(`mta-vip: ${error.message}`);
    if (error instanceof UsageError) console.error('Run mta-vip --help for the commands and options.');
    process.exit(error instanceof UsageError ? 64 : 1);
  },
);
