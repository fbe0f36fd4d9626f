"""The plugin's configuration: the ``key = "value"`` strings of its entry in
the host's config (or ``--config key=value`` of ``weir plugin test``), with
typed getters whose errors name the key and what was wrong.

The error texts are those of the Rust SDK (``weir_sdk::Config``), so a
plugin refuses a bad config with the same words in either language.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Callable, TypeVar, overload

T = TypeVar("T")
D = TypeVar("D")

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _quoted(text: str) -> str:
    # Rust's `{:?}` of a string: double quotes, JSON-like escapes.
    return json.dumps(text, ensure_ascii=False)


class ConfigError(ValueError):
    """A configuration value that could not be used.

    Raised from ``init``, it refuses the config: the host does not load the
    plugin and reports ``str(error)`` (``config `key`: problem``).
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config `{key}`: {problem}")
        self.key = key
        self.problem = problem


def split_list(text: str) -> list[str]:
    """Split a comma-separated list, trimming items and skipping empty ones."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_bool(text: str) -> bool:
    """``true/false/yes/no/on/off/1/0`` in any case; ``ValueError`` otherwise."""
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {_quoted(text)}")


def _parse_int(text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise ValueError(f"expected an integer, got {_quoted(text)}") from None


def _parse_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {_quoted(text)}") from None


class Config:
    """The configuration handed to ``init``.

    >>> c = Config([("field", "user.email"), ("limit", "10"), ("tags", "a, b,c")])
    >>> c.required("field")
    'user.email'
    >>> c.get_int("limit", 5), c.get_int("missing", 5)
    (10, 5)
    >>> c.get_list("tags")
    ['a', 'b', 'c']
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] | dict[str, str] = ()) -> None:
        items = pairs.items() if isinstance(pairs, dict) else pairs
        # A later duplicate key wins, in the position of the first.
        self._pairs: dict[str, str] = {}
        for key, value in items:
            self._pairs[str(key)] = str(value)

    def __repr__(self) -> str:
        return f"Config({list(self._pairs.items())!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and other._pairs == self._pairs

    def items(self) -> list[tuple[str, str]]:
        """Every ``(key, value)``, in the order given."""
        return list(self._pairs.items())

    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: str) -> str: ...
    def get(self, key: str, default: str | None = None) -> str | None:
        """The raw value of ``key``, or ``default`` if it is not set."""
        return self._pairs.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._pairs

    def contains(self, key: str) -> bool:
        """Whether ``key`` is set."""
        return key in self._pairs

    def required(self, key: str) -> str:
        """The raw value of ``key``; ``ConfigError`` if it is not set."""
        value = self._pairs.get(key)
        if value is None:
            raise ConfigError(key, "required but not set")
        return value

    def parse(self, key: str, parse: Callable[[str], T], default: D) -> T | D:
        """``key`` parsed by ``parse`` (which raises ``ValueError`` with what
        it expected), ``default`` if it is not set."""
        value = self._pairs.get(key)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as e:
            raise ConfigError(key, str(e)) from None

    def get_bool(self, key: str, default: D) -> bool | D:
        """``key`` as a boolean (``true/false/yes/no/on/off/1/0``), ``default``
        (``None`` to tell "not set" apart) if it is not set."""
        return self.parse(key, parse_bool, default)

    def get_int(self, key: str, default: D) -> int | D:
        """``key`` as an integer, ``default`` if it is not set."""
        return self.parse(key, _parse_int, default)

    def get_float(self, key: str, default: D) -> float | D:
        """``key`` as a number, ``default`` if it is not set."""
        return self.parse(key, _parse_float, default)

    def get_list(self, key: str) -> list[str]:
        """``key`` as a comma-separated list of strings; empty if not set."""
        return self.parse(key, split_list, [])

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        """``key`` as one of ``choices``, ``default`` if it is not set.

        >>> Config({"mode": "maybe"}).choice("mode", ["drop", "keep"], "drop")
        Traceback (most recent call last):
        ...
        weir_sdk.config.ConfigError: config `mode`: expected one of drop, keep, got "maybe"
        """
        value = self._pairs.get(key)
        if value is None:
            return default
        if value in choices:
            return value
        raise ConfigError(key, f"expected one of {', '.join(choices)}, got {_quoted(value)}")

    def with_prefix(self, prefix: str) -> Iterator[tuple[str, str]]:
        """The ``(rest, value)`` pairs of the keys starting with ``prefix``
        (``add.`` in ``add.source = "web"``), the prefix stripped."""
        for key, value in self._pairs.items():
            if key.startswith(prefix) and len(key) > len(prefix):
                yield key[len(prefix) :], value

    def deny_unknown(self, known: Sequence[str], prefixes: Sequence[str] = ()) -> None:
        """Refuse any key that is not in ``known`` and does not start with one
        of ``prefixes``: a misspelt key is an error, not a silent default.

        >>> Config({"feild": "x"}).deny_unknown(["field"], ["add."])
        Traceback (most recent call last):
        ...
        weir_sdk.config.ConfigError: config `feild`: unknown key (known: field, add.*)
        """
        for key in self._pairs:
            if key in known or any(key.startswith(p) and len(key) > len(p) for p in prefixes):
                continue
            everything = [*known, *(f"{p}*" for p in prefixes)]
            raise ConfigError(key, f"unknown key (known: {', '.join(everything)})")
