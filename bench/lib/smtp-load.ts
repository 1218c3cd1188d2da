/**
 * Fixture run in the client namespace by bench/smtp-overhead: a tight raw SMTP
 * client that pushes messages through one server as fast as it answers.
 *   node smtp-load.js '{"ip":"198.18.1.1","port":2525}'
 *
 * IPC: { cmd: 'run', id, connections, messages, bodyBytes, timeoutMs }
 *   -> { type: 'result', id, messages, ms, perSecond, errors, banner }
 * Each of `connections` sessions reads the banner, says EHLO once, then loops
 * MAIL / RCPT / DATA / body / "." (one command at a time, waiting for each
 * reply) until `messages` have been accepted across all sessions, then QUIT.
 * The clock runs from the first MAIL (every session greeted) to the last 250.
 */
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';

const { ip, port } = JSON.parse(process.argv[2] ?? '{}') as { ip: string; port: number };

interface RunCommand {
  id: number;
  connections: number;
  messages: number;
  bodyBytes: number;
  timeoutMs: number;
}

/** One SMTP session that hands out replies (the last line of each) in order. */
class Session {
  private readonly socket: net.Socket;
  private buffer = '';
  private readonly waiting: Array<(reply: string) => void> = [];
  private readonly replies: string[] = [];
  private failure: Error | null = null;

  constructor() {
    this.socket = net.connect({ host: ip, port });
    this.socket.setNoDelay(true);
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => this.onData(chunk));
    this.socket.on('error', (error) => this.fail(error));
    this.socket.on('close', () => this.fail(new Error('connection closed')));
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let eol: number;
    while ((eol = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, eol).replace(/\r$/, '');
      this.buffer = this.buffer.slice(eol + 1);
      // "250-..." continues a multi-line reply; "250 ..." ends it.
      if (line[3] === '-') continue;
      const waiter = this.waiting.shift();
      if (waiter) waiter(line);
      else this.replies.push(line);
    }
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const waiter of this.waiting.splice(0)) waiter(`000 ${error.message}`);
  }

  /** The next reply (its final line); "000 <why>" when the connection failed. */
  reply(): Promise<string> {
    const queued = this.replies.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.failure) return Promise.resolve(`000 ${this.failure.message}`);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async command(line: string, expect: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    const reply = await this.reply();
    if (!reply.startsWith(expect)) throw new Error(`${line.split(' ')[0]} -> ${reply}`);
    return reply;
  }

  end(): void {
    this.socket.end('QUIT\r\n');
    this.socket.destroy();
  }
}

async function runLoad(command: RunCommand): Promise<{ messages: number; ms: number; perSecond: number; errors: string[]; banner: string }> {
  const body = `From: a@bench.example\r\nTo: b@bench.example\r\nSubject: bench\r\n\r\n${'x'.repeat(Math.max(0, command.bodyBytes - 2))}\r\n.\r\n`;
  const sessions: Session[] = [];
  const errors: string[] = [];
  let banner = '';
  for (let i = 0; i < command.connections; i++) sessions.push(new Session());
  try {
    await Promise.all(
      sessions.map(async (s) => {
        banner = await s.reply();
        if (!banner.startsWith('220')) throw new Error(`banner: ${banner}`);
        await s.command('EHLO load.bench.example', '250');
      }),
    );
    let left = command.messages;
    let accepted = 0;
    const deadline = performance.now() + command.timeoutMs;
    const started = performance.now();
    await Promise.all(
      sessions.map(async (s) => {
        // Bounded by the message count and the deadline.
        while (left > 0 && performance.now() < deadline) {
          left--;
          try {
            await s.command('MAIL FROM:<a@bench.example>', '250');
            await s.command('RCPT TO:<b@bench.example>', '250');
            await s.command('DATA', '354');
            await s.command(body.slice(0, -2), '250');
            accepted++;
          } catch (error) {
            errors.push((error as Error).message);
            return;
          }
        }
      }),
    );
    const ms = performance.now() - started;
    return { messages: accepted, ms: Math.round(ms * 10) / 10, perSecond: Math.round((accepted / ms) * 1000 * 10) / 10, errors: errors.slice(0, 10), banner };
  } finally {
    for (const s of sessions) s.end();
  }
}

process.on('message', (message: Partial<RunCommand> & { cmd?: string }) => {
  if (message.cmd !== 'run') return;
  runLoad(message as RunCommand).then(
    (result) => process.send?.({ type: 'result', id: message.id, ...result }),
    (error: Error) => process.send?.({ type: 'result-error', id: message.id, message: error.message }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ type: 'ready' });
