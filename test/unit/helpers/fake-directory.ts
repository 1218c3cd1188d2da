// Test helpers of the mta tests: a BindingDirectory with in-memory state that
// tests flip by hand (the test double of the cluster runtime; smtp-server,
// nodemailer and sockets stay real), and a real SMTP sink.

import { EventEmitter } from 'node:events';
import { SMTPServer } from 'smtp-server';
import type { BindingDirectory, BindingInfo, BindingListener } from '../../../lib/mta/types';

export class FakeDirectory implements BindingDirectory {
  readonly node: string;
  private readonly entries = new Map<string, BindingInfo>();
  private readonly addresses = new Map<string, { host: string; port: number }>();
  private readonly events = new EventEmitter();

  constructor(node: string) {
    this.node = node;
  }

  binding(name: string): BindingInfo | undefined {
    const info = this.entries.get(name);
    return info && { ...info };
  }

  bindings(): BindingInfo[] {
    return [...this.entries.values()].map((info) => ({ ...info }));
  }

  clusterAddress(node: string): { host: string; port: number } | undefined {
    return this.addresses.get(node);
  }

  on(event: 'binding', listener: BindingListener): this {
    this.events.on(event, listener);
    return this;
  }

  off(event: 'binding', listener: BindingListener): this {
    this.events.off(event, listener);
    return this;
  }

  /** Sets where `node`'s relay listener is. */
  setClusterAddress(node: string, host: string, port: number): void {
    this.addresses.set(node, { host, port });
  }

  /**
   * Declares or changes a binding. `holder` decides `local` and the default state
   * (owned here, standby elsewhere, unowned for null); the epoch goes up on every
   * change of holder. Emits 'binding' like the runtime.
   */
  set(name: string, fields: { address: string; holder: string | null } & Partial<Omit<BindingInfo, 'name' | 'local'>>): BindingInfo {
    const previous = this.entries.get(name);
    const holder = fields.holder;
    const state = fields.state ?? (holder === null ? 'unowned' : holder === this.node ? 'owned' : 'standby');
    const epoch = fields.epoch ?? (previous ? previous.epoch + (previous.holder !== holder ? 1 : 0) : 1);
    const info: BindingInfo = { ...fields, name, holder, state, epoch, local: holder === this.node && state !== 'broken' };
    this.entries.set(name, info);
    this.events.emit('binding', { ...info }, previous && { ...previous });
    return info;
  }

  /** Moves a binding to another holder (or nobody), keeping its other fields. */
  move(name: string, holder: string | null): BindingInfo {
    const current = this.entries.get(name);
    if (!current) throw new Error(`no binding ${name}`);
    const { local: _local, state: _state, epoch: _epoch, name: _name, ...rest } = current;
    return this.set(name, { ...rest, holder });
  }

  /** Marks a binding BROKEN. */
  breakBinding(name: string): BindingInfo {
    const current = this.entries.get(name);
    if (!current) throw new Error(`no binding ${name}`);
    const { local: _local, name: _name, ...rest } = current;
    return this.set(name, { ...rest, state: 'broken' });
  }
}

// ---------------------------------------------------------------------------
// A real SMTP sink for the mta tests: records every message with the address it
// came from. `hold()` makes the next DATA replies wait until released, so a test
// can act while a send is in flight.


export interface SinkMessage {
  remoteAddress: string;
  ehlo: string;
  from: string;
  to: string[];
  raw: Buffer;
}

export interface Sink {
  host: string;
  port: number;
  messages: SinkMessage[];
  /** Connections seen, by source address. */
  connections: string[];
  /** Until release() is called, DATA replies wait; resolves `started` when one DATA began. */
  hold(): { started: Promise<void>; release(): void };
  close(): Promise<void>;
}

export async function startSink(host: string): Promise<Sink> {
  const messages: SinkMessage[] = [];
  const connections: string[] = [];
  let gate: { release: Promise<void>; onStart: () => void } | null = null;
  const server = new SMTPServer({
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    closeTimeout: 1000,
    onConnect(session, callback) {
      connections.push(session.remoteAddress);
      callback();
    },
    onData(stream, session, callback) {
      const current = gate;
      current?.onStart();
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const finish = (): void => {
          messages.push({
            remoteAddress: session.remoteAddress,
            ehlo: session.hostNameAppearsAs,
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks),
          });
          callback();
        };
        if (current) void current.release.then(finish);
        else finish();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.server.address();
  if (!address || typeof address !== 'object') throw new Error('sink has no address');
  return {
    host,
    port: address.port,
    messages,
    connections,
    hold() {
      let release!: () => void;
      let onStart!: () => void;
      const started = new Promise<void>((resolve) => (onStart = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      gate = { release: released, onStart };
      return {
        started,
        release: () => {
          gate = null;
          release();
        },
      };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
