/**
 * Fixture run in the client namespace by bench/planned-move: SMTP sessions that
 * are in the middle of DATA when the VIP moves, to see whether any is cut.
 *   node slow-sessions.js '{"ip":"198.18.1.1","port":2525}'
 *
 * IPC: { cmd: 'sessions', id, count, dataMs, chunks, timeoutMs }
 *   -> { type: 'in-data', id }   once every session got 354 (all are mid-DATA)
 *   -> { type: 'sessions', id, sessions: SessionReport[] } when all ended
 * Each session reads the banner (the node is its last word), EHLO, MAIL, RCPT,
 * DATA, then writes the body in `chunks` pieces spread over `dataMs`, ends it
 * with ".", and records the reply: a 250 means the message was accepted.
 * Times are on the wall clock (Date.now()), to line up with other processes.
 */
import * as net from 'node:net';

const { ip, port } = JSON.parse(process.argv[2] ?? '{}') as { ip: string; port: number };

interface SessionsCommand {
  id: number;
  count: number;
  dataMs: number;
  chunks: number;
  timeoutMs: number;
}

export interface SessionReport {
  /** Node named in the banner. */
  node: string | null;
  connectedAt: number | null;
  /** When the server said 354 (DATA started). */
  dataAt: number | null;
  /** When the final reply arrived or the session failed. */
  endAt: number;
  /** Reply to the final "." ("250 ..."), or null when there was none. */
  finalReply: string | null;
  /** What went wrong, when the session did not get a final 250. */
  error: string | null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One session; `inData` resolves when the server accepted DATA (or the session failed). */
function session(command: SessionsCommand, inData: () => void): Promise<SessionReport> {
  return new Promise((resolve) => {
    const report: SessionReport = { node: null, connectedAt: null, dataAt: null, endAt: 0, finalReply: null, error: null };
    const socket = net.connect({ host: ip, port });
    socket.setEncoding('utf8');
    let buffer = '';
    let finished = false;
    const waiting: Array<(line: string) => void> = [];
    const timer = setTimeout(() => finish(`timeout after ${command.timeoutMs} ms`), command.timeoutMs);
    const finish = (error: string | null): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      report.endAt = Date.now();
      report.error = error;
      if (report.dataAt === null) inData();
      socket.destroy();
      resolve(report);
    };
    const reply = (): Promise<string> => new Promise((r) => waiting.push(r));
    socket.on('connect', () => {
      report.connectedAt = Date.now();
    });
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let eol: number;
      while ((eol = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, eol).replace(/\r$/, '');
        buffer = buffer.slice(eol + 1);
        if (line[3] === '-') continue;
        const waiter = waiting.shift();
        if (waiter) waiter(line);
        else if (!finished && report.finalReply === null) {
          // A reply nobody asked for in the middle of a message: the server gave up on us.
          finish(`unsolicited reply: ${line}`);
        }
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    socket.on('close', () => finish(report.finalReply === null ? 'closed before the final reply' : null));
    const step = async (line: string | null, expect: string): Promise<string> => {
      if (line !== null) socket.write(`${line}\r\n`);
      const answer = await reply();
      if (!answer.startsWith(expect)) throw new Error(`${line ?? 'banner'} -> ${answer}`);
      return answer;
    };
    void (async () => {
      try {
        const banner = await step(null, '220');
        report.node = banner.split(/\s+/).pop() ?? null;
        await step('EHLO slow.bench.example', '250');
        await step('MAIL FROM:<slow@bench.example>', '250');
        await step('RCPT TO:<rcpt@bench.example>', '250');
        await step('DATA', '354');
        report.dataAt = Date.now();
        inData();
        socket.write('From: slow@bench.example\r\nTo: rcpt@bench.example\r\nSubject: planned move\r\n\r\n');
        for (let i = 0; i < command.chunks && !finished; i++) {
          await sleep(command.dataMs / command.chunks);
          socket.write(`line ${i} of a message written slowly ${'y'.repeat(60)}\r\n`);
        }
        if (finished) return;
        socket.write('.\r\n');
        const final = await reply();
        report.finalReply = final;
        if (!final.startsWith('250')) return finish(`final reply ${final}`);
        report.endAt = Date.now();
        socket.end('QUIT\r\n');
        finish(null);
      } catch (error) {
        finish((error as Error).message);
      }
    })();
  });
}

async function runSessions(command: SessionsCommand): Promise<SessionReport[]> {
  let waitingForData = command.count;
  const inData = (): void => {
    waitingForData--;
    if (waitingForData === 0) process.send?.({ type: 'in-data', id: command.id });
  };
  return Promise.all(Array.from({ length: command.count }, () => session(command, inData)));
}

process.on('message', (message: Partial<SessionsCommand> & { cmd?: string }) => {
  if (message.cmd !== 'sessions') return;
  runSessions(message as SessionsCommand).then(
    (sessions) => process.send?.({ type: 'sessions', id: message.id, sessions }),
    (error: Error) => process.send?.({ type: 'sessions-error', id: message.id, message: error.message }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ type: 'ready' });
