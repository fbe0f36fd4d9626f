"""Lookups natively: get / get_json / get_many, the refusals in the Rust
SDK's words, and the prefetch that costs a batch one round trip."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from weir_sdk import Event, Outcome, Output, lookup, testing
from weir_sdk.lookup import InvalidKey, LookupRefused, NotGranted, NotJson, Prefetch, TooManyKeys
from weir_sdk.testing import Harness, Outcome_Fail


def test_get_get_json_and_get_many_hit_and_miss() -> None:
    with testing.stores({"users": {"u1": '{"name":"Ada","plan":"gold"}', b"\xff": b"raw"}}):
        assert lookup.get("users", "u1") == b'{"name":"Ada","plan":"gold"}'
        assert lookup.get("users", b"u1") == lookup.get("users", bytearray(b"u1"))
        assert lookup.get("users", b"\xff") == b"raw"
        assert lookup.get("users", "u9") is None
        got = lookup.get_json("users", "u1")
        assert got == {"name": "Ada", "plan": "gold"} and list(got) == ["name", "plan"]
        assert lookup.get_json("users", "u9") is None
        assert lookup.get_many("users", ["u1", b"u9", "u1"]) == [
            b'{"name":"Ada","plan":"gold"}', None, b'{"name":"Ada","plan":"gold"}',
        ]  # fmt: skip
        assert lookup.get_many("users", []) == []


def test_each_call_is_a_round_trip() -> None:
    with testing.stores({"users": {"u1": "1"}}):
        before = lookup.round_trips()
        lookup.get("users", "u1")
        lookup.get_json("users", "u2")
        lookup.get_many("users", ["u1", "u2", "u3"])
        assert lookup.round_trips() - before == 3


def test_a_store_not_granted_raises_not_granted_in_the_rust_sdk_s_words() -> None:
    with testing.stores({}):
        with pytest.raises(NotGranted) as e:
            lookup.get("nowhere", "k")
        assert str(e.value) == "lookup store `nowhere` is not granted to this plugin"
        assert e.value.store == "nowhere"
        assert isinstance(e.value, LookupRefused) and not isinstance(e.value, LookupError)
        with pytest.raises(NotGranted):
            lookup.get_many("nowhere", ["k"])
        with pytest.raises(NotGranted):
            lookup.get_json("nowhere", "k")
    # Outside any harness or `stores` block, no store is granted either.
    with pytest.raises(NotGranted):
        lookup.get("users", "k")


def test_get_json_on_a_value_that_is_not_json_raises_not_json() -> None:
    with testing.stores({"raw": {"k": "not json", "nan": "NaN", "latin": b'"\xe9"', "null": "null"}}):
        with pytest.raises(NotJson, match=r"^lookup value is not JSON: Expecting value") as e:
            lookup.get_json("raw", "k")
        assert e.value.reason.startswith("Expecting value")
        with pytest.raises(NotJson, match=r"^lookup value is not JSON: NaN is not a JSON value$"):
            lookup.get_json("raw", "nan")
        with pytest.raises(NotJson, match="utf-8"):
            lookup.get_json("raw", "latin")
        assert lookup.get_json("raw", "null") is None  # JSON null reads as None
        assert lookup.get("raw", "null") == b"null"  # `get` tells them apart


def test_the_other_refusals_say_what_the_rust_sdk_says() -> None:
    assert str(InvalidKey("not UTF-8")) == "invalid lookup key: not UTF-8"
    assert str(TooManyKeys(10_000)) == "too many keys in one lookup (the host takes 10000)"
    assert str(NotJson("why")) == "lookup value is not JSON: why"
    with testing.stores({"raw": {}}):
        with pytest.raises(TooManyKeys) as e:
            lookup.get_many("raw", [b""] * (lookup.MAX_KEYS_PER_CALL + 1))
        assert e.value.limit == 10_000


def test_keys_and_stores_are_checked() -> None:
    with testing.stores({"s": {}}):
        with pytest.raises(TypeError, match="a lookup key must be str or bytes, not int"):
            lookup.get("s", 5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="a list of keys, not one key"):
            lookup.get_many("s", "abc")
        with pytest.raises(TypeError, match="store name must be str"):
            lookup.get(b"s", "k")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="leave the key out"):
        Harness(Looker).with_lookup("s", "k", None)


def test_prefetch_collects_each_key_once() -> None:
    keys = Prefetch()
    assert len(keys) == 0 and not keys
    for k in ("u1", b"u2", "u1"):
        keys.add("users", k)
    keys.add("plans", "gold")
    assert len(keys) == 3
    assert keys.stores() == {"users": [b"u1", b"u2"], "plans": [b"gold"]}
    assert list(keys) == [("users", b"u1"), ("users", b"u2"), ("plans", b"gold")]


class Looker:
    """Looks up the event's key in store `users` (prefetching it) and emits
    what it found; counts its prefetch calls."""

    store = "users"

    def init(self, config: object) -> None:
        self.prefetched = 0

    def prefetch(self, event: Event, keys: Prefetch) -> None:
        self.prefetched += 1
        if event.value == b"raise":
            keys.add(self.store, "from-the-failing-event")
            raise ValueError("no key")
        if event.key is not None:
            keys.add(self.store, event.key)

    def process(self, event: Event) -> Outcome:
        try:
            found = lookup.get(self.store, event.key or b"")
        except LookupRefused as e:
            return Outcome.fail(e)
        return Outcome.emit(Output.bytes(found or b"<absent>"))


def run_keys(h: Harness, keys: list[str]) -> list[object]:
    return h.run([testing.raw_event(b"v", key=k.encode()) for k in keys])


def test_prefetch_makes_a_batch_of_100_events_cost_one_round_trip() -> None:
    h = Harness(Looker).with_lookup("users", "u1", "Ada").with_lookup("users", "u2", "Bob")
    out = run_keys(h, [f"u{i % 5}" for i in range(100)])
    assert h.round_trips == 1
    assert h.plugin.prefetched == 100
    assert [testing.outputs(o)[0].value for o in out[:5]] == [b"<absent>", b"Ada", b"Bob", b"<absent>", b"<absent>"]
    # Not counting as a harness: the module's counter moved as much.
    before = lookup.round_trips()
    run_keys(h, ["u1"] * 100)
    assert lookup.round_trips() - before == 1 and h.round_trips == 2


def test_without_prefetch_each_event_is_a_round_trip() -> None:
    class NoPrefetch(Looker):
        prefetch = None  # type: ignore[assignment]

    h = Harness(NoPrefetch).with_lookup("users", "u1", "Ada")
    run_keys(h, ["u1"] * 100)
    assert h.round_trips == 100


def test_one_round_trip_per_store_and_none_for_an_empty_prefetch() -> None:
    class TwoStores(Looker):
        def prefetch(self, event: Event, keys: Prefetch) -> None:
            keys.add("users", event.key or b"")
            keys.add("plans", event.key or b"")

    h = Harness(TwoStores).with_store("users").with_store("plans")
    run_keys(h, ["a", "b", "c"])
    assert h.round_trips == 2  # users answered from the batch, plans never read
    h = Harness(Looker).with_store("users")
    h.run([testing.raw_event(b"v")] * 3)  # no keys: prefetch asks for nothing
    assert h.round_trips == 3  # ... and each `get` of b"" goes to the store


def test_a_key_not_prefetched_goes_to_the_store() -> None:
    class Extra(Looker):
        def process(self, event: Event) -> Outcome:
            lookup.get(self.store, "not-prefetched")
            return super().process(event)

    h = Harness(Extra).with_lookup("users", "u1", "Ada")
    run_keys(h, ["u1", "u1"])
    assert h.round_trips == 1 + 2


def test_the_answers_are_forgotten_after_the_batch() -> None:
    h = Harness(Looker).with_lookup("users", "u1", "old")
    assert testing.outputs(run_keys(h, ["u1"])[0])[0].value == b"old"
    assert lookup._batch == {}
    h.with_lookup("users", "u1", "new")
    assert testing.outputs(run_keys(h, ["u1"])[0])[0].value == b"new"
    assert h.round_trips == 2
    # A `get` after the batch asks the store again.
    with testing.stores({"users": {"u1": "direct"}}):
        before = lookup.round_trips()
        assert lookup.get("users", "u1") == b"direct"
        assert lookup.round_trips() - before == 1


def test_the_answers_are_forgotten_even_when_the_batch_traps() -> None:
    class Traps(Looker):
        def process(self, event: Event) -> Outcome:
            raise MemoryError

    h = Harness(Traps).with_lookup("users", "u1", "x")
    with pytest.raises(MemoryError):
        run_keys(h, ["u1"])
    assert lookup._batch == {}


def test_a_refused_prefetch_fails_each_event_with_its_own_get() -> None:
    h = Harness(Looker)  # no store granted
    out = run_keys(h, ["u1", "u2", "u1"])
    reason = "lookup store `users` is not granted to this plugin"
    assert out == [Outcome_Fail(reason)] * 3
    # The prefetch's get_many was refused, then each event asked alone.
    assert h.round_trips == 1 + 3


def test_an_exception_in_prefetch_fails_its_event_only_and_takes_its_keys_back() -> None:
    h = Harness(Looker).with_lookup("users", "u1", "Ada")
    events = [testing.raw_event(b"v", key=b"u1"), testing.raw_event(b"raise", key=b"u1")]
    seen: list[list[bytes]] = []
    real = lookup._backend_get_many

    def spy(store: str, keys: list[bytes]) -> list[bytes | None]:
        seen.append(keys)
        return real(store, keys)

    lookup._backend_get_many = spy  # type: ignore[assignment]
    try:
        out = h.run(events)
    finally:
        lookup._backend_get_many = real  # type: ignore[assignment]
    assert testing.outputs(out[0])[0].value == b"Ada"
    reason = testing.fail_reason(out[1])
    assert reason.startswith("prefetch raised ValueError: no key (test_lookup.py:"), reason
    assert reason.endswith(" in prefetch)")
    assert seen == [[b"u1"]]  # not "from-the-failing-event"
    assert h.round_trips == 1


def test_a_prefetch_of_more_keys_than_the_host_takes_is_split() -> None:
    h = Harness(Looker).with_store("users")
    run_keys(h, [f"k{i}" for i in range(lookup.MAX_KEYS_PER_CALL + 1)])
    assert h.round_trips == 2


def test_module_plugins_prefetch_too_and_lookups_work_in_init() -> None:
    mod = types.ModuleType("mod_enrich")
    exec(
        "from weir_sdk import Outcome, Output, lookup\n"
        "def init(config):\n"
        "    global default\n"
        "    default = lookup.get('users', 'default')\n"
        "def prefetch(event, keys):\n"
        "    keys.add('users', event.key)\n"
        "def process(event):\n"
        "    return Outcome.emit(Output.bytes(lookup.get('users', event.key) or default))\n",
        mod.__dict__,
    )
    h = Harness(mod, lookups={"users": {"default": "?", "a": {"x": 1}}})
    out = run_keys(h, ["a", "b"])
    assert [testing.outputs(o)[0].value for o in out] == [b'{"x":1}', b"?"]
    assert h.round_trips == 1 + 1  # init's get, the batch's get_many


# -- the component's side, with stand-ins for componentize-py's bindings ---------

ERR = """\
from dataclasses import dataclass


