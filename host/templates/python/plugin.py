"""{{name}}: a Weir plugin.

Drops events whose ``type`` is the configured ``drop_type`` (default
``heartbeat``), stamps every other JSON object with ``meta.plugin``, and
passes deletes (tombstones) on so the sink deletes the key too.
"""

import sys

import weir_sdk
from weir_sdk import Config, Event, JsonError, Outcome, Output, jsonpath

drop_type = "heartbeat"


def init(config: Config) -> None:
    """Once per instance; raising refuses the config."""
    global drop_type
    # Refuse a misspelt key instead of ignoring it.
    config.deny_unknown(["drop_type"])
    drop_type = config.get("drop_type", "heartbeat")


def process(event: Event) -> Outcome:
    """Once per event."""
    if event.value is None:  # a tombstone: pass the delete on
        return Outcome.passthrough(event)
    try:
        value = event.json()
    except JsonError as e:  # not JSON: to the dead-letter sink with the reason
        return Outcome.fail(e)
    if isinstance(value, dict) and value.get("type") == drop_type:
        return Outcome.drop()
    try:
        jsonpath.set(value, "meta.plugin", "{{name}}")
    except jsonpath.PathError as e:
        return Outcome.fail(e)
    # No route: the pipeline's default sink. `.route("name")` picks one.
    return Outcome.emit(Output.json(value).key_of(event))


TypedPlugin = weir_sdk.export(sys.modules[__name__])  # the component's export
