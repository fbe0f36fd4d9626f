"""The event a plugin sees: one record of the batch, with its key, value,
op, headers, time and origin, and its value read as JSON on demand."""

from __future__ import annotations

import json
from enum import Enum
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from . import wire


class Op(str, Enum):
    """What happened at the source, or what a write does at the sink."""

    INSERT = "insert"
    """A new record (a Kafka message, a DynamoDB INSERT)."""
    UPSERT = "upsert"
    """Insert or replace by key (a DynamoDB MODIFY; the default for outputs)."""
    DELETE = "delete"
    """Remove by key (a Kafka tombstone, a DynamoDB REMOVE)."""

    def __str__(self) -> str:
        return self.value


class JsonError(ValueError):
    """The event value could not be read as JSON.

    Its text is what the Rust SDK says: ``event has no value`` or
    ``event value is not valid JSON: <why>``.
    """

    def __init__(self, message: str, *, no_value: bool = False) -> None:
        super().__init__(message)
        #: True when the event has no value at all (a tombstone, a delete).
        self.no_value = no_value


def _reject_constant(name: str) -> Any:
    # Python's parser takes NaN and Infinity; JSON (and the Rust SDK) do not.
    raise ValueError(f"{name} is not a JSON value")


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise JsonError(f"event value is not valid JSON: {e}") from None


class Event:
    """One event of the batch being processed (read-only).

    Wraps the record the host sent; nothing is copied or parsed until the
    plugin asks (``json()`` parses the value each time it is called: keep
    the result if you need it twice).
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: wire.Event) -> None:
        # `raw` is a `types.event` record: the class componentize-py
        # generates or its native twin `weir_sdk.wire.Event` (same fields).
        self._raw = raw

    def __repr__(self) -> str:
        return (
            f"Event(origin={self.origin!r}, op={self.op.value}, key={self.key!r}, "
            f"value={self.value!r})"
        )

    @property
    def key(self) -> bytes | None:
        """The record key (Kafka key; DynamoDB key attributes as JSON)."""
        return self._raw.key

    @property
    def key_str(self) -> str | None:
        """The key as UTF-8 text, if it is present and valid UTF-8."""
        key = self._raw.key
        if key is None:
            return None
        try:
            return bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            return None

    @property
    def value(self) -> bytes | None:
        """The value (JSON by convention); ``None`` for a tombstone."""
        return self._raw.value

    @property
    def old_value(self) -> bytes | None:
        """The previous value, where the source knows it (DynamoDB OLD_IMAGE)."""
        return self._raw.old_value

    @property
    def op(self) -> Op:
        """What happened at the source: insert, upsert or delete."""
        return _OPS[self._raw.op.value]

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """The headers, in order, as ``(name, value)`` pairs."""
        return [(h.key, h.value) for h in self._raw.headers]

    def iter_headers(self) -> Iterator[tuple[str, bytes]]:
        """The headers, in order, without building a list."""
        for h in self._raw.headers:
            yield h.key, h.value

    def header(self, name: str) -> bytes | None:
        """The value of the first header called ``name``."""
        for h in self._raw.headers:
            if h.key == name:
                return h.value
        return None

    @property
    def timestamp_ms(self) -> int:
        """Event time in milliseconds since the Unix epoch."""
        return self._raw.timestamp_ms

    @property
    def origin(self) -> str:
        """Where the event came from: ``topic/partition@offset`` or
        ``stream/shard@sequence``."""
        return self._raw.origin

    def json(self) -> Any:
        """The value parsed as JSON (objects keep their key order).

        Raises ``JsonError`` if there is no value or it is not JSON.
        """
        raw = self._raw.value
        if raw is None:
            raise JsonError("event has no value", no_value=True)
        return _parse(raw)

    def old_json(self) -> Any | None:
        """The previous value parsed as JSON, ``None`` if there is none."""
        raw = self._raw.old_value
        return None if raw is None else _parse(raw)


# The WIT enum's discriminants, in order (insert, upsert, delete).
_OPS = (Op.INSERT, Op.UPSERT, Op.DELETE)
