// The SDK's helpers and batch loop, natively.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Config, Event, Outcome, Output, json, log, plugin } from '../src/index.js';
import { Harness, emittedJson, event, outputs, rawEvent, routes, text } from '../src/testing.js';

test('config getters name the key', () => {
  const c = new Config([['n', 'x1'], ['b', 'maybe'], ['l', '1, 2,,3'], ['n2', ' 7 '], ['a', '1'], ['a', '3']]);
  assert.throws(() => c.integer('n'), { message: 'config `n`: expected an integer, got "x1"' });
  assert.throws(() => c.bool('b', false), { message: 'config `b`: expected true or false, got "maybe"' });
  assert.throws(() => c.required('nope'), { message: 'config `nope`: required but not set' });
  assert.throws(() => c.number('nope'), { message: 'config `nope`: required but not set' });
  assert.deepEqual(c.list('l'), ['1', '2', '3']);
  assert.equal(c.integer('n2'), 7);
  assert.equal(c.number('absent', 2.5), 2.5);
  assert.equal(c.bool('absent', true), true);
  assert.equal(c.get('a'), '3', 'a later duplicate wins');
  assert.equal(c.choice('absent', ['x', 'y'], 'y'), 'y');
  assert.throws(() => new Config({ m: 'z' }).choice('m', ['x', 'y'], 'x'), {
    message: 'config `m`: expected one of x, y, got "z"',
  });
});

test('config prefixes and unknown keys', () => {
  const c = new Config([['add.x', '2'], ['field', 'f'], ['add.y.z', '4']]);
  assert.deepEqual(c.withPrefix('add.'), [['x', '2'], ['y.z', '4']]);
  c.denyUnknown(['field'], ['add.']);
  assert.throws(() => new Config({ feild: 'x' }).denyUnknown(['field'], ['add.']), {
    message: 'config `feild`: unknown key (known: field, add.*)',
  });
  assert.throws(() => new Config({ 'add.': '1' }).denyUnknown([], ['add.']));
});

test('json paths: get, set, remove, rename, text', () => {
  const v = { a: { b: [1, { c: true }] } };
  assert.equal(json.get(v, 'a.b.1.c'), true);
  assert.equal(json.get(v, 'a.b.7'), undefined);
  assert.equal(json.get(v, 'a.x'), undefined);
  const w = { a: 1 };
  json.set(w, 'x.y.z', 2);
  assert.deepEqual(w, { a: 1, x: { y: { z: 2 } } });
  assert.throws(() => json.set(w, 'a.b', 3), { message: 'cannot set `a.b`: `a` is not an object' });
  assert.throws(() => json.set(w, 'x.y.z.w', 3), { message: 'cannot set `x.y.z.w`: `x.y.z` is not an object' });
  assert.throws(() => json.set(5, 'a', 3), { message: 'cannot set `a`: the value is not an object' });
  const r = { a: { b: 1, c: [1, 2] } };
  assert.equal(json.remove(r, 'a.c.0'), 1);
  assert.equal(json.remove(r, 'a.zz'), undefined);
  assert.equal(json.rename(r, 'a.b', 'top'), true);
  assert.equal(json.rename(r, 'nothing', 'x'), false);
  assert.deepEqual(r, { a: { c: [2] }, top: 1 });
  assert.equal(json.toText('x'), 'x');
  assert.equal(json.toText(4.5), '4.5');
  assert.equal(json.toText(null), 'null');
  assert.equal(json.get({ 'a.b': 1 }, 'a.b'), undefined, 'a dot always separates segments');
});

test('an output keeps the key order of the object it serializes', () => {
  const out = Output.json({ z: 1, a: 2, m: { y: 1, b: 2 } });
  assert.equal(new TextDecoder().decode(out.valueBytes), '{"z":1,"a":2,"m":{"y":1,"b":2}}');
});

