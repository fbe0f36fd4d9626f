"""Lookups in reference stores the host serves (``[lookups.NAME]`` in the
pipeline config, granted with ``[plugins.NAME] lookups = ["NAME"]``): a
Redis key or hash, a row of a reference file, ... The host does the I/O,
caches the answers and bounds every call by the plugin's deadline.

>>> from weir_sdk import lookup, testing
>>> with testing.stores({"users": {"u1": {"plan": "gold"}}}):
...     lookup.get_json("users", "u1"), lookup.get("users", "u9")
({'plan': 'gold'}, None)

A store that is down never answers "absent": the host aborts the call and
runs the batch again later, so ``None`` always means the key is not in the
store. The exceptions (``LookupRefused`` and its subclasses) are refusals
that trying again cannot mend: a store not granted, a key the store cannot
use, too many keys, a value that is not JSON.

**One round trip per batch.** ``get`` asks the host once per key. A plugin
that knows from an event which keys it will want says so in a
``prefetch(event, keys)`` method (``keys.add("users", user_id)``); the SDK
then asks for every key of the batch with one ``get_many`` per store before
the first ``process``, and ``get`` answers those keys from that batch's
answers, which are forgotten when the batch ends.

A component that calls this module must be built against the world
``typed-lookup`` (``python -m weir_sdk.build`` picks it when a plugin source
imports ``weir_sdk.lookup``). Natively (``weir_sdk.testing``) the stores
are dictionaries the test fills (``Harness.with_lookup``,
``testing.stores``) and the round trips are counted (``round_trips()``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .wire import IN_COMPONENT

__all__ = [
    "MAX_KEYS_PER_CALL",
    "InvalidKey",
    "Key",
    "LookupRefused",
    "LookupUnavailable",
    "NotGranted",
    "NotJson",
    "Prefetch",
    "TooManyKeys",
    "get",
    "get_json",
    "get_many",
    "round_trips",
]

Key = str | bytes | bytearray | memoryview
"""What a key may be given as (``str`` is encoded as UTF-8)."""

#: The most keys the host takes in one ``get_many`` (the SDK's prefetch
#: splits larger sets; a direct ``get_many`` over it raises ``TooManyKeys``).
MAX_KEYS_PER_CALL = 10_000


# -- errors -------------------------------------------------------------------


class LookupRefused(Exception):
    """A lookup was refused; none of these goes away by trying again.

    ``str(error)`` is the Rust SDK's text for the same refusal, so
    ``Outcome.fail(str(e))`` dead-letters the event with the same reason in
    either language. (Not a subclass of the builtin ``LookupError``, the
    base of ``KeyError`` and ``IndexError``.)
    """


class NotGranted(LookupRefused):
    """No store of this name is granted to the plugin."""

    def __init__(self, store: str) -> None:
        super().__init__(f"lookup store `{store}` is not granted to this plugin")
        #: The store's name.
        self.store = store


class InvalidKey(LookupRefused):
    """The store cannot use this key (not UTF-8 where it needs text, too
    long, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid lookup key: {reason}")
        #: Why, in the host's words.
        self.reason = reason


class TooManyKeys(LookupRefused):
    """More keys than the host takes in one ``get_many``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"too many keys in one lookup (the host takes {limit})")
        #: The host's limit.
        self.limit = limit


class NotJson(LookupRefused):
    """The value is not JSON (``get_json`` only)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"lookup value is not JSON: {reason}")
        #: Why, in Python's parser's words.
        self.reason = reason


class LookupUnavailable(RuntimeError):
    """The component was built without the ``lookup`` import (a world other
    than ``typed-lookup``). A build mistake, not a refusal: it is not a
    ``LookupRefused``, so it reaches the batch loop, which fails the event
    with it."""

    def __init__(self) -> None:
        super().__init__(
            "this component was built without the lookup import: build it against the "
            "world `typed-lookup` (python -m weir_sdk.build picks it when a plugin source "
            "imports weir_sdk.lookup; or pass --world typed-lookup)"
        )


# -- keys -----------------------------------------------------------------------


