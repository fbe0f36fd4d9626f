"""Dotted paths: the reads, writes and errors of the Rust SDK's json module."""

import pytest

from weir_sdk import jsonpath
from weir_sdk.jsonpath import PathError


def test_get_walks_objects_and_lists() -> None:
    v = {"a": {"b": [1, {"c": True}]}}
    assert jsonpath.get(v, "a.b.1.c") is True
    assert jsonpath.get(v, "a.b.7") is None
    assert jsonpath.get(v, "a.b.-1") is None
    assert jsonpath.get(v, "a.x", "default") == "default"
    assert jsonpath.get_str({"s": "t", "n": 1}, "s") == "t"
    assert jsonpath.get_str({"s": "t", "n": 1}, "n") is None
    assert jsonpath.has({"a": None}, "a") and not jsonpath.has({"a": None}, "a.b")


def test_set_creates_objects_and_refuses_scalars() -> None:
    v = {"a": 1}
    jsonpath.set(v, "x.y.z", 2)
    assert v == {"a": 1, "x": {"y": {"z": 2}}}
    with pytest.raises(PathError, match="^cannot set `a.b`: `a` is not an object$"):
        jsonpath.set(v, "a.b", 3)
    with pytest.raises(PathError, match="^cannot set `x.y.z.w`: `x.y.z` is not an object$"):
        jsonpath.set(v, "x.y.z.w", 3)
    with pytest.raises(PathError, match="^cannot set `a`: the value is not an object$"):
        jsonpath.set(5, "a", 3)
    with pytest.raises(PathError, match="^cannot set `n.m`: `n` is not an object$"):
        jsonpath.set({"n": None}, "n.m", 1)


def test_remove_and_rename() -> None:
    v = {"a": {"b": 1, "c": [1, 2]}}
    assert jsonpath.remove(v, "a.c.0") == 1
    assert jsonpath.remove(v, "a.zz") is None
    assert jsonpath.rename(v, "a.b", "top") is True
    assert jsonpath.rename(v, "nothing", "x") is False
    assert v == {"a": {"c": [2]}, "top": 1}


def test_text_form_and_key_order() -> None:
    assert jsonpath.to_text("x") == "x"
    assert jsonpath.to_text(4.5) == "4.5"
    assert jsonpath.to_text(None) == "null"
    assert jsonpath.to_text(True) == "true"
    assert jsonpath.to_text({"b": 1, "a": "é"}) == '{"b":1,"a":"é"}'
