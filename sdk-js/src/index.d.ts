// Types of the Weir JavaScript/TypeScript SDK (weir:transform@0.2.0, world
// `typed`). The records are the contract's (wit/0.2.0/types.wit) as
// componentize-js lowers them: byte lists are Uint8Array, `option<T>` is
// `T | undefined`, s64 is bigint, enums are their kebab-case names.

/** What a write does at the sink. */
export type Op = 'insert' | 'upsert' | 'delete';

/** Severity of a log line. */
export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** Bytes, or a string written as UTF-8. */
export type BytesLike = Uint8Array | string;

/** A header of an event or an output. */
export interface Header {
  key: string;
  value: Uint8Array;
}

/** The contract's `event` record, as the host passes it. */
export interface WitEvent {
  key?: Uint8Array;
  value?: Uint8Array;
  oldValue?: Uint8Array;
  op: Op;
  timestampMs: bigint;
  origin: string;
  headers: Header[];
}

/** The contract's `output` record. */
export interface WitOutput {
  route?: string;
  key?: Uint8Array;
  value?: Uint8Array;
  op: Op;
  ttlSeconds?: number;
  headers: Header[];
}

/** The contract's `outcome` variant. */
export type WitOutcome =
  | { tag: 'emit'; val: WitOutput[] }
  | { tag: 'drop' }
  | { tag: 'fail'; val: string };

/** A configuration value that could not be used: "config `key`: problem". */
export class ConfigError extends Error {
  constructor(key: string, problem: string);
  readonly key: string;
  readonly problem: string;
}

/** Split a comma-separated list, trimming items and skipping empty ones. */
export function splitList(text: string): string[];

/** The configuration handed to the plugin's factory (`init`). */
export class Config {
  /** From `[key, value]` pairs or an object; a later duplicate key wins. */
  constructor(pairs?: Array<[string, string]> | Record<string, string>);
  /** The raw value of `key`, or `undefined`. */
  get(key: string): string | undefined;
  /** Whether `key` is set. */
  contains(key: string): boolean;
  /** The raw value of `key`; throws a ConfigError if it is not set. */
  required(key: string): string;
  /** The raw value of `key`, or `fallback` if not set. */
  string(key: string, fallback: string): string;
  string(key: string): string | undefined;
  /** `key` as a number; required when no `fallback` is given. */
  number(key: string, fallback?: number): number;
  /** `key` as an integer; required when no `fallback` is given. */
  integer(key: string, fallback?: number): number;
  /** `key` as a boolean (`true/false/yes/no/on/off/1/0`); required when no `fallback`. */
  bool(key: string, fallback?: boolean): boolean;
  /** `key` as a comma-separated list; empty if not set. */
  list(key: string): string[];
  /** `key` as one of `choices`, `fallback` if not set. */
  choice<C extends string>(key: string, choices: readonly C[], fallback: C): C;
  /** The `[rest, value]` entries whose key starts with `prefix`, prefix removed, in order. */
  withPrefix(prefix: string): Array<[string, string]>;
  /** All `[key, value]` entries, in the order given. */
  entries(): Array<[string, string]>;
  /** Whether no key is set. */
  isEmpty(): boolean;
  /** Throw a ConfigError for a key neither in `known` nor under one of `prefixes`. */
  denyUnknown(known: readonly string[], prefixes?: readonly string[]): void;
}

/** The event value could not be read as JSON. */
export class JsonError extends Error {
  readonly kind: 'no-value' | 'invalid';
}

/** One event of the batch being processed. */
export class Event {
  constructor(raw: WitEvent);
  /** The record key (Kafka key; DynamoDB key attributes as JSON). */
  readonly key: Uint8Array | undefined;
  /** The key as UTF-8 text, if present and valid UTF-8. */
  readonly keyText: string | undefined;
  /** The value (JSON by convention); `undefined` for a tombstone or a delete. */
  readonly value: Uint8Array | undefined;
  /** The value as UTF-8 text, if present and valid UTF-8. */
  readonly valueText: string | undefined;
  /** The previous value, where the source knows it (DynamoDB OLD_IMAGE). */
  readonly oldValue: Uint8Array | undefined;
  /** What happened at the source. */
  readonly op: Op;
  /** The headers, in order. */
  readonly headers: Header[];
  /** The value of the first header called `name`. */
  header(name: string): Uint8Array | undefined;
  /** Event time in milliseconds since the Unix epoch. */
  readonly timestampMs: number;
  /** `topic/partition@offset` or `stream/shard@sequence`. */
  readonly origin: string;
  /** The value parsed as JSON; throws a JsonError if absent or invalid. */
  json(): any;
  /** The previous value parsed as JSON, `undefined` if there is none. */
  oldJson(): any;
  /** The contract record this event wraps. */
  readonly raw: WitEvent;
}

