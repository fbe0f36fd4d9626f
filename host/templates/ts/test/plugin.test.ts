// Native tests of the plugin: the SDK's batch loop under `node --test`, no Wasm.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Harness, emittedJson, event, outputs, rawEvent } from '@weir/sdk/testing';
import { typedPlugin } from '../src/plugin.js';

test('drops the configured type and stamps the rest', () => {
  const h = new Harness(typedPlugin, { drop_type: 'ping' });
  const [dropped, kept] = h.runJson([{ type: 'ping' }, { type: 'click', user: 'ann' }]);
  assert.deepEqual(dropped, { tag: 'drop' });
  assert.deepEqual(emittedJson(kept), { type: 'click', user: 'ann', meta: { plugin: '{{name}}' } });
});

test('passes deletes and fails values that are not objects', () => {
  const h = new Harness(typedPlugin, {});
  const [deleted] = outputs(h.runOne(rawEvent({ key: 'k1', op: 'delete' })));
  assert.equal(deleted.op, 'delete');
  assert.deepEqual(deleted.key, new TextEncoder().encode('k1'));
  assert.equal(h.runOne(event([1, 2])).tag, 'fail');
});

test('refuses an unknown config key', () => {
  assert.match(Harness.initError(typedPlugin, { drop_tpye: 'x' }) ?? '', /unknown key/);
});
