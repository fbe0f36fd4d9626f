"""Read, write and remove JSON fields by dotted path (``"user.address.city"``;
a numeric segment indexes a list when reading or removing: ``"items.0.sku"``).

The same paths and errors as the Rust SDK's ``weir_sdk::json``.

>>> v = {"user": {"email": "a@example.com"}}
>>> get(v, "user.email")
'a@example.com'
>>> set(v, "meta.source", "web")
>>> remove(v, "user.email")
'a@example.com'
>>> v
{'user': {}, 'meta': {'source': 'web'}}
"""

from __future__ import annotations

import builtins
import json
from typing import Any

_MISSING: Any = object()


class PathError(ValueError):
    """A path could not be written: a step on the way is not an object."""

    def __init__(self, path: str, at: str) -> None:
        if at:
            message = f"cannot set `{path}`: `{at}` is not an object"
        else:
            message = f"cannot set `{path}`: the value is not an object"
        super().__init__(message)
        #: The full path.
        self.path = path
        #: The part of the path that is not an object ("" for the value itself).
        self.at = at


def _index(segment: str) -> int | None:
    # Like Rust's `usize` parse: digits only, no sign.
    return int(segment) if segment.isdigit() and segment.isascii() else None


def _step(v: Any, segment: str) -> Any:
    if isinstance(v, dict):
        return v.get(segment, _MISSING)
    if isinstance(v, builtins.list):
        i = _index(segment)
        if i is not None and i < len(v):
            return v[i]
    return _MISSING


def has(v: Any, path: str) -> bool:
    """Whether every step of ``path`` exists (a ``null`` value exists)."""
    cur = v
    for segment in path.split("."):
        cur = _step(cur, segment)
        if cur is _MISSING:
            return False
    return True


def get(v: Any, path: str, default: Any = None) -> Any:
    """The value at ``path``, or ``default`` if a step is missing.

    A field that holds ``null`` reads as ``None`` too: use ``has`` to tell
    them apart.
    """
    cur = v
    for segment in path.split("."):
        cur = _step(cur, segment)
        if cur is _MISSING:
            return default
    return cur


def get_str(v: Any, path: str) -> str | None:
    """The string at ``path``, if there is one and it is a string."""
    found = get(v, path)
    return found if isinstance(found, str) else None


def set(v: Any, path: str, new: Any) -> None:  # noqa: A001 - mirrors json::set
    """Set ``path`` to ``new``, creating missing intermediate objects.

    Raises ``PathError`` if a step on the way exists and is not an object.
    """
    segments = path.split(".")
    cur = v
    walked: list[str] = []
    for segment in segments[:-1]:
        if not isinstance(cur, dict):
            raise PathError(path, ".".join(walked))
        nxt = cur.get(segment)
        if nxt is None and segment not in cur:
            nxt = cur[segment] = {}
        cur = nxt
        walked.append(segment)
    if not isinstance(cur, dict):
        raise PathError(path, ".".join(walked))
    cur[segments[-1]] = new


def remove(v: Any, path: str) -> Any:
    """Remove the field at ``path`` and return it (``None`` if absent)."""
    parents, _, last = path.rpartition(".")
    parent = get(v, parents, _MISSING) if parents else v
    if isinstance(parent, dict):
        return parent.pop(last, None)
    if isinstance(parent, builtins.list):
        i = _index(last)
        if i is not None and i < len(parent):
            return parent.pop(i)
    return None


def rename(v: Any, source: str, target: str) -> bool:
    """Move the field at ``source`` to ``target`` (creating objects on the
    way). Returns whether there was a field to move."""
    if not has(v, source):
        return False
    set(v, target, remove(v, source))
    return True


def dumps(v: Any) -> str:
    """Compact JSON text, keys in their order, non-ASCII kept as UTF-8
    (the bytes ``Output.json`` writes)."""
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def to_text(v: Any) -> str:
    """A value as text for comparisons with config strings: a string is its
    content, anything else its JSON text (``42``, ``true``, ``null``)."""
    if isinstance(v, str):
        return v
    return dumps(v)