@dataclass(frozen=True)
class Err(Exception):
    value: object
"""

# The shape componentize-py 0.25.1 generates for wit/0.2.0/lookup.wit.
BINDINGS = """\
from dataclasses import dataclass

from componentize_py_types import Err


@dataclass
class LookupError_NotGranted:
    value: str


@dataclass
class LookupError_InvalidKey:
    value: str


@dataclass
class LookupError_TooManyKeys:
    value: int


STORE = {b"u1": b'{"plan":"gold"}'}
CALLS = []


def get(store, key):
    CALLS.append(("get", store, key))
    if store != "users":
        raise Err(LookupError_NotGranted(store))
    if key == b"bad":
        raise Err(LookupError_InvalidKey("too long"))
    return STORE.get(key)


def get_many(store, keys):
    CALLS.append(("get_many", store, list(keys)))
    if store != "users":
        raise Err(LookupError_NotGranted(store))
    if b"bad" in keys:
        raise Err(LookupError_InvalidKey("too long"))
    if len(keys) > 3:
        raise Err(LookupError_TooManyKeys(3))
    return [STORE.get(k) for k in keys]
"""

IN_A_COMPONENT = """\
import collections.abc, contextlib, dataclasses, enum, inspect, json, os, traceback, types, typing
import sys

sys.platform = "wasi"  # what componentize-py's CPython reports
from weir_sdk import Event, Outcome, Output, lookup, wire
from weir_sdk.runtime import Runtime

