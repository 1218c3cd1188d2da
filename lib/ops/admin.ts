/**
 * The optional admin HTTP endpoint: `GET /status` (JSON), `GET /metrics`
 * (Prometheus), `GET /explain?ip=…`, `POST /move` ({ ip, node }; node null clears the move). It listens on
 * 127.0.0.1 by default: moving VIPs is an operator's act, not a network
 * service. With `token`, every request needs `Authorization: Bearer <token>`.
 */
import * as http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { VipCluster } from '../cluster';
import { prometheusText } from './metrics';

export interface AdminOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 7980; 0 picks a free port (see the returned server's address()). */
  port?: number;
  /** Bearer token required on every request, when set. */
  token?: string;
}

const MAX_BODY_BYTES = 4096;

function send(res: http.ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = type === 'application/json' ? `${JSON.stringify(body, null, 2)}\n` : String(body);
  res.writeHead(status, { 'content-type': `${type}; charset=utf-8`, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function authorized(req: http.IncomingMessage, token: string | undefined): boolean {
  if (!token) return true;
  const given = Buffer.from(req.headers.authorization ?? '');
  const wanted = Buffer.from(`Bearer ${token}`);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new RangeError(`request body over ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Starts the admin endpoint for `cluster`; resolves once listening. */
export async function createAdminServer(cluster: VipCluster, options: AdminOptions = {}): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    void handle(cluster, options, req, res).catch((error: Error) => send(res, 500, { error: error.message }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7980, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

async function handle(cluster: VipCluster, options: AdminOptions, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  if (!authorized(req, options.token)) return send(res, 401, { error: 'missing or wrong bearer token' });
  const url = new URL(req.url ?? '/', 'http://admin');
  if (req.method === 'GET' && url.pathname === '/status') return send(res, 200, cluster.status());
  if (req.method === 'GET' && url.pathname === '/metrics') return send(res, 200, prometheusText(cluster.status()), 'text/plain; version=0.0.4');
  if (req.method === 'GET' && url.pathname === '/explain') {
    const ip = url.searchParams.get('ip');
    if (!ip) return send(res, 400, { error: 'explain needs ?ip=<vip>' });
    const explanation = cluster.explain(ip);
    return explanation ? send(res, 200, explanation) : send(res, 404, { error: `no live node declares ${ip}` });
  }
  if (req.method === 'POST' && url.pathname === '/move') {
    let body: { ip?: unknown; node?: unknown };
    try {
      body = JSON.parse(await readBody(req)) as { ip?: unknown; node?: unknown };
    } catch (error) {
      return send(res, 400, { error: `move needs a JSON body {"ip": "...", "node": "..."}: ${(error as Error).message}` });
    }
    if (typeof body.ip !== 'string' || (typeof body.node !== 'string' && body.node !== null)) {
      return send(res, 400, { error: 'move needs {"ip": "<vip>", "node": "<node name>"}, or "node": null to clear a move' });
    }
    try {
      return send(res, 202, cluster.move(body.ip, body.node));
    } catch (error) {
      return send(res, 409, { error: (error as Error).message });
    }
  }
  return send(res, 404, { error: `no ${req.method} ${url.pathname}; try GET /status, GET /metrics, GET /explain?ip=, POST /move` });
}
