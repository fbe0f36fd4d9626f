"""The Python filter on the Rust filter's test cases (plugins/filter/src/lib.rs):
same configs, same events, same outcomes and error messages."""

from __future__ import annotations

from typing import Any

import pytest

import plugin
from weir_sdk import InitError, testing
from weir_sdk.testing import Harness, Outcome_Drop, Outcome_Emit, Outcome_Fail


def run(config: dict[str, str], values: list[Any]) -> list[bool]:
    h = Harness(plugin.Filter, config)
    passed = []
    for o in h.run_json(values):
        if isinstance(o, Outcome_Fail):
            raise AssertionError(f"unexpected fail: {o.value}")
        passed.append(isinstance(o, Outcome_Emit))
    return passed


EVENTS: list[Any] = [
    {"event_type": "purchase", "user": {"country": "FR"}},
    {"event_type": "view", "user": {"country": "DE"}},
    {"event_type": "heartbeat"},
    {"event_type": 42, "user": {"country": None}},
]


def test_equals_drops_matching_events() -> None:
    assert run({"field": "event_type", "equals": "heartbeat"}, EVENTS) == [True, True, False, True]
    assert run({"field": "event_type", "equals": "42"}, EVENTS) == [True, True, True, False]


def test_not_equals_treats_missing_as_different() -> None:
    assert run({"field": "user.country", "not_equals": "FR"}, EVENTS) == [True, False, False, False]


def test_exists_and_keep() -> None:
    cfg = {"field": "user.country", "exists": "true", "action": "keep"}
    assert run(cfg, EVENTS) == [True, True, False, True]
    assert run({"field": "user.country", "exists": "false"}, EVENTS) == [True, True, False, True]


def test_in_list_with_keep() -> None:
    cfg = {"field": "event_type", "in": "purchase, view", "action": "keep"}
    assert run(cfg, EVENTS) == [True, True, False, False]


def test_passed_events_are_unchanged() -> None:
    h = Harness(plugin.Filter, {"field": "a", "equals": "x"})
    ev = testing.event(
        {"a": "y", "b": [1, 2]}, key=b"k1", op=testing.Op.INSERT, headers=[testing.Header("t", b"1")]
    )
    assert h.run_one(ev) == testing.passed(ev)


def test_invalid_values_follow_on_invalid() -> None:
    h = Harness(plugin.Filter, {"field": "a", "equals": "x"})
    assert h.run_one(testing.raw_event(b"not json")) == Outcome_Fail(
        "filter: event value is not valid JSON: Expecting value: line 1 column 1 (char 0)"
    )
    assert h.run_one(testing.raw_event(None)) == Outcome_Fail("filter: event has no value")
    h = Harness(plugin.Filter, {"field": "a", "equals": "x", "on_invalid": "drop"})
    assert h.run_one(testing.raw_event(b"{")) == Outcome_Drop()
    h = Harness(plugin.Filter, {"field": "a", "equals": "x", "on_invalid": "pass"})
    tombstone = testing.raw_event(None, key=b"k", op=testing.Op.DELETE)
    assert h.run_one(tombstone) == testing.passed(tombstone)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"equals": "x"}, "config `field`: required but not set"),
        ({"field": "a"}, "set one of `equals`, `not_equals`, `exists`, `in`"),
        ({"field": "a", "equals": "x", "in": "y"}, "set only one of `equals`, `not_equals`, `exists`, `in`"),
        ({"field": "a", "equals": "x", "action": "delete"}, 'config `action`: expected one of drop, keep, got "delete"'),
        ({"field": "a", "exists": "maybe"}, 'config `exists`: expected true or false, got "maybe"'),
        ({"field": "a", "equal": "x"}, "config `equal`: unknown key (known: field, equals, not_equals, exists, in, action, on_invalid)"),
    ],
)  # fmt: skip
def test_bad_configs_are_refused_with_reasons(config: dict[str, str], message: str) -> None:
    with pytest.raises(InitError) as e:
        Harness(plugin.Filter, config)
    assert str(e.value) == message
