// Run a plugin natively, under `node --test`, through the same batch loop
// the component runs: events and outcomes are the contract's records
// (`{ tag: 'emit', val: [output, ...] }`, `{ tag: 'drop' }`,
// `{ tag: 'fail', val: reason }`), exactly what the host receives.

import { Runtime } from './runtime.js';
import { toBytes, toText } from './bytes.js';

/** An insert event whose value is `value` serialized as JSON. */
export function event(value, fields = {}) {
  return {
    key: undefined,
    value: toBytes(JSON.stringify(value), 'value'),
    oldValue: undefined,
    op: 'insert',
    timestampMs: 0n,
    origin: 'test/0@0',
    headers: [],
    ...normalize(fields),
  };
}

/** An event record from fields; strings are encoded as UTF-8. */
export function rawEvent(fields = {}) {
  return {
    key: undefined,
    value: undefined,
    oldValue: undefined,
    op: 'insert',
    timestampMs: 0n,
    origin: 'test/0@0',
    headers: [],
    ...normalize(fields),
  };
}

function normalize(fields) {
  const out = { ...fields };
  for (const f of ['key', 'value', 'oldValue']) {
    if (typeof out[f] === 'string') out[f] = toBytes(out[f], f);
  }
  if (typeof out.timestampMs === 'number') out.timestampMs = BigInt(out.timestampMs);
  if (out.headers) {
    out.headers = out.headers.map((h) => (Array.isArray(h) ? { key: h[0], value: toBytes(h[1], 'header') } : h));
  }
  return out;
}

/** One plugin instance, built from `config`, run natively. */
export class Harness {
  /**
   * @param factory what the plugin passes to `plugin(...)`, or the
   *   `typedPlugin` export itself
   * @param config `{ key: value }` or `[key, value]` pairs
   * Throws an Error with the plugin's message if `init` refuses the config.
   */
  constructor(factory, config = {}) {
    this.runtime = factory && factory.runtime instanceof Runtime ? new Runtime(factory.runtime._factory) : new Runtime(factory);
    const pairs = (Array.isArray(config) ? config : Object.entries(config)).map(([k, v]) => [String(k), String(v)]);
    const refused = this.runtime.init(pairs);
    if (refused !== undefined) throw new Error(refused);
  }

  /** The init error of `factory` with `config`, or `undefined` if it accepts it. */
  static initError(factory, config = {}) {
    try {
      new Harness(factory, config);
      return undefined;
    } catch (e) {
      return e.message;
    }
  }

  /** Run one batch of event records; one outcome record per event. */
  run(events) {
    return this.runtime.process([...events]);
  }

  /** Run one batch made of these values as JSON insert events. */
  runJson(values) {
    return this.run([...values].map((v) => event(v)));
  }

  /** Run one event record alone. */
  runOne(ev) {
    return this.run([ev])[0];
  }
}

/** The outputs of an outcome record (empty unless it is an emit). */
export function outputs(outcome) {
  return outcome.tag === 'emit' ? outcome.val : [];
}

/** The routes of an outcome's outputs, `undefined` for the default route. */
export function routes(outcome) {
  return outputs(outcome).map((o) => o.route);
}

/** An output's value parsed as JSON. */
export function jsonOf(output) {
  return JSON.parse(toText(output.value));
}

/** The value of an outcome's only output, parsed as JSON. */
export function emittedJson(outcome) {
  const outs = outputs(outcome);
  if (outs.length !== 1) throw new Error(`expected one output, got ${JSON.stringify(outcome.tag)} with ${outs.length}`);
  return jsonOf(outs[0]);
}

/** Bytes as UTF-8 text (`undefined` stays `undefined`). */
export function text(bytes) {
  return bytes === undefined ? undefined : toText(bytes);
}