assert wire.IN_COMPONENT
"""


def run_in_component(tmp_path: Path, script: str, with_lookup: bool = True) -> None:
    """Run ``script`` in a fresh interpreter that takes itself for a
    component, with the bindings written to ``tmp_path``."""
    (tmp_path / "componentize_py_types.py").write_text(ERR, encoding="utf-8")
    imports = tmp_path / "wit_world" / "imports"
    imports.mkdir(parents=True)
    (tmp_path / "wit_world" / "__init__.py").write_text("", encoding="utf-8")
    (imports / "__init__.py").write_text("", encoding="utf-8")
    if with_lookup:
        (imports / "lookup.py").write_text(BINDINGS, encoding="utf-8")
    sdk = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", IN_A_COMPONENT + script],
        env={"PYTHONPATH": f"{tmp_path}:{sdk}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_in_a_component_the_host_s_answers_and_refusals_are_mapped(tmp_path: Path) -> None:
    run_in_component(
        tmp_path,
        """
from wit_world.imports import lookup as host
assert lookup.get("users", "u1") == b'{"plan":"gold"}'
assert lookup.get_json("users", b"u1") == {"plan": "gold"}
assert lookup.get("users", "u9") is None
assert lookup.get_many("users", ["u1", "u9"]) == [b'{"plan":"gold"}', None]
for call, error, text in [
    (lambda: lookup.get("ghost", "k"), lookup.NotGranted, "lookup store `ghost` is not granted to this plugin"),
    (lambda: lookup.get("users", "bad"), lookup.InvalidKey, "invalid lookup key: too long"),
    (lambda: lookup.get_many("users", ["a", "b", "c", "d"]), lookup.TooManyKeys,
     "too many keys in one lookup (the host takes 3)"),
]:
    try:
        call()
    except error as e:
        assert str(e) == text, str(e)
    else:
        raise AssertionError(text)
