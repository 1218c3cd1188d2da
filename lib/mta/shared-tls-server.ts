/**
 * SMTPServers that share their TLS contexts.
 *
 * smtp-server builds its TLS contexts in its constructor (tls.createSecureContext:
 * parsing and checking the key and certificate), about 1.8 ms on this machine even
 * with the built-in certificate. A listener builds a fresh SMTPServer on every
 * start (see listener.ts), so a node taking over 1,000 listener VIPs spent about
 * 1.8 s of its event loop there, in one go: past dead-after, its guardian removed
 * its addresses and its peers declared it dead. A context depends only on the TLS
 * options, and a SecureContext is immutable once built (every TLS socket of a
 * server already shares one), so servers whose TLS options are the same values
 * share one set of contexts, built once.
 */
import type { SecureContext } from 'node:tls';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

/** What tls.createSecureContext reads, and smtp-server's per-name contexts. */
const CONTEXT_OPTIONS = [
  'key', 'cert', 'pfx', 'passphrase', 'ca', 'crl', 'ciphers', 'ecdhCurve', 'dhparam', 'secureOptions', 'secureProtocol',
  'sessionIdContext', 'minVersion', 'maxVersion', 'honorCipherOrder', 'sigalgs', 'ticketKeys', 'sessionTimeout',
  'privateKeyEngine', 'privateKeyIdentifier', 'clientCertEngine', 'sniOptions', 'SNICallback',
] as const;

/** smtp-server keeps its contexts (per server name, '*' the default) in this untyped field. */
interface ContextHolder {
  secureContext: Map<string, SecureContext>;
}

interface SharedContexts {
  values: unknown[];
  contexts: Map<string, SecureContext>;
}

/** Few distinct TLS setups exist in one process; the most recent are kept. */
const MAX_SHARED = 8;
const shared: SharedContexts[] = [];
/** The contexts the server under construction takes (set only around a constructor call). */
let adopting: SharedContexts | null = null;

class SharedTlsSmtpServer extends SMTPServer {
  // The warning about smtp-server's built-in certificate goes to stderr on every construction
  // (a synchronous write: most of what was left of a start's cost). The server that built these
  // contexts gave it already; the servers sharing them have the same certificate.
  override _warnAboutDefaultCertificate(hasOwnCertificate: boolean): void {
    if (adopting) return;
    (SMTPServer.prototype as unknown as { _warnAboutDefaultCertificate(has: boolean): void })._warnAboutDefaultCertificate.call(this, hasOwnCertificate);
  }

  // smtp-server calls this from its constructor (no argument), and operators to renew
  // certificates (with options): only the first reuses shared contexts.
  override updateSecureContext(options?: Parameters<SMTPServer['updateSecureContext']>[0]): void {
    if (options === undefined && adopting) {
      (this as unknown as ContextHolder).secureContext = adopting.contexts;
      return;
    }
    super.updateSecureContext(options as never);
  }
}

/**
 * A new SMTPServer with `options` (copied: smtp-server changes its options object).
 * An implicit-TLS server (`secure`) is built as usual: smtp-server also merges its
 * TLS defaults into the options of such a server while building its contexts.
 */
export function buildSmtpServer(options: SMTPServerOptions): SMTPServer {
  const own = { ...options };
  if (own.secure) return new SMTPServer(own);
  const values = CONTEXT_OPTIONS.map((key) => (own as Record<string, unknown>)[key]);
  const found = shared.find((s) => s.values.every((value, i) => value === values[i]));
  if (found) {
    adopting = found;
    try {
      return new SharedTlsSmtpServer(own);
    } finally {
      adopting = null;
    }
  }
  const server = new SMTPServer(own);
  shared.unshift({ values, contexts: (server as unknown as ContextHolder).secureContext });
  shared.length = Math.min(shared.length, MAX_SHARED);
  return server;
}
