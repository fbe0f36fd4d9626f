"""Native testing: run a plugin over events through the same batch loop a
component runs (``weir_sdk.runtime``), under plain pytest, without Wasm.
The outcomes are the records the host would receive, checked as the host
checks them (one per event, every field of its WIT type).

>>> import weir_sdk
>>> from weir_sdk import testing
>>> class DropAll:
...     def process(self, event):
...         return weir_sdk.Outcome.drop()
>>> h = testing.Harness(DropAll)
>>> h.run_json([{"a": 1}])
[Outcome_Drop()]
>>> testing.Harness(DropAll, {"unused": "1"})
Traceback (most recent call last):
...
weir_sdk.runtime.InitError: config `unused`: unknown key (known: )
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from . import jsonpath, wire
from .runtime import InitError, Plugin, Runtime
from .wire import Event, Header, Op, Outcome, Outcome_Drop, Outcome_Emit, Outcome_Fail, Output

__all__ = [
    "Event",
    "Header",
    "Harness",
    "InitError",
    "Op",
    "Outcome",
    "Outcome_Drop",
    "Outcome_Emit",
    "Outcome_Fail",
    "Output",
    "emitted_json",
    "event",
    "fail_reason",
    "json_of",
    "outputs",
    "passed",
    "raw_event",
    "routes",
]

U32_MAX = 0xFFFF_FFFF
S64 = (-(2**63), 2**63 - 1)


class Harness:
    """Runs a plugin natively through the real batch loop.

    ``plugin`` is what the component exports: the plugin's module, a class
    or an object. ``config`` is a mapping or ``(key, value)`` pairs; an
    ``init`` that refuses it raises ``InitError`` with the host's message.
    """

    def __init__(
        self,
        plugin: Plugin | ModuleType | type,
        config: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> None:
        pairs = list(config.items()) if isinstance(config, Mapping) else list(config)
        self._runtime = Runtime(plugin, types=wire)
        self._runtime.init(pairs)

    @property
    def plugin(self) -> Any:
        """The initialised plugin object, to inspect its state."""
        return self._runtime.plugin

    def run(self, events: Sequence[Event]) -> list[Outcome]:
        """Run one batch; one outcome per event, as the host receives them.

        Raises ``AssertionError`` if the host would refuse the outcomes (a
        bug in the SDK, reported loudly in tests).
        """
        for i, ev in enumerate(events):
            _check_event(i, ev)
        outcomes = self._runtime.process(list(events))
        _check_outcomes(outcomes, len(events))
        return outcomes

    def run_json(self, values: Iterable[Any]) -> list[Outcome]:
        """Run one batch of events whose values are these JSON values."""
        return self.run([event(v) for v in values])

    def run_one(self, ev: Event) -> Outcome:
        """Run a batch of one event."""
        return self.run([ev])[0]


def event(value: Any, **fields: Any) -> Event:
    """An upsert event whose value is ``value`` as compact JSON, with no key,
    time 0 and origin ``test/0/0``; ``fields`` set any other field
    (``key=b"k1"``, ``op=Op.DELETE``, ``headers=[Header("h", b"v")]``)."""
    return raw_event(jsonpath.dumps(value).encode("utf-8"), **fields)


def raw_event(value: bytes | None, **fields: Any) -> Event:
    """An event whose value is these raw bytes (invalid JSON, a tombstone
    with ``None``)."""
    return Event(value=value, **fields)


def outputs(outcome: Outcome) -> list[Output]:
    """The outputs of an ``emit`` outcome (``AssertionError`` otherwise)."""
    if not isinstance(outcome, Outcome_Emit):
        raise AssertionError(f"expected emit, got {outcome!r}")
    return outcome.value


def json_of(output: Output) -> Any:
    """The value of an output parsed as JSON (``None`` if it has none)."""
    if output.value is None:
        return None
    try:
        return json.loads(output.value)
    except ValueError as e:
        raise AssertionError(f"output value is not JSON ({e}): {output.value!r}") from None


def emitted_json(outcome: Outcome) -> Any:
    """The one JSON value an ``emit`` of exactly one output carries."""
    outs = outputs(outcome)
    if len(outs) != 1:
        raise AssertionError(f"expected one output, got {len(outs)}")
    return json_of(outs[0])


def routes(outcome: Outcome) -> list[str | None]:
    """The routes of an ``emit`` outcome's outputs, in order."""
    return [o.route for o in outputs(outcome)]


