// Write Weir stream-transform plugins in JavaScript or TypeScript, against
// the typed world of `weir:transform@0.2.0` (wit/0.2.0, world `typed`).
// The API mirrors the Rust SDK (sdk/): see README.md.

export { Config, ConfigError, splitList } from './config.js';
export { Event, JsonError } from './event.js';
export { Output, Outcome } from './outcome.js';
export { plugin, Runtime, exceptionReason } from './runtime.js';
export * as json from './json.js';
export * as log from './log.js';
