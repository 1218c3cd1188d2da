import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import nodemailer from 'nodemailer';
import type { SMTPServerOptions } from 'smtp-server';
import { SmtpListener, describeListenError } from '../../lib/mta/listener';

const IP = '127.0.0.11';

interface Received {
  localAddress: string;
  raw: string;
}

/** Listener options recording every message; `gate` lets a test keep DATA open. */
function recordingOptions(received: Received[], gate?: { entered: () => void; release: Promise<void> }): SMTPServerOptions {
  return {
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, session, callback) {
      gate?.entered();
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const done = (): void => {
          received.push({ localAddress: session.localAddress, raw: Buffer.concat(chunks).toString() });
          callback();
        };
        if (gate) void gate.release.then(done);
        else done();
      });
    },
  };
}

function client(port: number) {
  return nodemailer.createTransport({ host: IP, port, ignoreTLS: true, connectionTimeout: 5000, greetingTimeout: 5000, socketTimeout: 5000 });
}

const mail = (subject: string) => ({ from: 'a@example.test', to: 'b@example.test', subject, text: 'hello' });

test('SmtpListener accepts mail on its address and reports sessions', async () => {
  const received: Received[] = [];
  const listener = new SmtpListener(IP, 0, recordingOptions(received));
  await listener.start();
  try {
    assert.equal(listener.state, 'listening');
    assert.notEqual(listener.port, 0);
    const info = await client(listener.port).sendMail(mail('one'));
    assert.match(info.response, /^250 /);
    assert.equal(received.length, 1);
    assert.equal(received[0]?.localAddress, IP);
    assert.match(received[0]?.raw ?? '', /Subject: one/);
    assert.equal(listener.status().starts, 1);
  } finally {
    await listener.stop();
  }
  assert.equal(listener.state, 'stopped');
  assert.equal(listener.sessions, 0);
});

