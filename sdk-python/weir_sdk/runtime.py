"""The batch loop behind ``weir_sdk.export``: wrap each event of the batch,
call the plugin's ``process`` once per event, and lower each ``Outcome`` to
the record the host reads. The native test harness (``weir_sdk.testing``)
runs exactly this code, on the native copies of the same records.

Exceptions: one raised by ``process`` for an event becomes ``fail`` for that
event (the reason names the exception and where it was raised) and the batch
goes on. The Rust SDK's panic traps instead, and the host then finds the
event by splitting the batch and fails it with the trap: for a Rust plugin
the instance cannot be trusted after a panic, so it must be rebuilt. A
Python exception leaves the interpreter intact, so failing the one event in
place gives the same result (that event dead-lettered with its cause, every
other event processed) without rebuilding a large instance and re-running
the batch. What cannot be caught safely still traps, and the host isolates
it as it does a Rust panic: ``MemoryError``, ``SystemExit``,
``KeyboardInterrupt`` and other ``BaseException``s that are not
``Exception``s, the deadline (an endless loop) and the memory cap.

Prefetch: when the plugin has a ``prefetch(event, keys)`` method (or a
module-level function), the loop calls it for every event of the batch
before the first ``process``, asks each store once for all the keys named
(``weir_sdk.lookup``), and ``lookup.get`` answers those keys from that
batch's answers until the batch ends. An exception raised by ``prefetch``
fails its event like one raised by ``process`` (``prefetch raised ...``),
without calling ``process`` for it; the keys it had added are taken back.
A store that refuses the batch's ``get_many`` leaves its keys out, so each
event's own ``get`` raises the refusal (as in the Rust SDK).
"""

from __future__ import annotations

import inspect
import os
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from . import lookup, wire
from .config import Config, ConfigError
from .event import Event
from .outcome import Outcome, Output

NOT_INITIALISED = "plugin was not initialised (init was not called)"


@runtime_checkable
class Plugin(Protocol):
    """What ``export`` and ``Harness`` take: an object (a module, or an
    instance of a class) with ``process`` and, optionally, ``init`` and
    ``prefetch(event, keys)`` (see ``weir_sdk.lookup``)."""

    def process(self, event: Event) -> Outcome: ...


class InitError(Exception):
    """``init`` refused the config; ``str(error)`` is the message the host
    reports with the plugin's name."""


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" ({os.path.basename(last.filename)}:{last.lineno} in {last.name})"


def describe(e: BaseException, during: str) -> str:
    """``process raised ValueError: bad amount (plugin.py:12 in process)``."""
    message = str(e)
    text = f"{type(e).__name__}: {message}" if message else type(e).__name__
    return f"{during} raised {text}{_where(e)}"


def _instance(plugin: Any) -> Any:
    # A class is instantiated once per component instance; a module or an
    # object is used as it is.
    if inspect.isclass(plugin):
        return plugin()
    return plugin


class Runtime:
    """One plugin instance: the plugin object and whether ``init`` succeeded.
    ``export`` keeps one per component instance."""

    def __init__(self, plugin: Plugin | ModuleType | type, types: Any | None = None) -> None:
        self._source = plugin
        self._plugin: Any = None
        self._types = types if types is not None else wire.types_module()

    @property
    def plugin(self) -> Any:
        """The initialised plugin object (``None`` before ``init``)."""
        return self._plugin

    def init(self, config: Sequence[tuple[str, str]] | Config) -> None:
        """Initialise the plugin with its config; a second call replaces it.

        Raises ``InitError`` with the message to report if ``init`` refuses
        the config (raises any exception) or the plugin has no ``process``.
        """
        self._plugin = None
        cfg = config if isinstance(config, Config) else Config(config)
        try:
            plugin = _instance(self._source)
            if not callable(getattr(plugin, "process", None)):
                raise InitError(f"the plugin {self._source!r} has no `process(event)` function")
            init = getattr(plugin, "init", None)
            if init is None:
                # Without `init` the plugin takes no config: a key set for it
                # is a mistake to report, not to ignore.
                cfg.deny_unknown([])
            else:
                init(cfg)
        except InitError:
            raise
        except ValueError as e:  # ConfigError and the plugin's own ValueErrors
            raise InitError(str(e)) from None
        except Exception as e:
            raise InitError(describe(e, "init")) from None
        self._plugin = plugin

    def process(self, batch: Sequence[Any]) -> list[Any]:
        """Process one batch of ``types.event`` records; one ``types.outcome``
        per event, in order."""
        types = self._types
        plugin = self._plugin
        if plugin is None:
            return [types.Outcome_Fail(NOT_INITIALISED) for _ in batch]
        process = plugin.process
        prefetch = getattr(plugin, "prefetch", None)
        if callable(prefetch):
            return _process_prefetched(process, prefetch, [Event(raw) for raw in batch], types)
        out: list[Any] = []
        for raw in batch:
            try:
                outcome = process(Event(raw))
            except MemoryError:
                raise  # the interpreter may not recover: trap, and be rebuilt
            except Exception as e:
                out.append(types.Outcome_Fail(describe(e, "process")))
                continue
            out.append(lower(outcome, types))
        return out