/** One record to write, built with a chain: `Output.json(v).keyOf(event).route("mongo")`. */
export class Output {
  /** An upsert whose value is `value` serialized as JSON (key order kept). */
  static json(value: unknown): Output;
  /** An upsert whose value is these bytes. */
  static bytes(value: BytesLike): Output;
  /** A delete of `key` (no value). */
  static delete(key: BytesLike): Output;
  /** The event passed through: its value, key, op and headers. */
  static fromEvent(event: Event): Output;
  /** Send to the sink named `route` instead of the pipeline's default. */
  route(route: string): this;
  /** Set the key. */
  key(key: BytesLike): this;
  /** Keep the key of `event` (no key if it has none). */
  keyOf(event: Event): this;
  /** Set the op (default `upsert`). */
  op(op: Op): this;
  /** Add a header. */
  header(name: string, value: BytesLike): this;
  /** Expire the record after `seconds` (0 to 2^32-1) at sinks that support a TTL. */
  ttl(seconds: number): this;
  /** Replace the value. */
  value(value: BytesLike): this;
  readonly routeName: string | undefined;
  readonly keyBytes: Uint8Array | undefined;
  readonly valueBytes: Uint8Array | undefined;
  readonly opKind: Op;
  readonly headerList: Header[];
  readonly ttlSeconds: number | undefined;
  /** The contract's `output` record. */
  toWit(): WitOutput;
}

/** What became of one event. */
export class Outcome {
  readonly kind: 'emit' | 'drop' | 'fail';
  readonly outputs: Output[];
  readonly reason: string;
  /** Emit these outputs (none drops the event). */
  static emit(...outputs: Output[]): Outcome;
  /** Emit every output of an iterable. */
  static emitAll(outputs: Iterable<Output>): Outcome;
  /** Nothing to write; the event counts as done. */
  static drop(): Outcome;
  /** Pass the event through unchanged (value, key, op, headers). */
  static pass(event: Event): Outcome;
  /** Send the event to the dead letter with `reason`. */
  static fail(reason: string | Error): Outcome;
  /** The contract's `outcome` variant. */
  toWit(): WitOutcome;
}

/** A built transform: one per plugin instance, called once per event. */
export interface Transform {
  /** Emit, drop or fail one event. A thrown exception fails this event only. */
  process(event: Event): Outcome;
}

/** Builds the transform from its config; throwing refuses the config. */
export type Factory = ((config: Config) => Transform) | (new (config: Config) => Transform);

/** The `typed-plugin` export a plugin's entry module exports as `typedPlugin`. */
export interface TypedPlugin {
  init(config: Array<[string, string]>): void;
  process(batch: WitEvent[]): WitOutcome[];
  readonly runtime: Runtime;
}

/** The batch loop: one outcome per event, exceptions turned into `fail`. */
export class Runtime {
  constructor(factory: Factory);
  /** The error message if the factory refused the config, else `undefined`. */
  init(pairs: Array<[string, string]>): string | undefined;
  process(batch: WitEvent[]): WitOutcome[];
}

/** Make the `typed-plugin` export: `export const typedPlugin = plugin(MyTransform);`. */
export function plugin(factory: Factory): TypedPlugin;

/** The dead-letter reason of an exception thrown by `process`: "Name: message". */
export function exceptionReason(e: unknown): string;

/** JSON fields by dotted path (`user.address.city`, `items.0.sku`). */
export namespace json {
  /** A path could not be written. */
  class PathError extends Error {
    readonly path: string;
    readonly at: string;
  }
  /** The value at `path`, or `undefined`. */
  function get(value: unknown, path: string): any;
  /** The string at `path`, if it is a string. */
  function getString(value: unknown, path: string): string | undefined;
  /** Set `path`, creating objects on the way; throws a PathError through a non-object. */
  function set(value: unknown, path: string, newValue: unknown): void;
  /** Remove the field at `path` and return it. */
  function remove(value: unknown, path: string): any;
  /** Move `from` to `to`; whether there was a field to move. */
  function rename(value: unknown, from: string, to: string): boolean;
  /** A string's content, or the JSON text of any other value. */
  function toText(value: unknown): string;
}

/** Logging through the host (rate-limited by it; natively captured and echoed to stderr). */
export namespace log {
  function write(level: Level, message: string): void;
  function trace(message: string): void;
  function debug(message: string): void;
  function info(message: string): void;
  function warn(message: string): void;
  function error(message: string): void;
  /** The lines logged natively since the last call. */
  function takeCaptured(): Array<[Level, string]>;
  /** Route lines to the host import; the build's entry wrapper calls it. */
  function connectHost(log: (level: Level, message: string) => void): void;
}
