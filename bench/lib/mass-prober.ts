/**
 * Fixture run in the lab's client namespace by bench/mass-failover and its
 * namespace test: a client of many VIPs at once. Each of `ips` has its own
 * loop of TCP connections: a connection not made within `connectTimeoutMs`
 * (one SYN: the kernel retries only after 1 s) is given up and tried again, so
 * when a VIP becomes reachable is known to within that; once connected it
 * waits for the first line (the 220 banner, whose last word names the node).
 * Every attempt is recorded on the wall clock (Date.now(), to line up with
 * kernel address events and other processes).
 *   node mass-prober.js '{"ips":["198.18.1.1",...],"port":2525,"connectTimeoutMs":50,"bannerTimeoutMs":1000}'
 *
 * IPC: { cmd: 'attempts', id, sinceMs } -> { type: 'attempts', id, attempts: MassAttempt[] }
 *      (attempts that ended at or after sinceMs)
 */
import * as net from 'node:net';

export interface MassAttempt {
  ip: string;
  start: number;
  /** When the TCP handshake completed (null when it did not). */
  connected: number | null;
  end: number;
  ok: boolean;
  /** The node named in the banner, when one came. */
  node: string | null;
  error: string | null;
}

interface Options {
  ips: string[];
  port: number;
  connectTimeoutMs: number;
  bannerTimeoutMs: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const attempts: MassAttempt[] = [];

function attempt(ip: string): Promise<void> {
  return new Promise((resolve) => {
    const start = Date.now();
    let connected: number | null = null;
    const socket = net.connect({ host: ip, port: options.port });
    let done = false;
    const finish = (ok: boolean, node: string | null, error: string | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      attempts.push({ ip, start, connected, end: Date.now(), ok, node, error });
      resolve();
    };
    let timer = setTimeout(() => finish(false, null, 'connect timeout'), options.connectTimeoutMs);
    socket.on('connect', () => {
      connected = Date.now();
      clearTimeout(timer);
      timer = setTimeout(() => finish(false, null, 'banner timeout'), options.bannerTimeoutMs);
    });
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const eol = buffer.indexOf('\n');
      if (eol < 0) return;
      const line = buffer.slice(0, eol).trim();
      if (line.startsWith('220')) finish(true, line.split(/\s+/).pop() ?? null, null);
      else finish(false, null, line);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => finish(false, null, error.code ?? error.message));
    socket.on('close', () => finish(false, null, 'closed'));
  });
}

async function loop(ip: string): Promise<void> {
  for (;;) {
    await attempt(ip);
    // Refused connections come back at once: a breath between attempts.
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

for (const ip of options.ips) void loop(ip);

process.on('message', (message: { cmd?: string; id?: number; sinceMs?: number }) => {
  if (message.cmd === 'attempts') {
    const since = message.sinceMs ?? 0;
    process.send?.({ type: 'attempts', id: message.id, attempts: attempts.filter((a) => a.end >= since) });
  }
});
process.on('disconnect', () => process.exit(0));
