// {{name}}: a Weir plugin.
//
// Drops events whose `type` is the configured `drop_type` (default
// `heartbeat`), stamps every other JSON object with `meta.plugin`, and
// passes deletes (tombstones) on so the sink deletes the key too.

import { Config, Event, Outcome, Output, json, plugin } from '@weir/sdk';

class Plugin {
  /** Events whose `type` field has this value are dropped. */
  private readonly dropType: string;

  constructor(config: Config) {
    // Refuse a misspelt key instead of ignoring it (a throw refuses the config).
    config.denyUnknown(['drop_type']);
    this.dropType = config.string('drop_type', 'heartbeat');
  }

  process(event: Event): Outcome {
    // A tombstone has no value: pass the delete on.
    if (event.value === undefined) return Outcome.pass(event);
    // Not JSON: json() throws, and the event fails with the reason.
    const value = event.json();
    if (json.get(value, 'type') === this.dropType) return Outcome.drop();
    try {
      json.set(value, 'meta.plugin', '{{name}}');
    } catch (e) {
      return Outcome.fail(e instanceof Error ? e.message : String(e));
    }
    // No route: the pipeline's default sink. `.route('name')` picks one.
    return Outcome.emit(Output.json(value).keyOf(event));
  }
}

// The component's export: exactly this name.
export const typedPlugin = plugin(Plugin);