test('stop() lets a message in DATA finish with 250, refuses new connections, then closes', async () => {
  const received: Received[] = [];
  let entered!: () => void;
  const inData = new Promise<void>((resolve) => (entered = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const listener = new SmtpListener(IP, 0, recordingOptions(received, { entered, release: released }), { drainMs: 10000 });
  await listener.start();
  const port = listener.port;
  const order: string[] = [];
  const sending = client(port)
    .sendMail(mail('in flight'))
    .then((info) => {
      order.push('250');
      return info;
    });
  await inData;
  assert.equal(listener.sessions, 1);
  const stopping = listener.stop().then(() => order.push('stopped'));
  // The listening socket is gone at once: new sessions go to the next holder, not here.
  const refused = await new Promise<string>((resolve) => {
    const socket = net.connect({ host: IP, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  assert.equal(refused, 'ECONNREFUSED');
  assert.equal(listener.state, 'stopping');
  assert.deepEqual(order, []);
  release();
  const info = await sending;
  await stopping;
  assert.match(info.response, /^250 /);
  assert.equal(received.length, 1);
  assert.deepEqual(order, ['250', 'stopped']);
  assert.equal(listener.state, 'stopped');
});

test('stop() does not wait drainMs for an idle pooled client session', { timeout: 15000 }, async () => {
  const received: Received[] = [];
  const listener = new SmtpListener(IP, 0, recordingOptions(received), { drainMs: 60000 });
  await listener.start();
  const pool = nodemailer.createTransport({ pool: true, host: IP, port: listener.port, ignoreTLS: true, idleTimeout: 60000 });
  try {
    await pool.sendMail(mail('pooled'));
    assert.equal(listener.sessions, 1, 'the pooled session stays open and idle');
    // With a 60 s drain and a 15 s test timeout, this only passes if idle sessions are ended at once.
    await listener.stop();
    assert.equal(listener.state, 'stopped');
    assert.equal(received.length, 1);
  } finally {
    pool.close();
  }
});

test('start() after stop() runs a fresh server that accepts mail (not 421)', async () => {
  const received: Received[] = [];
  const listener = new SmtpListener(IP, 0, recordingOptions(received));
  await listener.start();
  await client(listener.port).sendMail(mail('first'));
  await listener.stop();
  await listener.start();
  try {
    // Same listener again: a reused SMTPServer would answer 421 here.
    const info = await client(listener.port).sendMail(mail('second'));
    assert.match(info.response, /^250 /);
    assert.equal(received.length, 2);
    assert.equal(listener.status().starts, 2);
  } finally {
    await listener.stop();
  }
});

test('a factory is called for every start', async () => {
  const received: Received[] = [];
  let built = 0;
  const { SMTPServer } = await import('smtp-server');
  const listener = new SmtpListener(IP, 0, () => {
    built++;
    return new SMTPServer(recordingOptions(received));
  });
  await listener.start();
  await listener.stop();
  await listener.start();
  try {
    await client(listener.port).sendMail(mail('factory'));
  } finally {
    await listener.stop();
  }
  assert.equal(built, 2);
  assert.equal(received.length, 1);
});

test('listening on an address that is not on this host rejects EADDRNOTAVAIL with the fix', async () => {
  // 198.18.0.0/15 is a benchmarking range that is not configured on this host.
  const listener = new SmtpListener('198.18.0.77', 2525, recordingOptions([]));
  await assert.rejects(listener.start(), (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, 'EADDRNOTAVAIL');
    assert.match(err.message, /198\.18\.0\.77:2525/);
    assert.match(err.message, /not on this host/);
    assert.match(err.message, /ip_nonlocal_bind/);
    return true;
  });
  assert.equal(listener.state, 'stopped');
  await listener.stop(); // stopping a listener that never started is a no-op
});

test('a port already in use rejects EADDRINUSE, and the listener can start once it is free', async () => {
  const first = new SmtpListener(IP, 0, recordingOptions([]));
  await first.start();
  const second = new SmtpListener(IP, first.port, recordingOptions([]));
  await assert.rejects(second.start(), (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, 'EADDRINUSE');
    assert.match(err.message, /already in use/);
    return true;
  });
  assert.equal(second.state, 'stopped');
  await first.stop();
  await second.start();
  assert.equal(second.state, 'listening');
  await second.stop();
});

test('EACCES names CAP_NET_BIND_SERVICE and the ways to grant it', () => {
  const errno = Object.assign(new Error('listen EACCES: permission denied 0.0.0.0:25'), { code: 'EACCES', syscall: 'listen' });
  const err = describeListenError(errno, '203.0.113.25', 25);
  assert.equal(err.code, 'EACCES');
  assert.match(err.message, /203\.0\.113\.25:25/);
  assert.match(err.message, /CAP_NET_BIND_SERVICE/);
  assert.match(err.message, /setcap|AmbientCapabilities/);
  assert.equal(err.cause, errno);
});

test('servers built from the same TLS options share their contexts, STARTTLS works on each, other certificates get their own', async () => {
  const { buildSmtpServer } = await import('../../lib/mta/shared-tls-server');
  const contexts = (s: unknown): Map<string, unknown> => (s as { secureContext: Map<string, unknown> }).secureContext;
  const first = buildSmtpServer({ logger: false, banner: 'first' });
  const second = buildSmtpServer({ logger: false, banner: 'second' });
  assert.equal(contexts(second), contexts(first), 'one set of contexts for equal TLS options');
  // A listener's servers (one per start) come from the same builder.
  const received: Received[] = [];
  const options = { ...recordingOptions(received), disabledCommands: [] };
  const listeners = [new SmtpListener(IP, 0, options), new SmtpListener(IP, 0, { ...options })];
  for (const l of listeners) await l.start();
  try {
    for (const [i, l] of listeners.entries()) {
      // STARTTLS with the shared context: nodemailer upgrades when offered (the built-in certificate is self-signed).
      const transport = nodemailer.createTransport({ host: IP, port: l.port, requireTLS: true, tls: { rejectUnauthorized: false }, connectionTimeout: 5000, greetingTimeout: 5000, socketTimeout: 5000 });
      const info = await transport.sendMail(mail(`tls ${i}`));
      assert.match(info.response, /^250 /);
    }
    assert.equal(received.length, 2);
  } finally {
    for (const l of listeners) await l.stop();
  }
  // Different TLS options (here: a cipher list) are another context; an implicit-TLS server builds its own.
  const other = buildSmtpServer({ logger: false, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' });
  assert.notEqual(contexts(other), contexts(first));
  const secure = buildSmtpServer({ logger: false, secure: true });
  assert.notEqual(contexts(secure), contexts(first));
});
