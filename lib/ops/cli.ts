#!/usr/bin/env node
/**
 * mta-vip status|explain|move: talks to a node's admin endpoint.
 *
 *   mta-vip status [--json]            VIPs, owners, flags; peers
 *   mta-vip explain <vip>              why the owner is the owner
 *   mta-vip move <vip> <node>          planned move (the holder drains, the node takes it)
 * Options: --url http://127.0.0.1:7980 (or MTA_VIP_ADMIN_URL), --token T (or MTA_VIP_ADMIN_TOKEN).
 */
import type { ClusterStatus } from '../cluster';

interface Args {
  command: string | undefined;
  rest: string[];
  url: string;
  token: string | undefined;
  json: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { command: undefined, rest: [], url: process.env.MTA_VIP_ADMIN_URL ?? 'http://127.0.0.1:7980', token: process.env.MTA_VIP_ADMIN_TOKEN, json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--url') args.url = argv[++i] ?? args.url;
    else if (arg === '--token') args.token = argv[++i];
    else if (arg === '--json') args.json = true;
    else if (args.command === undefined) args.command = arg;
    else args.rest.push(arg);
  }
  return args;
}

async function call(args: Args, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(new URL(path, args.url), {
    method,
    headers: { ...(args.token ? { authorization: `Bearer ${args.token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
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
  console.log(table([['PEER', 'ADDRESS', 'LIVE', 'LAST HEARD'], ...status.peers.map((p) => [p.node, p.address, String(p.live), `${p.lastHeardMsAgo} ms ago`])]));
  for (const v of status.vips) {
    for (const evidence of [v.flags.broken, v.flags.conflict, v.flags.unsafe]) if (evidence) console.log(`\n${v.ip}: ${evidence.message}`);
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
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
      if (!ip || !node) throw new Error('usage: mta-vip move <vip> <node>');
      console.log(JSON.stringify(await call(args, 'POST', '/move', { ip, node }), null, 2));
      return 0;
    }
    default:
      console.error('usage: mta-vip status [--json] | explain <vip> | move <vip> <node>   [--url URL] [--token T]');
      return 64;
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    console.error(`mta-vip: ${error.message}`);
    process.exit(1);
  },
);
