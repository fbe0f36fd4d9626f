"""Weir example plugin ``filter``, in Python: drop (or keep) events by one
JSON field. The same config keys and behaviour as the Rust ``plugins/filter``.

| key | required | meaning |
|---|---|---|
| ``field`` | yes | dotted path of the field to test in the event value (``user.country``) |
| ``equals`` | one of these four | matches when the field's text equals this |
| ``not_equals`` | | matches when the field is absent or its text differs |
| ``exists`` | | ``true``: matches when the field is present (even ``null``); ``false``: when absent |
| ``in`` | | comma-separated list: matches when the field's text is one of them |
| ``action`` | no | ``drop`` (default): drop matching events, pass the others; ``keep``: pass only matching events |
| ``on_invalid`` | no | value not JSON or absent: ``fail`` (default, to the dead-letter sink), ``drop``, or ``pass`` |

A field's text is a string's content, or the JSON text of any other value
(``42``, ``true``, ``null``). Events that pass go out unchanged: value, key,
op and headers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import weir_sdk
from weir_sdk import Config, Event, JsonError, Outcome, jsonpath

KEYS = ["field", "equals", "not_equals", "exists", "in", "action", "on_invalid"]
CONDITIONS = "`equals`, `not_equals`, `exists`, `in`"

# A condition takes (whether the field is present, its text) and says
# whether the event matches.
Condition = Callable[[bool, str | None], bool]


class Filter:
    """The filter plugin: one instance per component instance."""

    field: str
    condition: Condition
    keep_matching: bool
    on_invalid: str

    def init(self, config: Config) -> None:
        config.deny_unknown(KEYS)
        self.field = config.required("field")
        conditions: list[Condition] = []
        equals = config.get("equals")
        if equals is not None:
            conditions.append(lambda present, text: text == equals)
        not_equals = config.get("not_equals")
        if not_equals is not None:
            conditions.append(lambda present, text: text != not_equals)
        exists = config.get_bool("exists", None)
        if exists is not None:
            conditions.append(lambda present, text: present == exists)
        if config.contains("in"):
            allowed = frozenset(config.get_list("in"))
            conditions.append(lambda present, text: text in allowed)
        if not conditions:
            raise ValueError(f"set one of {CONDITIONS}")
        if len(conditions) > 1:
            raise ValueError(f"set only one of {CONDITIONS}")
        self.condition = conditions[0]
        self.keep_matching = config.choice("action", ["drop", "keep"], "drop") == "keep"
        self.on_invalid = config.choice("on_invalid", ["fail", "drop", "pass"], "fail")

    def process(self, event: Event) -> Outcome:
        try:
            value: Any = event.json()
        except JsonError as e:
            if self.on_invalid == "drop":
                return Outcome.drop()
            if self.on_invalid == "pass":
                return Outcome.passthrough(event)
            return Outcome.fail(f"filter: {e}")
        present = jsonpath.has(value, self.field)
        text = jsonpath.to_text(jsonpath.get(value, self.field)) if present else None
        if self.condition(present, text) == self.keep_matching:
            return Outcome.passthrough(event)
        return Outcome.drop()


TypedPlugin = weir_sdk.export(Filter)