assert lookup.round_trips() == 7, lookup.round_trips()

# The batch loop: one get_many for the batch, and a refused chunk left out
# so that each event's own `get` sees its refusal.
class Looker:
    def prefetch(self, event, keys):
        keys.add("users", event.key)
    def process(self, event):
        try:
            return Outcome.emit(Output.bytes(lookup.get("users", event.key) or b"-"))
        except lookup.LookupRefused as e:
            return Outcome.fail(e)

rt = Runtime(Looker, types=wire)
rt.init([])
host.CALLS.clear()
out = rt.process([wire.Event(key=k) for k in (b"u1", b"u9", b"u1")])
assert [o.value[0].value for o in out] == [b'{"plan":"gold"}', b"-", b'{"plan":"gold"}'], out
assert host.CALLS == [("get_many", "users", [b"u1", b"u9"])], host.CALLS
host.CALLS.clear()
out = rt.process([wire.Event(key=k) for k in (b"u1", b"bad")])
assert out[1] == wire.Outcome_Fail("invalid lookup key: too long"), out
assert out[0].value[0].value == b'{"plan":"gold"}'
assert [c[0] for c in host.CALLS] == ["get_many", "get", "get"], host.CALLS
""",
    )


def test_a_component_built_without_the_lookup_import_says_how_to_build_it(tmp_path: Path) -> None:
    run_in_component(
        tmp_path,
        """
try:
    lookup.get("users", "u1")
except lookup.LookupUnavailable as e:
    assert "world `typed-lookup`" in str(e), str(e)
else:
    raise AssertionError("no LookupUnavailable")

class Looker:
    def prefetch(self, event, keys):
        keys.add("users", "u1")
    def process(self, event):
        try:
            lookup.get("users", "u1")
        except lookup.LookupRefused:
            raise AssertionError("not a refusal")
        return Outcome.drop()

rt = Runtime(Looker, types=wire)
rt.init([])
[out] = rt.process([wire.Event()])
assert out.value.startswith("process raised LookupUnavailable: this component was built without"), out
""",
        with_lookup=False,
    )
