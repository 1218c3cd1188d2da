// Outbound bindings: mail for a binding leaves from the binding's IP only, from
// whichever node holds it. Local sends go through a cached nodemailer transport
// pinned with localAddress; sends for a binding held elsewhere are relayed to the
// holder. There is never a fallback to another source IP.

import MailComposer from 'nodemailer/lib/mail-composer';
import type { SendMailOptions, SentMessageInfo, Transporter } from 'nodemailer';
import { BindingTransport, type BindingTransportOptions } from './binding-transport';
import {
  BindingBrokenError,
  BindingMovedError,
  BindingNotLocalError,
  BindingUnownedError,
  NoLocalBindingError,
  RelayError,
  UnknownBindingError,
} from './errors';
import { pickBinding, type PickStrategy, type RandomSource } from './pick';
import type { RelayClient } from './relay-client';
import type { BindingDirectory, BindingInfo, RawMessage } from './types';

/** Per-binding settings. */
export interface BindingSettings {
  /** EHLO host name this binding introduces itself with (nodemailer `name`), e.g. its PTR name. */
  hostname?: string;
}

export interface BindingTransportsOptions {
  /**
   * nodemailer options for send() and for messages relayed to this node (where to
   * deliver: host/port of the next hop, pool, TLS...). `localAddress` is always the binding's IP.
   */
  transport?: BindingTransportOptions;
  /** Per-binding settings by binding name. */
  bindings?: Record<string, BindingSettings>;
  /** Relays sends for bindings held elsewhere (closed by close()); without it such sends fail with BindingNotLocalError. */
  relay?: RelayClient;
  /** How long send() keeps trying to reach the current holder (default 30000 ms). */
  sendDeadlineMs?: number;
  /** Most relay attempts per send() (default 5). */
  relayAttempts?: number;
  /** Pause before retrying a relay that failed for a reason other than a holder change (default 200 ms). */
  retryDelayMs?: number;
  /** Random source for pick(), injectable for deterministic tests (default Math.random). */
  random?: RandomSource;
}

/** How send() delivered a message. */
export interface SendResult {
  binding: string;
  /** 'local': sent from this node; 'relay': accepted by the holder `holder`. */
  via: 'local' | 'relay';
  holder: string;
  messageId: string | undefined;
  /** Final SMTP reply of the next hop (local) or of the holder's relay listener (relay). */
  response: string;
}

/** Outbound side of the cluster: bindings, their transports, and send-or-relay. */
export class BindingTransports {
  readonly directory: BindingDirectory;
  private readonly options: BindingTransportsOptions;
  private readonly random: RandomSource;
  // binding name -> options key -> transport
  private readonly cache = new Map<string, Map<string, BindingTransport>>();
  private readonly onBinding = (info: BindingInfo): void => this.bindingChanged(info);
  private closed = false;

  constructor(directory: BindingDirectory, options: BindingTransportsOptions = {}) {
    this.directory = directory;
    this.options = options;
    this.random = options.random ?? Math.random;
    directory.on('binding', this.onBinding);
  }

  /** The binding as the cluster reports it; throws UnknownBindingError. */
  binding(name: string): BindingInfo {
    const info = this.directory.binding(name);
    if (!info) throw new UnknownBindingError(name);
    return info;
  }

  /**
   * A binding of `group` held here and healthy, chosen at random or by weight.
   * Throws NoLocalBindingError listing the group's bindings and their holders.
   */
  pick(group: string, options: { strategy?: PickStrategy } = {}): BindingInfo {
    const members = this.directory.bindings().filter((b) => b.group === group);
    const local = members.filter(isUsableHere);
    const chosen = pickBinding(local, options.strategy ?? 'random', this.random);
    if (!chosen) throw new NoLocalBindingError(group, members);
    return chosen;
  }

  /**
   * A cached nodemailer transport that sends from binding `name`'s IP (`localAddress`)
   * with its EHLO name. Throws UnknownBindingError, BindingBrokenError, or
   * BindingNotLocalError (naming the holder) when the binding is not held here.
   * When the binding leaves this node the transport is closed and dropped, and its
   * sends in progress fail with BindingMovedError (retryable).
   */
  transport(name: string, options: BindingTransportOptions = this.options.transport ?? {}): Transporter<SentMessageInfo> {
    return this.bindingTransport(name, options).transporter;
  }

