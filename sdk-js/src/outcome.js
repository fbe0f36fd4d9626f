// What a plugin returns for one event: an Outcome and the Output records
// it emits, built with a small builder. Mirrors the Rust SDK's `outcome`.

import { Event } from './event.js';
import { describe, toBytes } from './bytes.js';

const OPS = ['insert', 'upsert', 'delete'];
const U32_MAX = 0xffffffff;

/** One record to write: value, key, op, route, headers, TTL. */
export class Output {
  constructor() {
    /** @type {string | undefined} */ this._route = undefined;
    /** @type {Uint8Array | undefined} */ this._key = undefined;
    /** @type {Uint8Array | undefined} */ this._value = undefined;
    this._op = 'upsert';
    /** @type {Array<{key: string, value: Uint8Array}>} */ this._headers = [];
    /** @type {number | undefined} */ this._ttl = undefined;
  }

  /** An upsert whose value is `value` serialized as JSON (key order kept). */
  static json(value) {
    const text = JSON.stringify(value);
    if (text === undefined) {
      throw new TypeError(`output value cannot be serialized as JSON: ${describe(value)}`);
    }
    return Output.bytes(text);
  }

  /** An upsert whose value is these bytes (a string is written as UTF-8). */
  static bytes(value) {
    return new Output().value(value);
  }

  /** A delete of `key` (no value). */
  static delete(key) {
    return new Output().key(key).op('delete');
  }

  /** The event passed through: its value, key, op and headers. */
  static fromEvent(event) {
    const out = new Output();
    out._key = event.key;
    out._value = event.value;
    out._op = event.op;
    out._headers = event.headers.map((h) => ({ key: h.key, value: h.value }));
    return out;
  }

  /** Send to the sink named `route` instead of the pipeline's default. */
  route(route) {
    if (typeof route !== 'string') throw new TypeError(`route must be a string, got ${describe(route)}`);
    this._route = route;
    return this;
  }

  /** Set the key (a string is written as UTF-8). */
  key(key) {
    this._key = toBytes(key, 'key');
    return this;
  }

  /** Keep the key of `event` (no key if it has none). */
  keyOf(event) {
    this._key = event.key;
    return this;
  }

  /** Set the op (default `upsert`). */
  op(op) {
    if (!OPS.includes(op)) throw new TypeError(`op must be one of ${OPS.join(', ')}, got ${describe(op)}`);
    this._op = op;
    return this;
  }

  /** Add a header (a string value is written as UTF-8). */
  header(name, value) {
    if (typeof name !== 'string') throw new TypeError(`header name must be a string, got ${describe(name)}`);
    this._headers.push({ key: name, value: toBytes(value, `header ${name}`) });
    return this;
  }

  /** Expire the record after `seconds` at sinks that support a TTL. */
  ttl(seconds) {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > U32_MAX) {
      throw new RangeError(`ttl must be a whole number of seconds from 0 to ${U32_MAX}, got ${describe(seconds)}`);
    }
    this._ttl = seconds;
    return this;
  }

  /** Replace the value with these bytes (a string is written as UTF-8). */
  value(value) {
    this._value = toBytes(value, 'value');
    return this;
  }

  /** The route, if set. */
  get routeName() {
    return this._route;
  }

  /** The key, if set. */
  get keyBytes() {
    return this._key;
  }

  /** The value, if set. */
  get valueBytes() {
    return this._value;
  }

  /** The op. */
  get opKind() {
    return this._op;
  }

  /** The headers, in order. */
  get headerList() {
    return this._headers;
  }

  /** The TTL in seconds, if set. */
  get ttlSeconds() {
    return this._ttl;
  }

  /** The contract's `output` record. */
  toWit() {
    return {
      route: this._route,
      key: this._key,
      value: this._value,
      op: this._op,
      ttlSeconds: this._ttl,
      headers: this._headers,
    };
  }
}

/** What became of one event: emit outputs, drop it, or fail it. */
export class Outcome {
  /** @param {'emit' | 'drop' | 'fail'} kind */
  constructor(kind, outputs = [], reason = '') {
    this.kind = kind;
    /** @type {Output[]} */
    this.outputs = outputs;
    this.reason = reason;
  }

  /** Emit these outputs (none drops the event). */
  static emit(...outputs) {
    return Outcome.emitAll(outputs);
  }

  /** Emit every output of an iterable. */
  static emitAll(outputs) {
    const list = [...outputs];
    list.forEach((o, i) => {
      if (!(o instanceof Output)) throw new TypeError(`output ${i} is ${describe(o)}, not an Output`);
    });
    return new Outcome('emit', list);
  }

  /** Nothing to write; the event counts as done. */
  static drop() {
    return DROP;
  }

  /** Pass the event through unchanged (value, key, op, headers). */
  static pass(event) {
    if (!(event instanceof Event)) throw new TypeError(`pass() takes the Event, got ${describe(event)}`);
    return Outcome.emit(Output.fromEvent(event));
  }

  /** Send the event to the dead letter with `reason` (a message or an Error). */
  static fail(reason) {
    return new Outcome('fail', [], reason instanceof Error ? reason.message : String(reason));
  }

  /** The contract's `outcome` variant. */
  toWit() {
    switch (this.kind) {
      case 'emit':
        return { tag: 'emit', val: this.outputs.map((o) => o.toWit()) };
      case 'fail':
        return { tag: 'fail', val: this.reason };
      default:
        return { tag: 'drop' };
    }
  }
}

const DROP = Object.freeze(new Outcome('drop'));
