// Types of `@weir/sdk/testing`: run a plugin natively through the batch loop.
import type { Factory, TypedPlugin, WitEvent, WitOutcome, WitOutput, Op, BytesLike, Runtime } from './index.js';

/** Fields of a test event; strings are encoded as UTF-8, a number timestamp becomes a bigint. */
export interface EventFields {
  key?: BytesLike;
  value?: BytesLike;
  oldValue?: BytesLike;
  op?: Op;
  timestampMs?: number | bigint;
  origin?: string;
  headers?: Array<[string, BytesLike] | { key: string; value: Uint8Array }>;
}

/** An insert event whose value is `value` as JSON. */
export function event(value: unknown, fields?: EventFields): WitEvent;
/** An event record from fields. */
export function rawEvent(fields?: EventFields): WitEvent;

/** One plugin instance run natively. Throws the plugin's message if init refuses. */
export class Harness {
  constructor(factory: Factory | TypedPlugin, config?: Record<string, string> | Array<[string, string]>);
  readonly runtime: Runtime;
  /** The init error for `config`, or `undefined` if accepted. */
  static initError(factory: Factory | TypedPlugin, config?: Record<string, string> | Array<[string, string]>): string | undefined;
  run(events: Iterable<WitEvent>): WitOutcome[];
  runJson(values: Iterable<unknown>): WitOutcome[];
  runOne(event: WitEvent): WitOutcome;
}

export function outputs(outcome: WitOutcome): WitOutput[];
export function routes(outcome: WitOutcome): Array<string | undefined>;
export function jsonOf(output: WitOutput): any;
export function emittedJson(outcome: WitOutcome): any;
export function text(bytes: Uint8Array | undefined): string | undefined;