def _key(key: Key) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"a lookup key must be str or bytes, not {type(key).__name__}")


def _store(store: str) -> str:
    if not isinstance(store, str):
        raise TypeError(f"a lookup store name must be str, not {type(store).__name__}")
    return store


def _keys(keys: Iterable[Key]) -> list[bytes]:
    if isinstance(keys, (str, bytes, bytearray, memoryview)):
        raise TypeError("get_many takes a list of keys, not one key")
    return [_key(k) for k in keys]


class Prefetch:
    """The keys a plugin's ``prefetch(event, keys)`` asks for, per store,
    each once (in the order first asked).

    >>> keys = Prefetch()
    >>> keys.add("users", "u1"); keys.add("users", b"u1"); keys.add("plans", "gold")
    >>> len(keys), list(keys)
    (2, [('users', b'u1'), ('plans', b'gold')])
    """

    __slots__ = ("_keys", "_added")

    def __init__(self) -> None:
        # store -> key -> None: ordered sets.
        self._keys: dict[str, dict[bytes, None]] = {}
        # What the current event added, to take back if its prefetch raises.
        self._added: list[tuple[str, bytes]] | None = None

    def __repr__(self) -> str:
        return f"Prefetch({self.stores()!r})"

    def add(self, store: str, key: Key) -> None:
        """Ask for ``key`` in ``store`` before the batch runs."""
        store = _store(store)
        key = _key(key)
        keys = self._keys.setdefault(store, {})
        if key not in keys:
            keys[key] = None
            if self._added is not None:
                self._added.append((store, key))

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._keys.values())

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for store, keys in self._keys.items():
            for key in keys:
                yield store, key

    def stores(self) -> dict[str, list[bytes]]:
        """Every store asked for, with its keys."""
        return {store: list(keys) for store, keys in self._keys.items()}

    # The batch loop brackets each event's `prefetch` with these, so an
    # event whose prefetch raises adds no keys.
    def _begin_event(self) -> None:
        self._added = []

    def _end_event(self, keep: bool) -> None:
        added, self._added = self._added or [], None
        if keep:
            return
        for store, key in added:
            keys = self._keys[store]
            del keys[key]
            if not keys:
                del self._keys[store]


# -- the batch's answers ----------------------------------------------------------

#: store -> key -> value (None: not in the store), for the batch being run.
_batch: dict[str, dict[bytes, bytes | None]] = {}


def _begin_batch(prefetch: Prefetch) -> None:
    """Fetch what ``prefetch`` asked for, one ``get_many`` per store (split
    at ``MAX_KEYS_PER_CALL``), and keep the answers for the batch. A store
    that refuses is left out, as in the Rust SDK: its ``get``s then ask the
    host one by one and each sees the refusal itself, so a refusal fails
    the events that meet it, never the batch silently."""
    answers: dict[str, dict[bytes, bytes | None]] = {}
    for store, keys in prefetch.stores().items():
        values: dict[bytes, bytes | None] = {}
        for start in range(0, len(keys), MAX_KEYS_PER_CALL):
            chunk = keys[start : start + MAX_KEYS_PER_CALL]
            try:
                answered = _backend_get_many(store, chunk)
            except (LookupRefused, LookupUnavailable):
                continue
            values.update(zip(chunk, answered))
        answers[store] = values
    global _batch
    _batch = answers


def _end_batch() -> None:
    """Forget the batch's answers (the next batch may see other values)."""
    global _batch
    _batch = {}


# -- the API ----------------------------------------------------------------------


def get(store: str, key: Key) -> bytes | None:
    """The value stored under ``key`` in ``store``, or ``None`` if there is
    none. Raises ``NotGranted`` or ``InvalidKey``."""
    store = _store(store)
    key = _key(key)
    answered = _batch.get(store)
    if answered is not None and key in answered:
        return answered[key]
    return _backend_get(store, key)


def get_many(store: str, keys: Iterable[Key]) -> list[bytes | None]:
    """The values of many keys at once, one per key and in order: one round
    trip to the store for the keys the host's cache does not hold. Raises
    ``NotGranted``, ``InvalidKey`` or ``TooManyKeys`` (over
    ``MAX_KEYS_PER_CALL`` keys)."""
    return _backend_get_many(_store(store), _keys(keys))


