// The event a plugin sees: a thin view over the contract's `event` record
// (wit/0.2.0/types.wit) with the accessors of the Rust SDK's `Event`.

import { toText } from './bytes.js';

/** The event value could not be read as JSON. */
export class JsonError extends Error {
  /** @param {'no-value' | 'invalid'} kind */
  constructor(kind, detail) {
    super(kind === 'no-value' ? 'event has no value' : `event value is not valid JSON: ${detail}`);
    this.name = 'JsonError';
    this.kind = kind;
  }
}

function parseJson(bytes) {
  const text = toText(bytes);
  if (text === undefined) throw new JsonError('invalid', 'not UTF-8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new JsonError('invalid', e.message);
  }
}

/** One event of the batch being processed. */
export class Event {
  /** @param {object} raw the contract's `event` record */
  constructor(raw) {
    this._raw = raw;
  }

  /** The record key (Kafka key; DynamoDB key attributes as JSON), or `undefined`. */
  get key() {
    return this._raw.key ?? undefined;
  }

  /** The key as UTF-8 text, if it is present and valid UTF-8. */
  get keyText() {
    const k = this.key;
    return k === undefined ? undefined : toText(k);
  }

  /** The value (JSON by convention); `undefined` for a tombstone or delete. */
  get value() {
    return this._raw.value ?? undefined;
  }

  /** The value as UTF-8 text, if it is present and valid UTF-8. */
  get valueText() {
    const v = this.value;
    return v === undefined ? undefined : toText(v);
  }

  /** The previous value, where the source knows it (DynamoDB OLD_IMAGE). */
  get oldValue() {
    return this._raw.oldValue ?? undefined;
  }

  /** What happened at the source: `insert`, `upsert` or `delete`. */
  get op() {
    return this._raw.op;
  }

  /** The headers, in order, as `{ key, value }` records. */
  get headers() {
    return this._raw.headers ?? [];
  }

  /** The value of the first header called `name`, or `undefined`. */
  header(name) {
    const h = this.headers.find((h) => h.key === name);
    return h === undefined ? undefined : h.value;
  }

  /** Event time in milliseconds since the Unix epoch. */
  get timestampMs() {
    return Number(this._raw.timestampMs ?? 0);
  }

  /** Where the event came from: `topic/partition@offset` or `stream/shard@sequence`. */
  get origin() {
    return this._raw.origin ?? '';
  }

  /** The value parsed as JSON; throws a JsonError if absent or invalid. */
  json() {
    const v = this.value;
    if (v === undefined) throw new JsonError('no-value');
    return parseJson(v);
  }

  /** The previous value parsed as JSON, `undefined` if there is none. */
  oldJson() {
    const v = this.oldValue;
    return v === undefined ? undefined : parseJson(v);
  }

  /** The contract record this event wraps. */
  get raw() {
    return this._raw;
  }
}
