"""Write Weir stream-transform plugins in Python.

A plugin is a module (or a class) with ``init(config)`` and
``process(event) -> Outcome``, plus one line that exports it::

    import sys
    import weir_sdk
    from weir_sdk import Config, Event, Outcome, Output, jsonpath

    field = "type"

    def init(config: Config) -> None:
        global field
        config.deny_unknown(["field"])
        field = config.required("field")

    def process(event: Event) -> Outcome:
        value = event.json()          # a JsonError becomes a `fail`
        if jsonpath.get(value, field) == "heartbeat":
            return Outcome.drop()
        jsonpath.set(value, "meta.seen_at", event.timestamp_ms)
        return Outcome.emit(Output.json(value).key_of(event).route("mongo"))

    TypedPlugin = weir_sdk.export(sys.modules[__name__])

It is built into a component of the world ``typed`` of
``weir:transform@0.2.0`` with componentize-py (``python -m weir_sdk.build``;
``typed-lookup`` for a plugin that imports ``weir_sdk.lookup``) and tested
natively with ``weir_sdk.testing.Harness`` under pytest.

Modules: ``config`` (``Config``), ``event`` (``Event``, ``Op``),
``outcome`` (``Outcome``, ``Output``), ``jsonpath`` (get / set / remove by
dotted path), ``log`` (through the host's log), ``lookup`` (reference
stores the host serves, with a per-batch prefetch), ``runtime`` (the batch
loop and ``export``), ``testing`` (the native harness), ``build`` (the
component build).
"""

from . import jsonpath, log, lookup
from .config import Config, ConfigError
from .event import Event, JsonError, Op
from .outcome import Outcome, Output
from .runtime import InitError, Plugin, export

__version__ = "0.2.0"

#: The contract and world the SDK builds against.
CONTRACT = "weir:transform@0.2.0"
WORLD = "typed"
#: The world of a plugin that uses ``weir_sdk.lookup`` (``typed`` plus the
#: ``lookup`` import).
LOOKUP_WORLD = "typed-lookup"

__all__ = [
    "CONTRACT",
    "LOOKUP_WORLD",
    "WORLD",
    "Config",
    "ConfigError",
    "Event",
    "InitError",
    "JsonError",
    "Op",
    "Outcome",
    "Output",
    "Plugin",
    "export",
    "jsonpath",
    "log",
    "lookup",
]
