"""Events, outputs and outcomes: what a plugin reads and builds."""

import pytest

from weir_sdk import Event, JsonError, Op, Outcome, Output, testing


def test_event_reads_every_field_and_json() -> None:
    raw = testing.Event(
        key=b"\xff", value=b'{"b": 1, "a": [1]}', old_value=b"[]", op=testing.Op.INSERT,
        timestamp_ms=-5, origin="t/0@1", headers=[testing.Header("x", b"1"), testing.Header("x", b"2")],
    )  # fmt: skip
    ev = Event(raw)
    assert ev.key == b"\xff" and ev.key_str is None
    assert ev.op is Op.INSERT and str(ev.op) == "insert"
    assert ev.header("x") == b"1" and ev.header("y") is None
    assert ev.headers == [("x", b"1"), ("x", b"2")]
    assert list(ev.json()) == ["b", "a"]  # key order kept
    assert ev.old_json() == []
    assert (ev.timestamp_ms, ev.origin) == (-5, "t/0@1")


def test_json_errors_say_what_is_wrong() -> None:
    with pytest.raises(JsonError, match="^event has no value$") as e:
        Event(testing.raw_event(None)).json()
    assert e.value.no_value
    with pytest.raises(JsonError, match="^event value is not valid JSON: Expecting value"):
        Event(testing.raw_event(b"not json")).json()
    with pytest.raises(JsonError, match="^event value is not valid JSON"):
        Event(testing.raw_event(b'"\xff"')).json()
    with pytest.raises(JsonError, match="^event value is not valid JSON: NaN is not a JSON value$"):
        Event(testing.raw_event(b'{"a": NaN}')).json()
    assert Event(testing.raw_event(None)).old_json() is None


def test_output_builder() -> None:
    ev = Event(testing.raw_event(b"v", key=b"k", op=testing.Op.DELETE, headers=[testing.Header("h", b"1")]))
    out = Output.json({"id": 7, "é": "ü"}).route("mongo").key("7").header("source", "checkout").ttl(3600)
    assert out.value_bytes == '{"id":7,"é":"ü"}'.encode()
    assert (out.route_name, out.key_bytes, out.op_kind, out.ttl_seconds) == ("mongo", b"7", Op.UPSERT, 3600)
    assert out.header_list == [("source", b"checkout")]
    assert Output.delete("k").op_kind is Op.DELETE and Output.delete("k").value_bytes is None
    passed = Output.from_event(ev)
    assert (passed.key_bytes, passed.value_bytes, passed.op_kind) == (b"k", b"v", Op.DELETE)
    assert passed.header_list == [("h", b"1")]
    assert Output.bytes(b"x").key_of(ev).op("insert").op_kind is Op.INSERT
    assert Output.bytes(bytearray(b"x")).value(None).value_bytes is None


def test_output_refuses_what_the_host_could_not_take() -> None:
    with pytest.raises(ValueError, match="ttl must be within 0..4294967295 seconds, got -1"):
        Output.bytes(b"x").ttl(-1)
    with pytest.raises(ValueError):
        Output.bytes(b"x").ttl(2**32)
    with pytest.raises(TypeError, match="key must be bytes or str, not int"):
        Output.bytes(b"x").key(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="route must be str"):
        Output.bytes(b"x").route(b"r")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Output.json(float("nan"))
    with pytest.raises(ValueError):
        Output.bytes(b"x").op("merge")


def test_outcomes() -> None:
    assert Outcome.drop().is_drop and Outcome.drop() == Outcome.drop()
    assert Outcome.fail(ValueError("bad")).reason == "bad"
    assert Outcome.emit_all([]).is_emit and Outcome.emit_all([]).outputs == []
    assert Outcome.emit(Output.bytes(b"x")) == Outcome.emit(Output.bytes(b"x"))
    assert Outcome.emit(Output.bytes(b"x")) != Outcome.emit(Output.bytes(b"y"))
    assert repr(Outcome.fail("r")) == "Outcome.fail('r')"


def test_harness_refuses_what_the_host_would() -> None:
    class TooMany:
        def process(self, event: Event) -> Outcome:
            return Outcome.drop()

    h = testing.Harness(TooMany)
    with pytest.raises(TypeError, match="event 0 key must be bytes or None, got str"):
        h.run([testing.Event(key="k")])  # type: ignore[arg-type]
    assert testing.emitted_json(testing.passed(testing.event({"a": 1}))) == {"a": 1}
    assert testing.routes(testing.passed(testing.event(1))) == [None]
    with pytest.raises(AssertionError, match="expected emit"):
        testing.outputs(testing.Outcome_Drop())
    with pytest.raises(AssertionError, match="expected fail"):
        testing.fail_reason(testing.Outcome_Drop())
