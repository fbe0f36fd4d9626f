"""The batch loop, natively: every field round-trips, exceptions fail only
their event, bad outcomes fail only theirs, and init errors reach the host."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

import weir_sdk
from weir_sdk import Config, Event, Op, Outcome, Output, log, testing
from weir_sdk.runtime import NOT_INITIALISED, Runtime
from weir_sdk.testing import Harness, Header, Outcome_Drop, Outcome_Fail


class Echo:
    """Echoes each event with its metadata, to check the loop end to end."""

    def init(self, config: Config) -> None:
        config.deny_unknown([])
        self.seen = 0

    def process(self, event: Event) -> Outcome:
        self.seen += 1
        if event.value == b"drop":
            return Outcome.drop()
        if event.value == b"fail":
            return Outcome.fail("asked to fail")
        if event.value == b"raise":
            raise KeyError("missing")
        meta = {
            "key": event.key_str,
            "op": event.op.value,
            "ts": event.timestamp_ms,
            "origin": event.origin,
            "h": (event.header("h") or b"").decode(),
            "old": event.old_value is not None,
        }
        return Outcome.emit_all(
            [
                Output.from_event(event).route("copy").ttl(5),
                Output.json(meta).key_of(event).op(Op.INSERT),
            ]
        )


def test_batch_loop_round_trips_every_field() -> None:
    h = Harness(Echo)
    ev = testing.Event(
        key=b"k",
        value=b"v",
        old_value=b"o",
        op=testing.Op.DELETE,
        headers=[Header("h", b"hv")],
        timestamp_ms=42,
        origin="t/1@2",
    )
    out = h.run([ev, testing.raw_event(b"drop"), testing.raw_event(b"fail")])
    assert len(out) == 3
    first, second = testing.outputs(out[0])
    assert first == testing.Output(
        route="copy", key=b"k", value=b"v", op=testing.Op.DELETE, ttl_seconds=5,
        headers=[Header("h", b"hv")],
    )  # fmt: skip
    assert second.op == testing.Op.INSERT and second.key == b"k"
    assert testing.json_of(second) == {
        "key": "k", "op": "delete", "ts": 42, "origin": "t/1@2", "h": "hv", "old": True,
    }  # fmt: skip
    assert out[1] == Outcome_Drop()
    assert out[2] == Outcome_Fail("asked to fail")
    assert h.run([]) == []
    assert h.plugin.seen == 3


def test_an_exception_fails_only_its_event() -> None:
    h = Harness(Echo)
    out = h.run([testing.raw_event(b"drop"), testing.raw_event(b"raise"), testing.raw_event(b"drop")])
    assert out[0] == out[2] == Outcome_Drop()
    reason = testing.fail_reason(out[1])
    assert reason.startswith("process raised KeyError: 'missing' (test_runtime.py:"), reason
    assert reason.endswith(" in process)"), reason
    # The instance goes on: its state is intact.
    assert h.plugin.seen == 3


def test_memory_errors_and_base_exceptions_trap() -> None:
    class Bad:
        def process(self, event: Event) -> Outcome:
            if event.value == b"mem":
                raise MemoryError
            raise SystemExit(3)

    h = Harness(Bad)
    with pytest.raises(MemoryError):
        h.run([testing.raw_event(b"mem")])
    with pytest.raises(SystemExit):
        h.run([testing.raw_event(b"exit")])


def test_wrong_returns_fail_the_event_not_the_batch() -> None:
    class Sloppy:
        def process(self, event: Event) -> Any:
            if event.value == b"none":
                return None
            return Outcome.emit_all([Output.bytes(b"x"), "not an output"])  # type: ignore[list-item]

    out = Harness(Sloppy).run([testing.raw_event(b"none"), testing.raw_event(b"x")])
    assert out == [
        Outcome_Fail("process returned NoneType, not a weir_sdk.Outcome"),
        Outcome_Fail("output 1 of the emit is a str, not a weir_sdk.Output"),
    ]


def test_init_errors_reach_the_caller() -> None:
    with pytest.raises(weir_sdk.InitError, match=r"^config `x`: unknown key \(known: \)$"):
        Harness(Echo, {"x": "1"})

    class Crashes:
        def init(self, config: Config) -> None:
            raise RuntimeError("no")

        def process(self, event: Event) -> Outcome:
            return Outcome.drop()

    with pytest.raises(weir_sdk.InitError, match=r"^init raised RuntimeError: no \(test_runtime"):
        Harness(Crashes)
    with pytest.raises(weir_sdk.InitError, match="has no `process"):
        Harness(object())


def test_module_plugins_and_the_uninitialised_runtime() -> None:
    mod = types.ModuleType("mod_plugin")
    exec(
        "from weir_sdk import Outcome\n"
        "limit = 0\n"
        "def init(config):\n"
        "    global limit\n"
        "    limit = config.get_int('limit', 1)\n"
        "def process(event):\n"
        "    return Outcome.drop() if len(event.value) > limit else Outcome.passthrough(event)\n",
        mod.__dict__,
    )
    h = Harness(mod, {"limit": "2"})
    short, long_ = testing.raw_event(b"ab"), testing.raw_event(b"abc")
    assert h.run([short, long_]) == [testing.passed(short), Outcome_Drop()]

    rt = Runtime(mod, types=testing.wire)
    assert rt.process([short]) == [Outcome_Fail(NOT_INITIALISED)]


def test_export_gives_the_typed_plugin_class() -> None:
    cls = weir_sdk.export(Echo)
    instance = cls()
    instance.init([])
    assert instance.process([testing.raw_event(b"drop")]) == [Outcome_Drop()]
    with pytest.raises(weir_sdk.InitError):
        instance.init([("x", "1")])


def test_logging_is_captured_natively() -> None:
    log.take_captured()
    log.info("batch of 3 events")
    log.warn("slow")
    assert log.take_captured() == [(log.Level.INFO, "batch of 3 events"), (log.Level.WARN, "slow")]
    assert log.take_captured() == []
    assert "wit_world" not in sys.modules
