import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RelayDedupe, relayKey } from '../../lib/mta/dedupe';
import { addBindingHeader, takeBindingHeader } from '../../lib/mta/relay-header';
import { checkRelayPassword, deriveRelayKey, relayPassword } from '../../lib/mta/relay-auth';
import { findMessageId } from '../../lib/mta/bindings';

const message = (to: string[], messageId?: string) => ({
  envelope: { from: 'a@example.test', to },
  raw: Buffer.from(`Message-ID: ${messageId ?? '<none>'}\r\n\r\nbody\r\n`),
  ...(messageId ? { messageId } : {}),
});

test('relayKey: same Message-ID and envelope (any recipient order) match; other recipients or binding differ', () => {
  const a = relayKey('acme', message(['x@t', 'y@t'], '<1@t>'));
  assert.equal(relayKey('acme', message(['y@t', 'x@t'], '<1@t>')), a);
  assert.notEqual(relayKey('acme', message(['x@t'], '<1@t>')), a);
  assert.notEqual(relayKey('beta', message(['x@t', 'y@t'], '<1@t>')), a);
  assert.notEqual(relayKey('acme', message(['x@t', 'y@t'], '<2@t>')), a);
});

test('RelayDedupe: delivered keys answer "delivered" until their TTL, in-flight ones block a parallel copy, failed ones may retry', () => {
  let now = 1000;
  const dedupe = new RelayDedupe({ ttlMs: 500, max: 10, now: () => now });
  assert.equal(dedupe.claim('k'), 'new');
  assert.equal(dedupe.claim('k'), 'in-flight');
  dedupe.failed('k');
  assert.equal(dedupe.claim('k'), 'new');
  dedupe.done('k');
  assert.equal(dedupe.claim('k'), 'delivered');
  now += 499;
  assert.equal(dedupe.claim('k'), 'delivered');
  now += 1;
  assert.equal(dedupe.claim('k'), 'new', 'expired after ttlMs');
});

test('RelayDedupe is bounded: the oldest keys go first', () => {
  const dedupe = new RelayDedupe({ max: 3 });
  for (const key of ['a', 'b', 'c', 'd']) {
    assert.equal(dedupe.claim(key), 'new');
    dedupe.done(key);
  }
  assert.equal(dedupe.size, 3);
  assert.equal(dedupe.claim('b'), 'delivered');
  assert.equal(dedupe.claim('a'), 'new');
});

test('the binding line round-trips and only a first-line header is accepted', () => {
  const raw = Buffer.from('Subject: x\r\n\r\nX-MTA-VIP-Binding: evil\r\n');
  const framed = addBindingHeader(raw, 'acme');
  const taken = takeBindingHeader(framed);
  assert.equal(taken?.binding, 'acme');
  assert.ok(taken?.raw.equals(raw));
  assert.equal(takeBindingHeader(raw), null, 'a message without the line is not guessed at');
  assert.throws(() => addBindingHeader(raw, 'bad name'), TypeError);
  assert.throws(() => addBindingHeader(raw, 'a\r\nBcc: x'), TypeError);
});

test('relay passwords are per node and per cluster secret, checked exactly', () => {
  const key = deriveRelayKey('secret one');
  const other = deriveRelayKey('secret two');
  assert.equal(relayPassword(key, 'A'), relayPassword(deriveRelayKey('secret one'), 'A'));
  assert.notEqual(relayPassword(key, 'A'), relayPassword(key, 'B'));
  assert.notEqual(relayPassword(key, 'A'), relayPassword(other, 'A'));
  assert.equal(checkRelayPassword(key, 'A', relayPassword(key, 'A')), true);
  assert.equal(checkRelayPassword(key, 'A', relayPassword(key, 'B')), false);
  assert.equal(checkRelayPassword(key, 'A', ''), false);
  assert.throws(() => deriveRelayKey(''), /must not be empty/);
});

test('findMessageId reads the header block only, unfolding continuation lines', () => {
  assert.equal(findMessageId(Buffer.from('Subject: a\r\nMessage-ID:\r\n <x@y>\r\n\r\nMessage-ID: <body@y>\r\n')), '<x@y>');
  assert.equal(findMessageId(Buffer.from('Subject: a\r\n\r\nMessage-ID: <body@y>\r\n')), undefined);
});

test('the relay gateway EHLO name carries the binding, and only names of that form are taken', async () => {
  const { gatewayHelo, bindingOfHelo } = await import('../../lib/plugins/relay-gateway');
  for (const name of ['acme', 'Beta Corp', 'ünïcode', 'x'.repeat(93)]) {
    const helo = gatewayHelo(name);
    assert.ok(helo.split('.').every((label) => label.length <= 63), helo);
    assert.equal(bindingOfHelo(helo), name);
    assert.equal(bindingOfHelo(helo.toUpperCase()), name, 'EHLO names are case-insensitive');
  }
  assert.throws(() => gatewayHelo(''), RangeError);
  assert.throws(() => gatewayHelo('x'.repeat(94)), /at most|1 to 93/);
  for (const other of ['acme.mail.test', 'mta-vip-gateway.invalid', 'bzz.mta-vip-gateway.invalid', '', undefined]) assert.equal(bindingOfHelo(other), null, String(other));
});

test('a relay hop id tells a message that came back from a retry of the same queue entry', async () => {
  const { lastRelayHop, relayTraceLine } = await import('../../lib/mta/dedupe');
  const original = Buffer.from('Message-ID: <m1@x>\r\nSubject: s\r\n\r\nbody\r\n');
  const envelope = { from: 'a@x', to: ['b@y'] };
  const hop1 = Buffer.concat([Buffer.from(relayTraceLine('mz1', 'mz2', 'AAAAAAAAAAAAAAAA')), original]);
  const hop3 = Buffer.concat([Buffer.from(relayTraceLine('mz1', 'mz2', 'BBBBBBBBBBBBBBBB')), Buffer.from(relayTraceLine('mz2', 'mz1', 'CCCCCCCCCCCCCCCC')), hop1]);
  assert.equal(lastRelayHop(original), null);
  assert.equal(lastRelayHop(hop1), 'AAAAAAAAAAAAAAAA');
  assert.equal(lastRelayHop(hop3), 'BBBBBBBBBBBBBBBB', 'the newest hop is the topmost trace');
  // A DKIM signature added on top at send time does not hide the hop.
  assert.equal(lastRelayHop(Buffer.concat([Buffer.from('DKIM-Signature: v=1; t=1\r\n'), hop1])), 'AAAAAAAAAAAAAAAA');
  const key = (raw: Buffer): string => relayKey('acme', { envelope, raw, messageId: '<m1@x>' });
  assert.equal(key(hop1), key(Buffer.from(hop1)), 'a retry of the same entry is the same key');
  assert.notEqual(key(hop1), key(hop3), 'a message back after another hop is a new key');
  assert.equal(key(original), relayKey('acme', { envelope, raw: Buffer.from('other bytes'), messageId: '<m1@x>' }), 'without a hop the Message-ID decides, as before');
});