def _process_one(process: Any, event: Event, types: Any) -> Any:
    try:
        outcome = process(event)
    except MemoryError:
        raise  # the interpreter may not recover: trap, and be rebuilt
    except Exception as e:
        return types.Outcome_Fail(describe(e, "process"))
    return lower(outcome, types)


def _process_prefetched(process: Any, prefetch: Any, events: list[Event], types: Any) -> list[Any]:
    # `prefetch(event, keys)` for every event first, one `get_many` per
    # store for all the keys, then `process` for every event with `get`
    # answering those keys from the batch's answers. An event whose
    # `prefetch` raises fails as a `process` exception does (its keys are
    # taken back, its `process` is not called); a refusing store leaves its
    # keys out, so each `get` sees the refusal (`lookup._begin_batch`).
    keys = lookup.Prefetch()
    failed: dict[int, str] = {}
    for i, event in enumerate(events):
        keys._begin_event()
        try:
            prefetch(event, keys)
        except MemoryError:
            raise
        except Exception as e:
            keys._end_event(keep=False)
            failed[i] = describe(e, "prefetch")
            continue
        keys._end_event(keep=True)
    lookup._begin_batch(keys)
    try:
        out: list[Any] = []
        for i, event in enumerate(events):
            reason = failed.get(i)
            if reason is not None:
                out.append(types.Outcome_Fail(reason))
            else:
                out.append(_process_one(process, event, types))
        return out
    finally:
        lookup._end_batch()


def lower(outcome: Any, types: Any) -> Any:
    """The ``types.outcome`` record of ``outcome``, or a ``fail`` saying why
    it is not one (so a plugin's mistake costs one event, not the batch)."""
    if not isinstance(outcome, Outcome):
        return types.Outcome_Fail(
            f"process returned {type(outcome).__name__}, not a weir_sdk.Outcome"
        )
    if outcome.kind == Outcome.DROP:
        return types.Outcome_Drop()
    if outcome.kind == Outcome.FAIL:
        return types.Outcome_Fail(outcome.reason)
    outputs = []
    op = types.Op
    header = types.Header
    for i, o in enumerate(outcome.outputs):
        if not isinstance(o, Output):
            return types.Outcome_Fail(
                f"output {i} of the emit is a {type(o).__name__}, not a weir_sdk.Output"
            )
        outputs.append(
            types.Output(
                route=o.route_name,
                key=o.key_bytes,
                value=o.value_bytes,
                op=op(_OP_INDEX[o.op_kind.value]),
                ttl_seconds=o.ttl_seconds,
                headers=[header(key=k, value=v) for k, v in o.header_list],
            )
        )
    return types.Outcome_Emit(outputs)


_OP_INDEX = {"insert": 0, "upsert": 1, "delete": 2}


def export(plugin: Plugin | ModuleType | type) -> type:
    """The class componentize-py exports as ``typed-plugin``.

    Put ``TypedPlugin = weir_sdk.export(...)`` at the end of the plugin's
    module, with the module itself (``sys.modules[__name__]``), a class
    (instantiated once per instance) or an object. Natively the class works
    too (its ``init`` raises ``InitError``), but tests use
    ``weir_sdk.testing.Harness``.
    """
    runtime = Runtime(plugin)
    if wire.IN_COMPONENT:
        from componentize_py_types import Err  # type: ignore[import-not-found]  # generated by componentize-py

        class TypedPlugin:
            def init(self, config: list[tuple[str, str]]) -> None:
                try:
                    runtime.init(config)
                except InitError as e:
                    raise Err(str(e)) from None

            def process(self, batch: list[Any]) -> list[Any]:
                return runtime.process(batch)

        return TypedPlugin

    class NativeTypedPlugin:
        def init(self, config: list[tuple[str, str]]) -> None:
            runtime.init(config)

        def process(self, batch: list[Any]) -> list[Any]:
            return runtime.process(batch)

    return NativeTypedPlugin


# Re-exported for `from weir_sdk.runtime import ConfigError` users.
__all__ = ["ConfigError", "InitError", "Plugin", "Runtime", "export", "lower", "describe"]
