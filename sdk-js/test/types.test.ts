// Compiled by `tsc -p test/tsconfig.json` (never run): the SDK's type
// declarations accept the documented API and refuse misuse.
import { Config, Event, Outcome, Output, json, log, plugin, type Transform } from '@weir/sdk';
import { Harness, event, routes } from '@weir/sdk/testing';

class Tag implements Transform {
  private readonly tag: string;
  constructor(config: Config) {
    config.denyUnknown(['tag']);
    this.tag = config.string('tag', 'x');
  }
  process(ev: Event): Outcome {
    const v = ev.json();
    json.set(v, 'tag', this.tag);
    log.debug(`tagged ${ev.origin}`);
    return Outcome.emit(Output.json(v).keyOf(ev).route('a').ttl(5).op('upsert'));
  }
}

export const typedPlugin = plugin(Tag);
const r: Array<string | undefined> = routes(new Harness(typedPlugin, { tag: 'y' }).runOne(event({})));
void r;
// @ts-expect-error an op outside the contract's enum
Output.json({}).op('merge');
// @ts-expect-error process must return an Outcome
plugin(() => ({ process: (_e: Event) => 'emit' }));
