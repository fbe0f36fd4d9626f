"""Test fixture ``enrich-py``: the Rust fixture ``plugins/fixtures/enrich``
in Python. Looks up the event's ``field`` (default ``user``) in lookup
store ``store`` (default ``users``) and emits the event with the answer
under ``found`` (the stored value as JSON, or ``null`` when the store has
no such key). With ``prefetch = "true"`` (the default) every key of a
batch is fetched in one round trip per batch before the first event; with
``"false"`` each event asks on its own. A refused lookup (store not
granted, bad key, a value that is not JSON) fails the event with the
refusal's message, in the Rust SDK's words.

It imports ``weir_sdk.lookup``, so ``python -m weir_sdk.build`` builds it
against the world ``typed-lookup``.
"""

from __future__ import annotations

from typing import Any

import weir_sdk
from weir_sdk import Config, Event, JsonError, Outcome, Output, jsonpath, lookup


class Enrich:
    store: str
    field: str
    prefetch_keys: bool

    def init(self, config: Config) -> None:
        config.deny_unknown(["store", "field", "prefetch"])
        self.store = config.get("store", "users")
        self.field = config.get("field", "user")
        self.prefetch_keys = config.get_bool("prefetch", True)

    def key(self, value: Any) -> str | None:
        """The lookup key of a parsed event value: the `field` member of
        an object, a string as it is and anything else as its JSON text."""
        if not isinstance(value, dict) or self.field not in value:
            return None
        return jsonpath.to_text(value[self.field])

    def prefetch(self, event: Event, keys: lookup.Prefetch) -> None:
        if not self.prefetch_keys:
            return
        try:
            key = self.key(event.json())
        except JsonError:
            return
        if key is not None:
            keys.add(self.store, key)

    def process(self, event: Event) -> Outcome:
        try:
            value = event.json()
        except JsonError:
            return Outcome.fail("value is not JSON")
        key = self.key(value)
        if key is None:
            return Outcome.fail(f"no `{self.field}` field")
        try:
            found = lookup.get_json(self.store, key)
        except lookup.LookupRefused as e:
            return Outcome.fail(str(e))
        value["found"] = found
        return Outcome.emit(Output.from_event(event).value(jsonpath.dumps(value)))


TypedPlugin = weir_sdk.export(Enrich)