  /** Open transports and their sends in progress, for status. */
  status(): { binding: string; address: string; pending: number }[] {
    const out: { binding: string; address: string; pending: number }[] = [];
    for (const byOptions of this.cache.values()) {
      for (const t of byOptions.values()) out.push({ binding: t.binding, address: t.address, pending: t.pending });
    }
    return out;
  }

  /**
   * Sends `message` from binding `name`: from here when the binding is held here,
   * otherwise relayed to its holder (following the holder if it changes, within
   * `sendDeadlineMs` and `relayAttempts`). The message is compiled once, so every
   * attempt carries the same Message-ID and the receiver can de-duplicate retries.
   */
  async send(name: string, message: SendMailOptions | RawMessage): Promise<SendResult> {
    const compiled = await compileMessage(message);
    const deadline = Date.now() + (this.options.sendDeadlineMs ?? 30000);
    const maxAttempts = this.options.relayAttempts ?? 5;
    let attempts = 0;
    let lastError: unknown;
    for (;;) {
      const info = this.binding(name);
      if (info.state === 'broken') throw new BindingBrokenError(name);
      if (isUsableHere(info)) return this.sendLocal(name, compiled);
      if (!this.options.relay) throw new BindingNotLocalError(name, info.holder);
      if (info.holder === null || info.holder === this.directory.node) {
        // Nobody holds it (or the directory is mid-change): wait for a holder.
        if (!(await this.waitForChange(name, info, deadline))) throw new BindingUnownedError(name, 'no holder appeared before the send deadline');
        continue;
      }
      const peer = this.directory.clusterAddress(info.holder);
      if (!peer) throw new RelayError(`binding "${name}" is held by "${info.holder}" but its cluster address is unknown`, name, true, 451);
      if (attempts >= maxAttempts || Date.now() >= deadline) {
        throw new RelayError(`relaying binding "${name}" gave up after ${attempts} attempt(s)`, name, true, 451, lastError);
      }
      attempts++;
      try {
        const { response } = await this.options.relay.relay({ node: info.holder, ...peer }, name, compiled);
        return { binding: name, via: 'relay', holder: info.holder, messageId: compiled.messageId, response };
      } catch (err) {
        lastError = err;
        const reply = relayReply(err);
        if (reply.permanent) {
          throw new RelayError(`node "${info.holder}" refused the relay of binding "${name}": ${reply.text}`, name, false, reply.code, err);
        }
        if (reply.notHeld) {
          // The holder moved on: wait for our directory to learn where to (bounded by the deadline).
          await this.waitForChange(name, info, Math.min(deadline, Date.now() + (this.options.retryDelayMs ?? 200) * 10));
        } else {
          await delay(Math.min(this.options.retryDelayMs ?? 200, Math.max(0, deadline - Date.now())));
        }
      }
    }
  }

  /**
   * Sends an already compiled message from binding `name` on this node, never
   * relaying (what a relay receiver does in the standalone case).
   */
  async sendLocal(name: string, message: RawMessage): Promise<SendResult> {
    const transport = this.bindingTransport(name, this.options.transport ?? {});
    const info = await transport.transporter.sendMail({ envelope: message.envelope, raw: message.raw });
    return { binding: name, via: 'local', holder: this.directory.node, messageId: message.messageId, response: info.response ?? '' };
  }

