"""Config getters: values, defaults, and errors that name the key (the
Rust SDK's words)."""

import pytest

from weir_sdk import Config, ConfigError


def test_typed_getters_name_the_key() -> None:
    c = Config([("n", "x1"), ("b", "maybe"), ("l", "1, 2,,3"), ("f", "2.5")])
    with pytest.raises(ConfigError) as e:
        c.get_int("n", 0)
    assert str(e.value) == 'config `n`: expected an integer, got "x1"'
    assert (e.value.key, e.value.problem) == ("n", 'expected an integer, got "x1"')
    with pytest.raises(ConfigError, match='^config `b`: expected true or false, got "maybe"$'):
        c.get_bool("b", False)
    assert c.get_list("l") == ["1", "2", "3"]
    assert c.get_float("f", 0.0) == 2.5
    assert c.get_bool("absent", True) is True
    assert c.get_bool("absent", None) is None
    assert c.get_int("absent", 7) == 7


def test_bool_spellings() -> None:
    for text in ["true", "YES", " on ", "1"]:
        assert Config({"b": text}).get_bool("b", False) is True
    for text in ["false", "No", "off", "0"]:
        assert Config({"b": text}).get_bool("b", True) is False


def test_required_and_choice() -> None:
    with pytest.raises(ConfigError, match="^config `field`: required but not set$"):
        Config().required("field")
    c = Config({"mode": "keep"})
    assert c.choice("mode", ["drop", "keep"], "drop") == "keep"
    assert Config().choice("mode", ["drop", "keep"], "drop") == "drop"
    with pytest.raises(ConfigError, match='^config `mode`: expected one of drop, keep, got "x"$'):
        Config({"mode": "x"}).choice("mode", ["drop", "keep"], "drop")


def test_later_duplicates_win_and_prefixes_strip() -> None:
    c = Config([("a", "1"), ("add.x", "2"), ("a", "3"), ("add.y.z", "4")])
    assert c.get("a") == "3"
    assert list(c.with_prefix("add.")) == [("x", "2"), ("y.z", "4")]
    c.deny_unknown(["a"], ["add."])
    with pytest.raises(ConfigError, match=r"^config `add.`: unknown key \(known: add.\*\)$"):
        Config({"add.": "1"}).deny_unknown([], ["add."])
    with pytest.raises(ConfigError, match=r"^config `feild`: unknown key \(known: field, value\)$"):
        Config({"feild": "1"}).deny_unknown(["field", "value"])
    assert "a" in c and c.contains("add.x") and not c.contains("b")