test('event accessors and the output builder', () => {
  const ev = new Event(
    rawEvent({ key: 'k', value: '{"id":7}', op: 'upsert', timestampMs: 1234, origin: 't/1@5', headers: [['h', 'v']] }),
  );
  assert.equal(ev.keyText, 'k');
  assert.equal(ev.timestampMs, 1234);
  assert.equal(ev.origin, 't/1@5');
  assert.equal(text(ev.header('h')), 'v');
  assert.equal(ev.header('missing'), undefined);
  assert.deepEqual(ev.json(), { id: 7 });
  assert.equal(ev.oldJson(), undefined);
  const out = Output.json({ id: 7 }).route('mongo').keyOf(ev).header('source', 'checkout').ttl(3600);
  assert.deepEqual(out.toWit(), {
    route: 'mongo',
    key: new TextEncoder().encode('k'),
    value: new TextEncoder().encode('{"id":7}'),
    op: 'upsert',
    ttlSeconds: 3600,
    headers: [{ key: 'source', value: new TextEncoder().encode('checkout') }],
  });
  assert.deepEqual(Output.delete('k').toWit().op, 'delete');
  assert.throws(() => Output.json({}).ttl(-1), RangeError);
  assert.throws(() => Output.json({}).op('merge'), { message: 'op must be one of insert, upsert, delete, got string merge' });
  assert.throws(() => new Event(rawEvent({})).json(), { message: 'event has no value' });
  assert.throws(() => new Event(rawEvent({ value: "{" })).json(), { name: "JsonError", kind: "invalid" });
});

/** Fails events with "poison", throws on "throw", returns junk on "junk". */
class Picky {
  constructor(config) {
    this.tag = config.required('tag');
    log.info(`picky ready with tag ${this.tag}`);
  }

  process(event) {
    const v = event.json();
    if (v.throw) throw new Error(`cannot handle ${v.id}`);
    if (v.junk) return 'emit';
    if (v.poison) return Outcome.fail('poisoned');
    if (v.skip) return Outcome.drop();
    json.set(v, 'tag', this.tag);
    return Outcome.emit(Output.json(v).keyOf(event).route('out'));
  }
}

test('the batch loop: one outcome per event, exceptions fail only their event', () => {
  log.takeCaptured();
  const h = new Harness(plugin(Picky), { tag: 't' });
  assert.deepEqual(log.takeCaptured(), [['info', 'picky ready with tag t']]);
  const out = h.run([
    event({ id: 1 }),
    event({ id: 2, throw: true }),
    event({ id: 3, poison: true }),
    event({ id: 4, junk: true }),
    rawEvent({ value: 'nope' }),
    event({ id: 6, skip: true }),
    event({ id: 7 }),
  ]);
  assert.equal(out.length, 7);
  assert.deepEqual(emittedJson(out[0]), { id: 1, tag: 't' });
  assert.deepEqual(out[1], { tag: 'fail', val: 'Error: cannot handle 2' });
  assert.deepEqual(out[2], { tag: 'fail', val: 'poisoned' });
  assert.deepEqual(out[3], { tag: 'fail', val: 'process returned string emit, not an Outcome' });
  assert.equal(out[4].tag, 'fail');
  assert.match(out[4].val, /^JsonError: event value is not valid JSON: /);
  assert.deepEqual(out[5], { tag: 'drop' });
  assert.deepEqual(routes(out[6]), ['out']);
  assert.equal(outputs(out[6]).length, 1);
});

test('init refuses a config by throwing; the export throws the message as its err payload', () => {
  assert.equal(Harness.initError(Picky, {}), 'config `tag`: required but not set');
  const exported = plugin(Picky);
  assert.throws(() => exported.init([]), (e) => e.payload === 'config `tag`: required but not set');
  exported.init([['tag', 'x']]);
  assert.deepEqual(routes(exported.process([event({ id: 1 })])[0]), ['out']);
  assert.equal(Harness.initError(() => 42), 'init returned number 42, not an object with a process(event) method');
  assert.equal(
    Harness.initError((config) => ({ process: () => Outcome.pass(config) })),
    undefined,
    'a factory function works as well as a class',
  );
});

test('pass keeps the event; a thrown non-Error still fails only its event', () => {
  const h = new Harness((c) => ({
    process(ev) {
      if (ev.keyText === 'x') throw 'plain string';
      return Outcome.pass(ev);
    },
  }));
  const out = h.run([rawEvent({ key: 'x', value: '1' }), rawEvent({ key: 'y', value: 'raw', op: 'delete' })]);
  assert.deepEqual(out[0], { tag: 'fail', val: 'uncaught string plain string' });
  const [o] = outputs(out[1]);
  assert.equal(text(o.value), 'raw');
  assert.equal(o.op, 'delete');
  assert.equal(o.route, undefined);
});
