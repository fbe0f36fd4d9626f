// Weir example plugin `router`, in TypeScript: choose the sink (route) of
// each event from one JSON field, with fan-out to several sinks. The same
// config keys, behaviour and messages as the Rust plugin (plugins/router).
//
// | key | meaning |
// |---|---|
// | `field` | required: dotted path of the field whose text picks the route (`event_type`) |
// | `routes` | `value:route[+route...]` pairs, comma-separated: `purchase:mongo+audit,view:redis` |
// | `route.<value>` = `route[+route...]` | one more pair, for values that contain `,` or `:` |
// | `default` | `route[+route...]` for every other value and for a missing field |
// | `unmatched` | without `default`: `pass` (default: no route), `drop` or `fail` |
// | `on_invalid` | value not JSON or absent: `fail` (default), `drop`, or `pass` (no route) |
//
// A field's text is a string's content or the JSON text of another value
// (`42`, `true`). Each output is the event unchanged (value, key, op,
// headers) with its route set; `a+b` emits one copy per route.

import { Config, Event, Outcome, Output, json, plugin, splitList } from '@weir/sdk';

/** What to do with an event no route matches (or whose value is not JSON). */
type Mode = 'pass' | 'drop' | 'fail';

function parseTargets(key: string, text: string): string[] {
  const targets = text.split('+').map((t) => t.trim());
  if (targets.some((t) => t === '')) {
    throw new Error(`config \`${key}\`: empty route name in ${JSON.stringify(text)} (write route or route+route)`);
  }
  return targets;
}

function parseMode(config: Config, key: 'unmatched' | 'on_invalid'): Mode {
  return config.choice(key, ['pass', 'drop', 'fail'] as const, key === 'unmatched' ? 'pass' : 'fail');
}

export class Router {
  private readonly field: string;
  private readonly table = new Map<string, string[]>();
  private readonly fallback: string[] | undefined;
  private readonly unmatched: Mode;
  private readonly onInvalid: Mode;

  constructor(config: Config) {
    config.denyUnknown(['field', 'routes', 'default', 'unmatched', 'on_invalid'], ['route.']);
    this.field = config.required('field');
    const add = (value: string, targets: string[]) => {
      if (this.table.has(value)) throw new Error(`value ${JSON.stringify(value)} is routed twice`);
      this.table.set(value, targets);
    };
    for (const pair of splitList(config.get('routes') ?? '')) {
      const cut = pair.lastIndexOf(':');
      if (cut < 0) {
        throw new Error(`config \`routes\`: ${JSON.stringify(pair)} is not value:route (e.g. purchase:mongo+audit)`);
      }
      add(pair.slice(0, cut).trim(), parseTargets('routes', pair.slice(cut + 1)));
    }
    for (const [value, targets] of config.withPrefix('route.')) {
      add(value, parseTargets(`route.${value}`, targets));
    }
    const fallback = config.get('default');
    this.fallback = fallback === undefined ? undefined : parseTargets('default', fallback);
    if (this.table.size === 0 && this.fallback === undefined) {
      throw new Error('set `routes`, `route.<value>` or `default`');
    }
    this.unmatched = parseMode(config, 'unmatched');
    this.onInvalid = parseMode(config, 'on_invalid');
  }

  process(event: Event): Outcome {
    let value: unknown;
    try {
      value = event.json();
    } catch (e) {
      switch (this.onInvalid) {
        case 'fail':
          return Outcome.fail(`router: ${(e as Error).message}`);
        case 'drop':
          return Outcome.drop();
        default:
          return Outcome.pass(event);
      }
    }
    const found = json.get(value, this.field);
    const text = found === undefined ? undefined : json.toText(found);
    const targets = (text === undefined ? undefined : this.table.get(text)) ?? this.fallback;
    if (targets !== undefined) {
      return Outcome.emitAll(targets.map((route) => Output.fromEvent(event).route(route)));
    }
    switch (this.unmatched) {
      case 'pass':
        return Outcome.pass(event);
      case 'drop':
        return Outcome.drop();
      default:
        return Outcome.fail(
          text === undefined
            ? `router: no field ${this.field} to route by`
            : `router: no route for ${this.field}=${JSON.stringify(text)}`,
        );
    }
  }
}

export const typedPlugin = plugin(Router);
