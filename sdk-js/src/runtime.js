// The batch loop: one Outcome per event, in order, whatever the plugin
// does. It is the same code in a component (the `typed-plugin` export) and
// in the native test harness, so a test runs what the host runs.
//
// An exception thrown by `process` fails that event only: the SDK catches
// it and returns `fail("<Name>: <message>")` for it, and the rest of the
// batch is processed by the same instance. (A Rust plugin's panic is a
// trap that the host isolates by splitting the batch; in JavaScript an
// exception leaves the engine sound, so catching it costs one event, not
// a bisection and a new instance.) What no `catch` can stop, an endless
// loop or memory exhaustion, traps, and the host isolates the event as for
// any other plugin. `init` refuses the config by throwing: the host then
// refuses to load the plugin with that message.

import { Config } from './config.js';
import { Event } from './event.js';
import { Outcome } from './outcome.js';
import { describe } from './bytes.js';

/** The message of an exception, as a dead-letter reason. */
export function exceptionReason(e) {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `uncaught ${describe(e)}`;
}

/** The same as `exceptionReason` for `init`: a ConfigError says only its message. */
function initReason(e) {
  if (e instanceof Error) return e.name === 'Error' || e.name === 'ConfigError' ? e.message : `${e.name}: ${e.message}`;
  return String(e);
}

/**
 * Holds one plugin instance and runs batches through it. `factory` builds
 * the transform from its Config: a function `(config) => transform`, or a
 * class whose constructor takes the Config; the transform has a
 * `process(event)` method that returns an Outcome.
 */
export class Runtime {
  constructor(factory) {
    if (typeof factory !== 'function') {
      throw new TypeError(`plugin() takes a class or a function (config) => transform, got ${describe(factory)}`);
    }
    this._factory = factory;
    this._transform = null;
  }

  /**
   * Build the transform from `[key, value]` pairs. Returns the error
   * message if it refused the config, `undefined` if it accepted it.
   */
  init(pairs) {
    const config = new Config(pairs);
    let transform;
    try {
      transform = isClass(this._factory) ? new this._factory(config) : this._factory(config);
    } catch (e) {
      return initReason(e);
    }
    if (transform === null || typeof transform !== 'object' || typeof transform.process !== 'function') {
      return `init returned ${describe(transform)}, not an object with a process(event) method`;
    }
    this._transform = transform;
    return undefined;
  }

  /** One outcome record per event record, in the same order. */
  process(batch) {
    const transform = this._transform;
    return batch.map((raw) => {
      if (transform === null) return { tag: 'fail', val: 'plugin used before init' };
      const event = new Event(raw);
      let outcome;
      try {
        outcome = transform.process(event);
      } catch (e) {
        return { tag: 'fail', val: exceptionReason(e) };
      }
      if (!(outcome instanceof Outcome)) {
        return { tag: 'fail', val: `process returned ${describe(outcome)}, not an Outcome` };
      }
      return outcome.toWit();
    });
  }
}

function isClass(f) {
  return /^class[\s{]/.test(Function.prototype.toString.call(f));
}

/**
 * The `typed-plugin` export of a component: `export const typedPlugin =
 * plugin(MyTransform);` in the plugin's entry module.
 */
export function plugin(factory) {
  const runtime = new Runtime(factory);
  return {
    init(config) {
      const refused = runtime.init(config);
      // The component's `result<_, string>`: a thrown `{ payload }` is `err`.
      if (refused !== undefined) throw { payload: refused };
    },
    process(batch) {
      return runtime.process(batch);
    },
    /** The runtime behind the export, for the native test harness. */
    runtime,
  };
}