def _reject_constant(name: str) -> Any:
    # Python's parser takes NaN and Infinity; JSON (and the Rust SDK) do not.
    raise ValueError(f"{name} is not a JSON value")


def get_json(store: str, key: Key) -> Any | None:
    """``get``, parsed as JSON (a Redis hash, a file row or a document
    arrives as a JSON object; objects keep their key order). ``None`` if
    the key is absent, and also if the stored value is JSON ``null`` (use
    ``get`` to tell those apart). Raises ``NotJson`` if the value is not
    UTF-8 JSON, and what ``get`` raises."""
    raw = get(store, key)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise NotJson(str(e)) from None


_round_trips = 0


def round_trips() -> int:
    """How many calls this interpreter made to the stores (``get`` and
    ``get_many`` that were not answered from the batch's prefetch). Take
    the difference around the code under test. In a component these are
    calls to the host, which may answer some from its cache; the host
    counts real store trips in ``weir_lookup_store_calls_total``."""
    return _round_trips


# -- backends -----------------------------------------------------------------------

if IN_COMPONENT:
    _host: Any = None

    def _bindings() -> Any:
        global _host
        if _host is None:
            try:
                from wit_world.imports import lookup as host  # type: ignore[import-not-found]  # generated by componentize-py
            except ImportError:
                raise LookupUnavailable() from None
            _host = host
        return _host

    def _refusal(error: Any) -> LookupRefused:
        host = _bindings()
        if isinstance(error, host.LookupError_NotGranted):
            return NotGranted(error.value)
        if isinstance(error, host.LookupError_InvalidKey):
            return InvalidKey(error.value)
        if isinstance(error, host.LookupError_TooManyKeys):
            return TooManyKeys(error.value)
        return LookupRefused(f"lookup refused: {error!r}")

    def _backend_get(store: str, key: bytes) -> bytes | None:
        global _round_trips
        host = _bindings()
        from componentize_py_types import Err  # type: ignore[import-not-found]  # generated by componentize-py

        _round_trips += 1
        try:
            value = host.get(store, key)
        except Err as e:
            raise _refusal(e.value) from None
        return None if value is None else bytes(value)

    def _backend_get_many(store: str, keys: list[bytes]) -> list[bytes | None]:
        global _round_trips
        host = _bindings()
        from componentize_py_types import Err  # type: ignore[import-not-found]  # generated by componentize-py

        _round_trips += 1
        try:
            values = host.get_many(store, keys)
        except Err as e:
            raise _refusal(e.value) from None
        return [None if v is None else bytes(v) for v in values]

else:
    #: The native stores: store -> key -> value. A store exists (is granted)
    #: once it is in here; ``weir_sdk.testing`` installs a harness's stores
    #: for the length of its runs.
    _native: dict[str, dict[bytes, bytes]] = {}

    def _read(store: str) -> dict[bytes, bytes]:
        global _round_trips
        _round_trips += 1
        values = _native.get(store)
        if values is None:
            raise NotGranted(store)
        return values

    def _backend_get(store: str, key: bytes) -> bytes | None:
        return _read(store).get(key)

    def _backend_get_many(store: str, keys: list[bytes]) -> list[bytes | None]:
        if len(keys) > MAX_KEYS_PER_CALL:
            raise TooManyKeys(MAX_KEYS_PER_CALL)
        values = _read(store)
        return [values.get(k) for k in keys]


@contextmanager
def _using_stores(stores: dict[str, dict[bytes, bytes]]) -> Iterator[None]:
    """Natively, serve ``stores`` (not copied: what is added to it during
    the block is served too) for the length of the block; used by
    ``weir_sdk.testing``, and nested blocks restore the outer stores."""
    if IN_COMPONENT:
        raise RuntimeError("native lookup stores are for tests outside a component")
    global _native
    previous = _native
    _native = stores
    try:
        yield
    finally:
        _native = previous
