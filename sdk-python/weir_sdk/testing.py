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

Lookups: a harness serves the stores a test gives it (``with_lookup``,
``with_store``, or ``lookups=`` when it is built) as dictionaries, and
counts the round trips its runs make (``round_trips``)::

    h = testing.Harness(plugin).with_lookup("users", "u1", {"plan": "gold"})
    out = h.run_json([{"user": "u1"}] * 100)
    assert h.round_trips == 1        # with a `prefetch`
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from . import jsonpath, lookup, wire
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
    "stores",
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
        *,
        lookups: Mapping[str, Mapping[lookup.Key, Any]] | None = None,
    ) -> None:
        pairs = list(config.items()) if isinstance(config, Mapping) else list(config)
        self._stores: dict[str, dict[bytes, bytes]] = _stores_of(lookups or {})
        self._round_trips = 0
        self._runtime = Runtime(plugin, types=wire)
        with self._serving():
            self._runtime.init(pairs)

    @property
    def plugin(self) -> Any:
        """The initialised plugin object, to inspect its state."""
        return self._runtime.plugin

    def with_lookup(self, store: str, key: lookup.Key, value: Any) -> Harness:
        """Grant lookup store ``store`` to the plugin and put ``key`` =
        ``value`` in it; returns the harness, to chain. ``value`` is stored
        as the host would hand it over: ``bytes`` as they are, a ``str`` as
        its UTF-8 bytes (``'{"plan":"gold"}'`` is JSON text), anything else
        (a dict, a list, a number, a bool) as its compact JSON."""
        self._stores.setdefault(lookup._store(store), {})[lookup._key(key)] = _value(value)
        return self

    def with_store(self, store: str) -> Harness:
        """Grant lookup store ``store`` to the plugin, holding no keys yet
        (a store never named is not granted: ``NotGranted``)."""
        self._stores.setdefault(lookup._store(store), {})
        return self

    @property
    def round_trips(self) -> int:
        """How many round trips to the stores this harness's runs (and the
        plugin's ``init``) made: each ``get`` or ``get_many`` that was not
        answered from a batch's prefetch, and each store the prefetch
        asked."""
        return self._round_trips

    @contextmanager
    def _serving(self) -> Iterator[None]:
        before = lookup.round_trips()
        try:
            with lookup._using_stores(self._stores):
                yield
        finally:
            self._round_trips += lookup.round_trips() - before

    def run(self, events: Sequence[Event]) -> list[Outcome]:
        """Run one batch; one outcome per event, as the host receives them.

        Raises ``AssertionError`` if the host would refuse the outcomes (a
        bug in the SDK, reported loudly in tests).
        """
        for i, ev in enumerate(events):
            _check_event(i, ev)
        with self._serving():
            outcomes = self._runtime.process(list(events))
        _check_outcomes(outcomes, len(events))
        return outcomes

    def run_json(self, values: Iterable[Any]) -> list[Outcome]:
        """Run one batch of events whose values are these JSON values."""
        return self.run([event(v) for v in values])

    def run_one(self, ev: Event) -> Outcome:
        """Run a batch of one event."""
        return self.run([ev])[0]


@contextmanager
def stores(lookups: Mapping[str, Mapping[lookup.Key, Any]]) -> Iterator[dict[str, dict[bytes, bytes]]]:
    """Serve these lookup stores (store -> key -> value, values as
    ``Harness.with_lookup`` takes them) to ``weir_sdk.lookup`` calls made
    in the block, outside a harness (a helper of the plugin tested on its
    own); yields the stores as the SDK holds them, to add to.

    >>> from weir_sdk import lookup
    >>> with stores({"users": {"u1": "gold"}, "empty": {}}):
    ...     lookup.get_many("users", ["u1", "u2"]), lookup.get("empty", "k")
    ([b'gold', None], None)
    """
    held = _stores_of(lookups)
    with lookup._using_stores(held):
        yield held


def _value(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if value is None:
        raise TypeError(
            "a lookup value of None: leave the key out to make it absent, or pass 'null' "
            "for a stored JSON null"
        )
    return jsonpath.dumps(value).encode("utf-8")


def _stores_of(lookups: Mapping[str, Mapping[lookup.Key, Any]]) -> dict[str, dict[bytes, bytes]]:
    return {
        lookup._store(store): {lookup._key(k): _value(v) for k, v in values.items()}
        for store, values in lookups.items()
    }


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