def fail_reason(outcome: Outcome) -> str:
    """The reason of a ``fail`` outcome (``AssertionError`` otherwise)."""
    if not isinstance(outcome, Outcome_Fail):
        raise AssertionError(f"expected fail, got {outcome!r}")
    return outcome.value


def passed(ev: Event) -> Outcome:
    """What a plugin that passes ``ev`` through unchanged emits for it."""
    return Outcome_Emit(
        [
            Output(
                route=None,
                key=ev.key,
                value=ev.value,
                op=ev.op,
                ttl_seconds=None,
                headers=list(ev.headers),
            )
        ]
    )


def _opt_bytes(what: str, v: Any, error: type[Exception] = AssertionError) -> None:
    if v is not None and not isinstance(v, bytes):
        raise error(f"{what} must be bytes or None, got {type(v).__name__}")


def _check_headers(what: str, headers: Any, error: type[Exception] = AssertionError) -> None:
    if not isinstance(headers, list):
        raise error(f"{what} headers must be a list, got {type(headers).__name__}")
    for h in headers:
        if not isinstance(h, Header) or not isinstance(h.key, str) or not isinstance(h.value, bytes):
            raise error(f"{what} header {h!r} is not a Header(str, bytes)")


def _check_event(i: int, ev: Any) -> None:
    # Events a test builds by hand: refuse what the host could never send.
    what = f"event {i}"
    if not isinstance(ev, Event):
        raise TypeError(f"{what} is a {type(ev).__name__}, not a weir_sdk.testing.Event")
    for name in ("key", "value", "old_value"):
        _opt_bytes(f"{what} {name}", getattr(ev, name), TypeError)
    if not isinstance(ev.op, Op):
        raise TypeError(f"{what} op must be a weir_sdk.testing.Op")
    if not isinstance(ev.timestamp_ms, int) or not S64[0] <= ev.timestamp_ms <= S64[1]:
        raise TypeError(f"{what} timestamp_ms must be a 64-bit int")
    if not isinstance(ev.origin, str):
        raise TypeError(f"{what} origin must be str")
    _check_headers(what, ev.headers, TypeError)


def _check_outcomes(outcomes: list[Any], count: int) -> None:
    # What lowering to the WIT types, and then the host, would refuse.
    refuse = "the host would refuse these outcomes: "
    if len(outcomes) != count:
        raise AssertionError(f"{refuse}{len(outcomes)} outcomes for {count} events")
    for i, o in enumerate(outcomes):
        if isinstance(o, Outcome_Drop):
            continue
        if isinstance(o, Outcome_Fail):
            if not isinstance(o.value, str):
                raise AssertionError(f"{refuse}outcome {i}: the fail reason is not a str")
            continue
        if not isinstance(o, Outcome_Emit):
            raise AssertionError(f"{refuse}outcome {i} is a {type(o).__name__}")
        for j, out in enumerate(o.value):
            what = f"{refuse}outcome {i} output {j}"
            if out.route is not None and not isinstance(out.route, str):
                raise AssertionError(f"{what}: route is not a str")
            _opt_bytes(what + " key", out.key)
            _opt_bytes(what + " value", out.value)
            if not isinstance(out.op, Op):
                raise AssertionError(f"{what}: op is not an Op")
            ttl = out.ttl_seconds
            if ttl is not None and not (isinstance(ttl, int) and 0 <= ttl <= U32_MAX):
                raise AssertionError(f"{what}: ttl_seconds {ttl!r} is not a u32")
            _check_headers(what, out.headers)