  /** Stops following the directory, closes the relay client and every transport (their sends fail with BindingMovedError). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.directory.off('binding', this.onBinding);
    this.options.relay?.close();
    for (const name of [...this.cache.keys()]) this.drop(name, new BindingMovedError(name, null));
  }

  private bindingTransport(name: string, options: BindingTransportOptions): BindingTransport {
    if (this.closed) throw new Error('BindingTransports is closed');
    const info = this.binding(name);
    if (info.state === 'broken') throw new BindingBrokenError(name);
    if (!isUsableHere(info)) throw new BindingNotLocalError(name, info.holder);
    if (options.localAddress !== undefined && options.localAddress !== info.address) {
      throw new TypeError(`binding "${name}" sends from ${info.address} only, not from localAddress ${String(options.localAddress)}`);
    }
    const hostname = this.options.bindings?.[name]?.hostname;
    const effective: BindingTransportOptions = hostname !== undefined && options.name === undefined ? { ...options, name: hostname } : options;
    const key = optionsKey(info.address, effective);
    let byOptions = this.cache.get(name);
    if (!byOptions) {
      byOptions = new Map();
      this.cache.set(name, byOptions);
    }
    let transport = byOptions.get(key);
    if (!transport || transport.revoked) {
      transport = new BindingTransport(name, info.address, effective);
      byOptions.set(key, transport);
    }
    return transport;
  }

  private bindingChanged(info: BindingInfo): void {
    const cached = this.cache.get(info.name);
    if (!cached) return;
    if (info.state === 'broken') this.drop(info.name, new BindingBrokenError(info.name));
    else if (!isUsableHere(info)) this.drop(info.name, new BindingMovedError(info.name, info.holder));
    else if ([...cached.values()].some((t) => t.address !== info.address)) {
      // Same name, new address (a config change): transports pinned to the old IP must go.
      this.drop(info.name, new BindingMovedError(info.name, info.holder));
    }
  }

  private drop(name: string, err: Error): void {
    const cached = this.cache.get(name);
    this.cache.delete(name);
    for (const transport of cached?.values() ?? []) transport.revoke(err);
  }

  /** Resolves true when binding `name` changes (holder, state or epoch), false at the deadline. */
  private waitForChange(name: string, seen: BindingInfo, deadline: number): Promise<boolean> {
    return new Promise((resolve) => {
      const changed = (): boolean => {
        const now = this.directory.binding(name);
        return !now || now.holder !== seen.holder || now.state !== seen.state || now.epoch !== seen.epoch || now.local !== seen.local;
      };
      if (changed()) return resolve(true);
      const finish = (result: boolean): void => {
        clearTimeout(timer);
        this.directory.off('binding', listener);
        resolve(result);
      };
      const listener = (info: BindingInfo): void => {
        if (info.name === name && changed()) finish(true);
      };
      const timer = setTimeout(() => finish(changed()), Math.max(0, deadline - Date.now()));
      this.directory.on('binding', listener);
    });
  }
}

/** A binding this node may send from right now. */
function isUsableHere(info: BindingInfo): boolean {
  return info.local && info.state === 'owned';
}

/** Compiles a nodemailer message once (fixing its Message-ID), or passes a raw one through. */
export async function compileMessage(message: SendMailOptions | RawMessage): Promise<RawMessage> {
  if (Buffer.isBuffer(message.raw) && message.envelope && Array.isArray(message.envelope.to)) {
    const raw = message as RawMessage;
    return { envelope: raw.envelope, raw: raw.raw, messageId: raw.messageId ?? findMessageId(raw.raw) };
  }
  const node = new MailComposer(message as SendMailOptions).compile();
  const messageId = node.messageId();
  const envelope = node.getEnvelope();
  const raw = await node.build();
  return { envelope: { from: envelope.from === false ? '' : envelope.from, to: envelope.to }, raw, messageId };
}

/** The Message-ID header of a raw message (header block only), if any. */
export function findMessageId(raw: Buffer): string | undefined {
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, end < 0 ? Math.min(raw.length, 65536) : end).toString('latin1');
  const match = /^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(head);
  const value = match?.[1]?.replace(/\r?\n[ \t]+/g, ' ').trim();
  return value ? value : undefined;
}

interface RelayReply {
  code: number | undefined;
  text: string;
  /** 5xx or refused credentials: retrying cannot help. */
  permanent: boolean;
  /** The peer says it does not hold the binding (451 4.4.0). */
  notHeld: boolean;
}

function relayReply(err: unknown): RelayReply {
  const e = err as { responseCode?: number; response?: string; code?: string; message?: string };
  const code = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const text = e.response ?? e.message ?? String(err);
  const permanent = e.code === 'EAUTH' || (code !== undefined && code >= 500);
  const notHeld = code === 451 && /\b4\.4\.0\b/.test(text) && /not held here/i.test(text);
  return { code, text, permanent, notHeld };
}

// Transports are cached per distinct options; functions and objects that cannot be
// serialized meaningfully are keyed by identity.
const identities = new WeakMap<object, number>();
let nextIdentity = 1;

function optionsKey(address: string, options: BindingTransportOptions): string {
  return `${address}\0${JSON.stringify(options, (key, value: unknown) => {
    if (typeof value === 'function' || (value && typeof value === 'object' && !Array.isArray(value) && Object.getPrototypeOf(value) !== Object.prototype)) {
      const object = value as object;
      let id = identities.get(object);
      if (id === undefined) {
        id = nextIdentity++;
        identities.set(object, id);
      }
      return `#ref${id}`;
    }
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(value).sort()) sorted[k] = (value as Record<string, unknown>)[k];
      return sorted;
    }
    return value;
  })}`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
