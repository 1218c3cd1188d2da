// Which Haraka deferrals are the binding's doing (and get a quick retry from its holder) and
// which are the destination's or a real outage of the binding (Haraka's own schedule).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bindingDeferral } from '../../lib/plugins/haraka';
import type { BindingInfo } from '../../lib/mta/types';

const binding = (over: Partial<BindingInfo>): BindingInfo => ({ name: 'beta', address: '198.18.1.43', holder: 'hw2', local: true, state: 'owned', epoch: 3, ...over });
const missing = Object.assign(new Error('connect EADDRNOTAVAIL 198.18.1.43 - Local (198.18.1.43:0)'), { code: 'EADDRNOTAVAIL' });

test('a binding held by another node now: moved, whatever the error', () => {
  assert.equal(bindingDeferral(binding({ holder: 'hw1', local: false, state: 'standby' }), 'connect ECONNREFUSED'), 'moved');
});

test('held here but its address was missing at connect: address-missing (an Error, or the text Haraka passes)', () => {
  assert.equal(bindingDeferral(binding({}), missing), 'address-missing');
  assert.equal(bindingDeferral(binding({}), String(missing.message)), 'address-missing');
});

test("the destination's own deferrals, and a binding nobody holds, keep Haraka's schedule", () => {
  assert.equal(bindingDeferral(binding({}), '451 4.7.1 greylisted, try again later'), null);
  assert.equal(bindingDeferral(binding({}), new Error('connect ECONNREFUSED 198.18.0.14:2525')), null);
  assert.equal(bindingDeferral(binding({ holder: null, local: false }), missing), null);
  assert.equal(bindingDeferral(undefined, missing), null);
});
