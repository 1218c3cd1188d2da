/**
 * Helpers for the MTA tests: runs examples/standalone-mta.js (the real example)
 * as a lab node, reads its JSON log lines, and talks to the client and sink
 * fixtures.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import type { Lab, LabProcess } from '../harness';
import { waitFor } from './wait';

/** Path of the compiled example: dist/examples/standalone-mta.js. */
export const EXAMPLE = path.join(__dirname, '..', '..', '..', 'examples', 'standalone-mta.js');

/** One JSON line of the example's log. */
export interface LogLine {
  t: string;
  node: string;
  event: string;
  [field: string]: unknown;
}

/** A running example node and everything it logged. */
export class MtaNode {
  readonly logs: LogLine[] = [];
  private partial = '';

  constructor(readonly name: string, readonly proc: LabProcess) {
    proc.child.stdout?.on('data', (chunk: string | Buffer) => {
      const lines = (this.partial + chunk.toString()).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ t: '', node: name, event: 'unparsed', line });
        }
      }
    });
  }

  /** Resolves with the first logged line matching `predicate` (already logged or coming). */
  waitLog(predicate: (line: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine> {
    return waitFor(
      () => {
        if (this.proc.exit) throw new Error(`${this.name} exited (${JSON.stringify(this.proc.exit)}): ${this.proc.stderr.slice(-1000)} ${this.proc.stdout.slice(-1000)}`);
        return this.logs.find(predicate);
      },
      { timeoutMs, intervalMs: 20, what: `${this.name} to log ${what}` },
    );
  }

  /** The 'accepted' lines for a Message-ID (the MTA's answer 250 to its client). */
  accepted(messageId: string): LogLine[] {
    return this.logs.filter((l) => l.event === 'accepted' && l.messageId === messageId);
  }
}

/** Writes `config` to a file in `dir` and starts the example with it in `host`'s namespace. */
export function startMta(lab: Lab, dir: string, host: string, config: unknown): MtaNode {
  const file = path.join(dir, `${host}.json`);
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return new MtaNode(host, lab.spawnNode(host, EXAMPLE, [file]));
}

/** A fresh temporary folder for config files. */
export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-mta-'));
}

/** One message the sink received. */
export interface SinkRecord {
  type: 'received';
  messageId: string | null;
  remoteAddress: string;
  from: string;
  to: string[];
  at: number;
}

/** One attempt and the final results the client fixture reports. */
export interface ClientAttempt {
  type: 'attempt';
  batch: string;
  id: string;
  attempt: number;
  server: string;
  ok: boolean;
  kind: 'accepted' | 'connection' | 'temporary' | 'permanent';
  response: string;
  at: number;
}
export interface ClientResult {
  id: string;
  ok: boolean;
  attempts: number;
  kind: ClientAttempt['kind'];
  response: string;
  at: number;
}

export interface OutgoingMessage {
  id: string;
  /** A server, or several tried round robin (attempt k goes to the (k-1)-th). */
  server: string | string[];
  port: number;
  to: string;
  from?: string;
  tool: 'nodemailer' | 'swaks';
}

/** The client fixture: runs batches and records every attempt. */
export class MailClient {
  readonly attempts: ClientAttempt[] = [];

  constructor(readonly proc: LabProcess) {
    proc.onMessage((message) => {
      const m = message as { type?: string };
      if (m.type !== 'attempt') return false;
      this.attempts.push(message as ClientAttempt);
      return true;
    });
  }

  /** Starts a batch; the returned promise resolves with every message's final result. */
  batch(batch: string, messages: OutgoingMessage[], options: { concurrency: number; maxAttempts: number; deadlineMs: number; perMessageDeadline?: boolean; resultTimeoutMs?: number }): Promise<ClientResult[]> {
    const done = this.proc.nextMessage<{ results: ClientResult[] }>((m) => m.type === 'batch-done' && m.batch === batch, options.resultTimeoutMs ?? options.deadlineMs + 60_000);
    this.proc.send({ cmd: 'batch', batch, messages, ...options });
    return done.then((m) => m.results);
  }

  /** Starts no more messages of `batch`; its promise resolves once those under way are done. */
  stop(batch: string): void {
    this.proc.send({ cmd: 'stop', batch });
  }

  /** Attempts of `batch` accepted so far. */
  acceptedCount(batch: string): number {
    return this.attempts.filter((a) => a.batch === batch && a.ok).length;
  }
}

/** The node named in an "Accepted by NODE" reply, or null. */
export function acceptedBy(response: string): string | null {
  return /Accepted by (\S+)/.exec(response)?.[1] ?? null;
}
