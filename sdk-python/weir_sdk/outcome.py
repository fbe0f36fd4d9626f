"""What a plugin returns for one event: an ``Outcome`` and the ``Output``
records it emits, built with a small chaining builder.

>>> out = Output.json({"id": 7}).route("mongo").key("7").header("source", "checkout").ttl(3600)
>>> out.value_bytes, out.op_kind, out.route_name
(b'{"id":7}', <Op.UPSERT: 'upsert'>, 'mongo')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import jsonpath
from .event import Event, Op

if TYPE_CHECKING:
    from typing import Self

Bytes = bytes | bytearray | memoryview | str
"""What a key, value or header value may be given as (``str`` is UTF-8)."""

U32_MAX = 0xFFFF_FFFF

# `bytes` under another name, for annotations inside `Output`, whose
# `bytes` constructor shadows the builtin there.
Raw = bytes


def _bytes(what: str, data: Bytes) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes or str, not {type(data).__name__}")


class Output:
    """One record to write: value, key, op, route, headers, TTL.

    Start from ``Output.json``, ``Output.bytes``, ``Output.delete`` or
    ``Output.from_event``, then refine with the chaining methods (each sets
    one field and returns the output). The read-only properties
    (``route_name``, ``key_bytes``, ...) say what was set.
    """

    __slots__ = ("_route", "_key", "_value", "_op", "_headers", "_ttl")

    def __init__(self) -> None:
        self._route: str | None = None
        self._key: Raw | None = None
        self._value: Raw | None = None
        self._op: Op = Op.UPSERT
        self._headers: list[tuple[str, Raw]] = []
        self._ttl: int | None = None

    def __repr__(self) -> str:
        return (
            f"Output(route={self._route!r}, key={self._key!r}, value={self._value!r}, "
            f"op={self._op.value}, ttl_seconds={self._ttl!r}, headers={self._headers!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Output) and all(
            getattr(self, s) == getattr(other, s) for s in Output.__slots__
        )

    # -- constructors -------------------------------------------------------

    @classmethod
    def json(cls, value: Any) -> Output:
        """An upsert whose value is ``value`` serialized as compact JSON
        (objects keep their key order). ``ValueError``/``TypeError`` if it
        cannot be (NaN, a set, an object of your own)."""
        return cls.bytes(jsonpath.dumps(value).encode("utf-8"))

    @classmethod
    def bytes(cls, value: Bytes) -> Output:
        """An upsert whose value is these bytes (``str`` is encoded as UTF-8)."""
        out = cls()
        out._value = _bytes("value", value)
        return out

    @classmethod
    def delete(cls, key: Bytes) -> Output:
        """A delete of ``key`` (no value)."""
        out = cls()
        out._key = _bytes("key", key)
        out._op = Op.DELETE
        return out

    @classmethod
    def from_event(cls, event: Event) -> Output:
        """The event passed through: its value, key, op and headers."""
        out = cls()
        out._key = event.key
        out._value = event.value
        out._op = event.op
        out._headers = event.headers
        return out

    # -- chaining setters ---------------------------------------------------

    def route(self, route: str) -> Self:
        """Send to the sink named ``route`` instead of the pipeline's default."""
        if not isinstance(route, str):
            raise TypeError(f"route must be str, not {type(route).__name__}")
        self._route = route
        return self

    def key(self, key: Bytes | None) -> Self:
        """Set the key (``None``: no key)."""
        self._key = None if key is None else _bytes("key", key)
        return self

    def key_of(self, event: Event) -> Self:
        """Keep the key of ``event`` (no key if it has none)."""
        self._key = event.key
        return self

    def value(self, value: Bytes | None) -> Self:
        """Replace the value (``None``: no value)."""
        self._value = None if value is None else _bytes("value", value)
        return self

    def op(self, op: Op | str) -> Self:
        """Set the op (default ``upsert``); ``"insert"`` etc. work too."""
        self._op = Op(op)
        return self

    def header(self, name: str, value: Bytes) -> Self:
        """Add a header."""
        if not isinstance(name, str):
            raise TypeError(f"header name must be str, not {type(name).__name__}")
        self._headers.append((name, _bytes("header value", value)))
        return self

    def ttl(self, seconds: int) -> Self:
        """Expire the record after ``seconds`` at sinks that support a TTL
        (0 to 4294967295)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise TypeError(f"ttl must be an int, not {type(seconds).__name__}")
        if not 0 <= seconds <= U32_MAX:
            raise ValueError(f"ttl must be within 0..{U32_MAX} seconds, got {seconds}")
        self._ttl = seconds
        return self

    # -- what was set -------------------------------------------------------

    @property
    def route_name(self) -> str | None:
        """The route, if set."""
        return self._route

    @property
    def key_bytes(self) -> Raw | None:
        """The key, if set."""
        return self._key

    @property
    def value_bytes(self) -> Raw | None:
        """The value, if set."""
        return self._value

    @property
    def op_kind(self) -> Op:
        """The op."""
        return self._op

    @property
    def header_list(self) -> list[tuple[str, Raw]]:
        """The headers, in order (a copy)."""
        return list(self._headers)

    @property
    def ttl_seconds(self) -> int | None:
        """The TTL, if set."""
        return self._ttl


class Outcome:
    """What the plugin decided for one event: emit outputs, drop it, or
    fail it (the event then goes to the dead-letter sink with the reason).

    Build one with ``Outcome.emit``, ``Outcome.emit_all``,
    ``Outcome.passthrough``, ``Outcome.drop`` or ``Outcome.fail``.
    """

    __slots__ = ("kind", "outputs", "reason")

    EMIT = "emit"
    DROP = "drop"
    FAIL = "fail"

    def __init__(self, kind: str, outputs: list[Output] | None = None, reason: str = "") -> None:
        #: ``"emit"``, ``"drop"`` or ``"fail"``.
        self.kind = kind
        #: The outputs of an emit (empty otherwise).
        self.outputs: list[Output] = outputs if outputs is not None else []
        #: The reason of a fail ("" otherwise).
        self.reason = reason

    def __repr__(self) -> str:
        if self.kind == Outcome.EMIT:
            return f"Outcome.emit_all({self.outputs!r})"
        if self.kind == Outcome.FAIL:
            return f"Outcome.fail({self.reason!r})"
        return "Outcome.drop()"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Outcome)
            and (self.kind, self.outputs, self.reason) == (other.kind, other.outputs, other.reason)
        )

    @staticmethod
    def emit(output: Output) -> Outcome:
        """Emit one output."""
        return Outcome(Outcome.EMIT, [output])

    @staticmethod
    def emit_all(outputs: Iterable[Output]) -> Outcome:
        """Emit several outputs (one per route for a fan-out); none drops."""
        return Outcome(Outcome.EMIT, list(outputs))

    @staticmethod
    def passthrough(event: Event) -> Outcome:
        """Pass the event through unchanged (value, key, op, headers)."""
        return Outcome(Outcome.EMIT, [Output.from_event(event)])

    @staticmethod
    def drop() -> Outcome:
        """Filter the event out."""
        return _DROP

    @staticmethod
    def fail(reason: object) -> Outcome:
        """Fail the event with ``reason`` (a message, an exception); it goes
        to the dead-letter sink, the rest of the batch goes on."""
        return Outcome(Outcome.FAIL, reason=str(reason))

    @property
    def is_emit(self) -> bool:
        return self.kind == Outcome.EMIT

    @property
    def is_drop(self) -> bool:
        return self.kind == Outcome.DROP

    @property
    def is_fail(self) -> bool:
        return self.kind == Outcome.FAIL


_DROP = Outcome(Outcome.DROP)
