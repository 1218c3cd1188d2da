import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeDeclaration, type NodeDeclaration } from '../../lib/core';
import { buildView, DeclarationCache, type PeerSnapshot } from '../../lib/runtime/view-builder';

function declaration(node: string, ips: string[]): NodeDeclaration {
  return { node, vips: ips.map((ip) => ({ ip, family: 4, interface: 'eth0', prefix: 32, binding: null, ports: [25], preferred: null, follows: null })) };
}

function peer(node: string, decl: Buffer | null, extra: Partial<PeerSnapshot> = {}): PeerSnapshot {
  return { node, live: true, liveSince: 0, declaration: decl, holdings: new Map(), unhealthy: new Set(), ...extra };
}

const self = { node: 'n1', declaration: declaration('n1', ['198.18.1.1']), liveSince: 5, holding: new Map([['198.18.1.1', 3]]), unhealthy: new Set<string>() };

test('the view holds this node (always live) and every peer whose declaration is known', () => {
  const cache = new DeclarationCache();
  const view = buildView(100, self, [peer('n2', encodeDeclaration(declaration('n2', ['198.18.1.1'])), { holdings: new Map([['198.18.1.1', 2]]) }), peer('n3', null)], cache);
  assert.deepEqual(view.nodes.map((n) => n.node), ['n1', 'n2']);
  assert.equal(view.now, 100);
  assert.equal(view.nodes[0]?.live, true);
  assert.equal(view.nodes[1]?.holding.get('198.18.1.1'), 2);
});

test('garbage, or a declaration naming another node, keeps a peer out of the view', () => {
  const cache = new DeclarationCache();
  const view = buildView(0, self, [peer('n2', Buffer.from('not a declaration')), peer('n3', encodeDeclaration(declaration('n4', ['198.18.1.1'])))], cache);
  assert.deepEqual(view.nodes.map((n) => n.node), ['n1']);
});

test('a dead peer stays in the view for reporting, but its holdings no longer count', () => {
  const cache = new DeclarationCache();
  const view = buildView(0, self, [peer('n2', encodeDeclaration(declaration('n2', ['198.18.1.1'])), { live: false, holdings: new Map([['198.18.1.1', 9]]) })], cache);
  assert.equal(view.nodes[1]?.live, false);
  assert.equal(view.nodes[1]?.holding.size, 0);
});

test('the cache decodes each distinct declaration once and gives the VIP list the transport indexes', () => {
  const cache = new DeclarationCache();
  const bytes = encodeDeclaration(declaration('n2', ['198.18.1.2', '198.18.1.10']));
  const first = cache.decode(bytes);
  assert.equal(cache.decode(Buffer.from(bytes)), first, 'same object for the same bytes');
  assert.deepEqual(cache.vipsOf(bytes), ['198.18.1.2', '198.18.1.10']);
  assert.throws(() => cache.vipsOf(Buffer.from('x')), /invalid declaration/);
});
