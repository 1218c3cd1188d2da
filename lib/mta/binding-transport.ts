// A nodemailer transport pinned to one binding's source IP, that can be revoked
// when the binding leaves this node.
//
// A closed nodemailer pool never calls back the sends it still had, so closing is
// not enough: every send is tracked here and, on revoke, failed at once with the
// revocation error (BindingMovedError, retryable), its socket aborted through
// nodemailer's AbortSignal support, and the transport closed. Sends made later
// through a stale reference fail the same way instead of hanging.

import nodemailer, { type SentMessageInfo, type SMTPPoolOptions, type SMTPTransportOptions, type Transporter } from 'nodemailer';
import type { MailMessage } from 'nodemailer';

/** nodemailer options a binding transport accepts (SMTP, pooled or not). */
export type BindingTransportOptions = SMTPTransportOptions | (SMTPPoolOptions & { pool: true });

interface InFlight {
  fail(err: Error): void;
}

/** One binding's transport and the sends it has in progress. */
export class BindingTransport {
  readonly binding: string;
  readonly address: string;
  /** The nodemailer transporter handed to callers; sendMail() on it is tracked. */
  readonly transporter: Transporter<SentMessageInfo>;
  private readonly inFlight = new Set<InFlight>();
  private readonly abort = new AbortController();
  private revokedWith: Error | null = null;

  constructor(binding: string, address: string, options: BindingTransportOptions) {
    this.binding = binding;
    this.address = address;
    // localAddress is what pins the source IP; it is set last so nothing overrides it.
    const transporter = nodemailer.createTransport({ ...options, localAddress: address } as SMTPTransportOptions) as Transporter<SentMessageInfo>;
    // Mail hands every message (callback or promise form of sendMail) to
    // transporter.send, so tracking there catches them all.
    const inner = transporter.transporter;
    const send = inner.send.bind(inner);
    inner.send = (mail: MailMessage<SentMessageInfo>, callback: (err: Error | null, info?: SentMessageInfo) => void): void => {
      this.track(mail, callback, send);
    };
    this.transporter = transporter;
  }

  /** Sends in progress right now. */
  get pending(): number {
    return this.inFlight.size;
  }

  /** True once revoked: every send fails with the revocation error. */
  get revoked(): boolean {
    return this.revokedWith !== null;
  }

  /**
   * Fails every send in progress with `err`, aborts their connections and closes
   * the transport. Later sends through this transport fail with `err` too.
   */
  revoke(err: Error): void {
    if (this.revokedWith) return;
    this.revokedWith = err;
    for (const entry of [...this.inFlight]) entry.fail(err);
    this.inFlight.clear();
    this.abort.abort(err);
    this.transporter.close({ force: true });
  }

  private track(
    mail: MailMessage<SentMessageInfo>,
    callback: (err: Error | null, info?: SentMessageInfo) => void,
    send: (mail: MailMessage<SentMessageInfo>, callback: (err: Error | null, info?: SentMessageInfo) => void) => void,
  ): void {
    if (this.revokedWith) {
      const err = this.revokedWith;
      setImmediate(() => callback(err));
      return;
    }
    let settled = false;
    const entry: InFlight = {
      fail: (err) => {
        if (settled) return;
        settled = true;
        callback(err);
      },
    };
    this.inFlight.add(entry);
    // Our signal joins the caller's, so revoke() tears down the socket of this send.
    const own = mail.data.signal;
    mail.data.signal = own ? AbortSignal.any([own, this.abort.signal]) : this.abort.signal;
    send(mail, (err, info) => {
      this.inFlight.delete(entry);
      if (settled) return;
      settled = true;
      callback(err, info);
    });
  }
}
