"""The enrich fixture natively: the Rust fixture's tests
(plugins/fixtures/enrich/src/lib.rs), and the rest of its behaviour."""

import json

import plugin
import pytest
from weir_sdk import InitError, testing


def test_a_batch_costs_one_round_trip_and_absent_keys_answer_null() -> None:
    h = (
        testing.Harness(plugin.Enrich)
        .with_lookup("users", "u1", '{"plan":"gold"}')
        .with_lookup("users", "u2", '{"plan":"free"}')
    )
    out = h.run_json([{"user": "u1"}, {"user": "u2"}, {"user": "u9"}, {"user": "u1"}])
    assert h.round_trips == 1
    assert testing.emitted_json(out[0]) == {"user": "u1", "found": {"plan": "gold"}}
    assert testing.emitted_json(out[2])["found"] is None
    assert testing.emitted_json(out[3])["found"]["plan"] == "gold"


def test_without_prefetch_each_event_asks_and_a_store_not_granted_fails_the_event() -> None:
    h = testing.Harness(plugin.Enrich, {"prefetch": "false", "store": "ghost"})
    out = h.run_json([{"user": "u1"}, {"user": "u2"}])
    assert h.round_trips == 2
    assert out[0] == testing.Outcome_Fail("lookup store `ghost` is not granted to this plugin")
    assert out[1] == out[0]


def test_the_output_keeps_the_event_and_its_member_order() -> None:
    h = testing.Harness(plugin.Enrich, {"field": "id", "store": "plans"}).with_lookup(
        "plans", "7", {"tier": 2, "name": "gold"}
    )
    ev = testing.event({"z": 1, "id": 7, "found": "old"}, key=b"k", headers=[testing.Header("h", b"v")])
    out = testing.outputs(h.run_one(ev))[0]
    assert (out.key, out.op, out.headers, out.route) == (b"k", ev.op, ev.headers, None)
    # A number is looked up by its JSON text; `found` keeps its place.
    assert out.value == b'{"z":1,"id":7,"found":{"tier":2,"name":"gold"}}'


def test_events_without_the_field_or_json_and_values_that_are_not_json_fail() -> None:
    h = testing.Harness(plugin.Enrich).with_lookup("users", "raw", b"not json")
    out = h.run([
        testing.raw_event(b"{"),
        testing.raw_event(None),
        testing.event({"name": "x"}),
        testing.event([1]),
        testing.event({"user": "raw"}),
    ])  # fmt: skip
    assert [testing.fail_reason(o) for o in out[:4]] == [
        "value is not JSON", "value is not JSON", "no `user` field", "no `user` field",
    ]  # fmt: skip
    assert testing.fail_reason(out[4]).startswith("lookup value is not JSON: ")
    assert h.round_trips == 1  # one get_many for the one key named


def test_the_answers_are_the_batch_s_own() -> None:
    h = testing.Harness(plugin.Enrich).with_lookup("users", "u1", '"a"')
    assert testing.emitted_json(h.run_json([{"user": "u1"}])[0])["found"] == "a"
    h.with_lookup("users", "u1", '"b"')
    assert testing.emitted_json(h.run_json([{"user": "u1"}])[0])["found"] == "b"
    assert h.round_trips == 2


def test_config_is_checked() -> None:
    with pytest.raises(InitError, match=r"^config `stor`: unknown key"):
        testing.Harness(plugin.Enrich, {"stor": "users"})
    with pytest.raises(InitError, match=r'^config `prefetch`: expected true or false, got "maybe"$'):
        testing.Harness(plugin.Enrich, {"prefetch": "maybe"})


def test_a_batch_of_1000_events_and_a_null_key() -> None:
    h = testing.Harness(plugin.Enrich).with_lookup("users", "null", "1")
    values = [{"user": f"u{i % 10}"} for i in range(999)] + [{"user": None}]
    out = h.run_json(values)
    assert h.round_trips == 1
    assert json.loads(testing.outputs(out[999])[0].value)["found"] == 1
