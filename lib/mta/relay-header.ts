// How a relayed message names its binding.
//
// nodemailer cannot add custom MAIL FROM parameters, so the binding travels as a
// header line the sender prepends to the message and the receiver removes before
// delivering: the delivered bytes are exactly the bytes the sender submitted
// (a DKIM signature made before the relay stays valid). Being the very first line,
// the receiver finds it without parsing the header block, and a message without it
// (or with a forged one further down) is refused rather than guessed at.

const HEADER = 'X-MTA-VIP-Binding';
const VALID_NAME = /^[\x21-\x39\x3b-\x7e]{1,255}$/; // printable ASCII, no space, no ':'

/** Prepends the binding header line to `raw`. */
export function addBindingHeader(raw: Buffer, binding: string): Buffer {
  if (!VALID_NAME.test(binding)) throw new TypeError(`binding name ${JSON.stringify(binding)} cannot be relayed: printable ASCII without spaces or ':' only`);
  return Buffer.concat([Buffer.from(`${HEADER}: ${binding}\r\n`, 'latin1'), raw]);
}

/** Splits a received message into its binding and the original bytes; null when the first line is not the header. */
export function takeBindingHeader(received: Buffer): { binding: string; raw: Buffer } | null {
  const end = received.indexOf('\n');
  if (end < 0 || end > 300) return null;
  const line = received.subarray(0, end).toString('latin1').replace(/\r$/, '');
  const colon = line.indexOf(':');
  if (colon < 0 || line.slice(0, colon).toLowerCase() !== HEADER.toLowerCase()) return null;
  const binding = line.slice(colon + 1).trim();
  if (!VALID_NAME.test(binding)) return null;
  return { binding, raw: received.subarray(end + 1) };
}
