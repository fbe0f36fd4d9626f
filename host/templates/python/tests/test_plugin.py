"""Native tests of the plugin: the SDK's batch loop under pytest, no Wasm."""

import pytest

import plugin
from weir_sdk import InitError, testing
from weir_sdk.testing import Harness, Op, Outcome_Drop, Outcome_Fail


def test_drops_the_configured_type_and_stamps_the_rest() -> None:
    h = Harness(plugin, {"drop_type": "ping"})
    out = h.run_json([{"type": "ping"}, {"type": "click", "user": "ann"}])
    assert out[0] == Outcome_Drop()
    assert testing.emitted_json(out[1]) == {
        "type": "click",
        "user": "ann",
        "meta": {"plugin": "{{name}}"},
    }


def test_passes_deletes_and_fails_values_that_are_not_objects() -> None:
    h = Harness(plugin)
    delete = testing.raw_event(None, key=b"k1", op=Op.DELETE)
    out = h.run_one(delete)
    assert testing.outputs(out)[0].op == Op.DELETE
    assert testing.outputs(out)[0].key == b"k1"

    out = h.run_one(testing.event([1, 2]))
    assert isinstance(out, Outcome_Fail)


def test_refuses_an_unknown_config_key() -> None:
    with pytest.raises(InitError, match="unknown key"):
        Harness(plugin, {"drop_tpye": "x"})
