// The benchmark's reference transform in JavaScript (the logic of
// plugins/fixtures/reference): parse the value, drop it if `event_type` is
// `heartbeat`, add `ingested_at_ms` (the event time), remove `debug`,
// serialize, and route `purchase` events to `orders`, the rest to
// `activity`.
import { Outcome, Output, plugin } from '@weir/sdk';

class Reference {
  constructor(config) {
    config.denyUnknown([]);
  }

  process(event) {
    if (event.value === undefined) return Outcome.drop();
    const v = event.json();
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return Outcome.fail('value is not a JSON object');
    if (v.event_type === 'heartbeat') return Outcome.drop();
    const route = v.event_type === 'purchase' ? 'orders' : 'activity';
    v.ingested_at_ms = event.timestampMs;
    delete v.debug;
    return Outcome.emit(Output.json(v).keyOf(event).route(route));
  }
}

export const typedPlugin = plugin(Reference);
