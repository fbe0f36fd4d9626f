// The router's behaviour, natively through the SDK's batch loop: the same
// cases as the Rust plugin's tests (plugins/router/src/lib.rs).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Harness, emittedJson, event, jsonOf, outputs, rawEvent, routes } from '@weir/sdk/testing';
import { typedPlugin } from '../src/plugin.js';

const harness = (config: Record<string, string>) => new Harness(typedPlugin, config);

test('routes by value with fan-out and default', () => {
  const h = harness({
    field: 'event_type',
    routes: 'purchase:mongo+audit, view:redis',
    'route.a,b:c': 'odd',
    default: 'archive',
  });
  const out = h.runJson([
    { event_type: 'purchase', n: 1 },
    { event_type: 'view' },
    { event_type: 'click' },
    { other: 1 },
    { event_type: 'a,b:c' },
  ]);
  assert.deepEqual(routes(out[0]), ['mongo', 'audit']);
  assert.deepEqual(routes(out[1]), ['redis']);
  assert.deepEqual(routes(out[2]), ['archive']);
  assert.deepEqual(routes(out[3]), ['archive']);
  assert.deepEqual(routes(out[4]), ['odd']);
  for (const o of outputs(out[0])) {
    assert.deepEqual(jsonOf(o), { event_type: 'purchase', n: 1 });
  }
});

test('outputs keep key, op, headers and the value bytes', () => {
  const h = harness({ field: 't', routes: 'x:sink' });
  const ev = event({ t: 'x', b: 2.50 }, { key: 'k', op: 'delete', headers: [['h', 'v']] });
  const [o] = outputs(h.runOne(ev));
  assert.equal(o.op, 'delete');
  assert.deepEqual(o.key, ev.key);
  assert.deepEqual(o.value, ev.value, 'the value goes out byte for byte');
  assert.deepEqual(o.headers, [{ key: 'h', value: new TextEncoder().encode('v') }]);
  assert.equal(o.route, 'sink');
});

test('unmatched without default', () => {
  const events = [{ t: 'x' }, { t: 'y' }, {}];
  assert.deepEqual(routes(harness({ field: 't', routes: 'x:sink' }).runJson(events)[1]), [undefined]);
  assert.deepEqual(harness({ field: 't', routes: 'x:sink', unmatched: 'drop' }).runJson(events)[1], { tag: 'drop' });
  const out = harness({ field: 't', routes: 'x:sink', unmatched: 'fail' }).runJson(events);
  assert.deepEqual(out[1], { tag: 'fail', val: 'router: no route for t="y"' });
  assert.deepEqual(out[2], { tag: 'fail', val: 'router: no field t to route by' });
});

test('numbers and booleans route by their text', () => {
  const h = harness({ field: 'level', routes: '1:low,2:high,true:flag' });
  const out = h.runJson([{ level: 2 }, { level: true }]);
  assert.deepEqual(routes(out[0]), ['high']);
  assert.deepEqual(routes(out[1]), ['flag']);
});

test('values that are not JSON follow on_invalid', () => {
  const bad = [rawEvent({ value: 'not json' }), rawEvent({ key: 'k' })];
  const fail = harness({ field: 't', default: 'a' }).run(bad);
  assert.equal(fail[0].tag, 'fail');
  assert.match((fail[0] as { val: string }).val, /^router: event value is not valid JSON: /);
  assert.deepEqual(fail[1], { tag: 'fail', val: 'router: event has no value' });
  assert.deepEqual(harness({ field: 't', default: 'a', on_invalid: 'drop' }).run(bad), [{ tag: 'drop' }, { tag: 'drop' }]);
  const pass = harness({ field: 't', default: 'a', on_invalid: 'pass' }).run(bad);
  assert.deepEqual(routes(pass[0]), [undefined]);
  assert.equal(new TextDecoder().decode(outputs(pass[0])[0].value), 'not json');
});

test('bad configs are refused with the Rust plugin\'s messages', () => {
  const err = (config: Record<string, string>) => Harness.initError(typedPlugin, config);
  assert.equal(err({ field: 't' }), 'set `routes`, `route.<value>` or `default`');
  assert.equal(
    err({ field: 't', routes: 'purchase' }),
    'config `routes`: "purchase" is not value:route (e.g. purchase:mongo+audit)',
  );
  assert.equal(err({ field: 't', routes: 'a:x+' }), 'config `routes`: empty route name in "x+" (write route or route+route)');
  assert.equal(err({ field: 't', routes: 'a:x,a:y' }), 'value "a" is routed twice');
  assert.equal(err({ routes: 'a:x' }), 'config `field`: required but not set');
  assert.equal(err({ field: 't', default: 'a', unmatched: 'maybe' }), 'config `unmatched`: expected one of pass, drop, fail, got "maybe"');
  assert.equal(err({ field: 't', feild: 'x' }), 'config `feild`: unknown key (known: field, routes, default, unmatched, on_invalid, route.*)');
  assert.equal(emittedJson(harness({ field: 't', default: 'a' }).runJson([{ t: 1 }])[0]).t, 1);
});
