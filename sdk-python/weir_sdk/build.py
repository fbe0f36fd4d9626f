"""Build a Python plugin into a component with componentize-py.

    python -m weir_sdk.build [DIR] [--module plugin] [-o OUT.wasm]
                             [--wit WIT_DIR] [--world auto] [--cache DIR]

``DIR`` (default ``.``) holds the plugin's module ``MODULE.py`` (default
``plugin``), which ends with ``TypedPlugin = weir_sdk.export(...)``. Only
the Python sources are bundled: the ``.py`` files and packages of ``DIR``
(not ``tests/``, ``build/`` or hidden directories) and this SDK, staged in a
temporary directory, so a previous build or a test cache never ends up in
the component. The path of the built ``.wasm`` is printed on stdout.

The world (``--world``, default ``auto``): ``auto`` builds ``typed``, or
``typed-lookup`` when a source of the plugin uses lookups (imports
``weir_sdk.lookup`` in any spelling: ``from weir_sdk import lookup``,
``from weir_sdk.lookup import get``, ``import weir_sdk.lookup``, or uses
``weir_sdk.lookup`` as an attribute; or imports the generated
``wit_world.imports.lookup``). A plugin that never looks anything up does
not import the interface, so it needs no grant; one that does gets it. An
explicit world is built as given, except that a plugin using lookups built
against ``typed`` or ``typed-state`` (which do not import ``lookup``) is
refused with a ``BuildError``: its every lookup would fail.

``--cache DIR`` keeps built components under a hash of everything that
goes into them (the sources, the WIT, the world, componentize-py's
version); a build whose hash is there already is not run again, and only
the last few builds of each plugin are kept.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

SDK_PACKAGE = Path(__file__).resolve().parent
SKIPPED_DIRS = {"tests", "test", "build", "__pycache__", "node_modules"}


class BuildError(Exception):
    """The plugin could not be built; the message says why."""


def default_wit() -> Path:
    """The WIT of weir:transform@0.2.0: vendored beside the SDK's package
    (``weir_sdk/wit``) when the SDK is installed outside the repository,
    else the repository's ``wit/0.2.0``."""
    vendored = SDK_PACKAGE / "wit"
    if vendored.is_dir():
        return vendored
    return SDK_PACKAGE.parent.parent / "wit" / "0.2.0"


def componentize_py() -> str:
    """componentize-py beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "componentize-py"
    if beside.is_file():
        return str(beside)
    found = shutil.which("componentize-py")
    if found is None:
        raise BuildError(
            "componentize-py is not installed: run scripts/setup (it installs it into "
            ".services/venv) or `pip install componentize-py==0.25.1`"
        )
    return found


def _sources(root: Path) -> Iterator[Path]:
    """The Python sources of a plugin directory, sorted, relative to it."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith(".")
        )
        for name in sorted(filenames):
            if name.endswith(".py") and not name.startswith("test_") and name != "conftest.py":
                yield (Path(dirpath) / name).relative_to(root)


#: ``--world auto``: pick ``typed`` or ``typed-lookup`` from the sources.
AUTO = "auto"
#: The world of a plugin that does not use lookups, and of one that does.
PLAIN_WORLD = "typed"
LOOKUP_WORLD = "typed-lookup"
#: Worlds of weir:transform@0.2.0 (typed) without the ``lookup`` import.
WORLDS_WITHOUT_LOOKUP = {"typed", "typed-state"}


def _lookup_uses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Where a module uses lookups: (line, what) for each import of
    ``weir_sdk.lookup`` or ``wit_world.imports.lookup`` and each
    ``weir_sdk.lookup`` attribute."""
    sdk_names = set()  # names bound to the weir_sdk package
    star = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                if name == "weir_sdk":
                    sdk_names.add(alias.asname or name)
                elif name.startswith("weir_sdk."):
                    # `import weir_sdk.x` binds `weir_sdk` too.
                    if alias.asname is None:
                        sdk_names.add("weir_sdk")
                if name in ("weir_sdk.lookup", "wit_world.imports.lookup"):
                    yield node.lineno, f"imports {name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            names = {alias.name for alias in node.names}
            if module in ("weir_sdk.lookup", "wit_world.imports.lookup"):
                yield node.lineno, f"imports from {module}"
            elif module in ("weir_sdk", "wit_world.imports") and "lookup" in names:
                yield node.lineno, f"imports {module}.lookup"
            elif module == "weir_sdk" and "*" in names:
                star = True
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "lookup"
            and isinstance(node.value, ast.Name)
            and node.value.id in sdk_names
        ):
            yield node.lineno, f"uses {node.value.id}.lookup"
        elif star and isinstance(node, ast.Name) and node.id == "lookup":
            yield node.lineno, "uses lookup (from weir_sdk import *)"


def lookup_uses(plugin_dir: Path) -> list[str]:
    """Where the plugin's sources (those the build bundles) use lookups,
    as ``file:line what``; empty if they do not. A source that does not
    parse is left to componentize-py to report."""
    found = []
    for rel in _sources(plugin_dir):
        # The SDK itself, vendored into the project (`vendor/weir_sdk`, as
        # `weir plugin new` lays it out) or copied beside the plugin, uses
        # the generated lookup bindings in its own `lookup` module: that says
        # nothing about the plugin, which uses lookups only if it imports it.
        if "weir_sdk" in rel.parts[:-1]:
            continue
        try:
            tree = ast.parse((plugin_dir / rel).read_bytes(), filename=str(rel))
        except (SyntaxError, ValueError):
            continue
        for line, what in sorted(set(_lookup_uses(tree))):
            found.append(f"{rel}:{line} {what}")
    return found


def resolve_world(plugin_dir: Path, world: str | None = AUTO) -> str:
    """The world to build ``plugin_dir`` against: ``world`` as given, or
    for ``auto`` (or ``None``) ``typed-lookup`` if the sources use lookups
    and ``typed`` if not. Raises ``BuildError`` for a plugin that uses
    lookups and a given world without the ``lookup`` import."""
    uses = lookup_uses(plugin_dir)
    if world is None or world == AUTO:
        return LOOKUP_WORLD if uses else PLAIN_WORLD
    if uses and world in WORLDS_WITHOUT_LOOKUP:
        raise BuildError(
            f"{plugin_dir} uses lookups ({uses[0]}) but the world `{world}` does not import "
            f"`weir:transform/lookup`: build it with --world {LOOKUP_WORLD} "
            f"(or leave --world out)"
        )
    return world


def _sdk_sources() -> Iterator[Path]:
    for path in sorted(SDK_PACKAGE.glob("*.py")):
        yield path.relative_to(SDK_PACKAGE.parent)


def _tool_version(tool: str) -> str:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def inputs_hash(plugin_dir: Path, module: str, wit: Path, world: str, tool: str) -> str:
    """A hash of everything that goes into the component."""
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    add("tool", _tool_version(tool).encode())
    add("module", module.encode())
    add("world", world.encode())
    for path in sorted(wit.glob("*.wit")):
        add(f"wit/{path.name}", path.read_bytes())
    for rel in _sdk_sources():
        add(f"sdk/{rel}", (SDK_PACKAGE.parent / rel).read_bytes())
    for rel in _sources(plugin_dir):
        add(f"plugin/{rel}", (plugin_dir / rel).read_bytes())
    return h.hexdigest()[:32]


def _stage(plugin_dir: Path, into: Path) -> None:
    for rel in _sources(plugin_dir):
        (into / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plugin_dir / rel, into / rel)
    for rel in _sdk_sources():
        (into / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SDK_PACKAGE.parent / rel, into / rel)


def build(
    plugin_dir: Path,
    *,
    module: str = "plugin",
    output: Path | None = None,
    wit: Path | None = None,
    world: str | None = AUTO,
    cache: Path | None = None,
) -> Path:
    """Build the plugin in ``plugin_dir``; returns the ``.wasm`` path.
    ``world`` is ``auto`` (``typed``, or ``typed-lookup`` for a plugin that
    uses lookups: ``resolve_world``) or a world of the WIT."""
    plugin_dir = plugin_dir.resolve()
    cache = cache.resolve() if cache is not None else None
    wit = (wit or default_wit()).resolve()
    if not (plugin_dir / f"{module.replace('.', '/')}.py").is_file():
        raise BuildError(f"{plugin_dir}: no module `{module}` ({module}.py) to build")
    if not wit.is_dir():
        raise BuildError(f"the WIT directory {wit} does not exist (pass --wit)")
    # Resolved before the cache key: the key holds the world built.
    world = resolve_world(plugin_dir, world)
    tool = componentize_py()
    name = plugin_dir.name
    cached: Path | None = None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        cached = cache / f"{name}-{inputs_hash(plugin_dir, module, wit, world, tool)}.wasm"
        if cached.is_file():
            os.utime(cached)  # the newest use, for pruning
            if output is None:
                return cached
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, output)
            return output
    target = output or cached or plugin_dir / "build" / f"{name}.wasm"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="weir-py-") as staging:
        _stage(plugin_dir, Path(staging))
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        cmd = [
            tool, "-d", str(wit), "-w", world, "componentize",
            "-p", staging, "-o", str(partial), module,
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise BuildError(
                f"componentize-py failed on {plugin_dir} ({done.returncode}):\n"
                f"{done.stderr.strip() or done.stdout.strip()}"
            )
        os.replace(partial, target)
    if cache is not None and cached is not None:
        if target != cached:
            shutil.copyfile(target, cached)
        _prune(cache, name, keep=KEEP_CACHED)
    return target


#: How many builds of one plugin the cache keeps (the newest): enough for a
#: couple of checkouts sharing it, few enough for ~18 MB components.
KEEP_CACHED = 3


def _prune(cache: Path, name: str, keep: int) -> None:
    builds = sorted(
        (p for p in cache.glob(f"{name}-*.wasm") if len(p.stem) == len(name) + 33),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in builds[keep:]:
        old.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m weir_sdk.build",
        description="Build a Weir Python plugin into a component (weir:transform@0.2.0).",
    )
    parser.add_argument("dir", nargs="?", default=".", type=Path, help="the plugin directory")
    parser.add_argument("-m", "--module", default="plugin", help="the plugin module (plugin)")
    parser.add_argument("-o", "--output", type=Path, help="the .wasm to write (DIR/build/NAME.wasm)")
    parser.add_argument("--wit", type=Path, help="the WIT directory of weir:transform@0.2.0")
    parser.add_argument(
        "--world",
        default=AUTO,
        help="the world to build: auto (typed, or typed-lookup for a plugin that imports "
        "weir_sdk.lookup), typed, typed-lookup, ...",
    )
    parser.add_argument("--cache", type=Path, help="keep and reuse builds in this directory")
    args = parser.parse_args(argv)
    try:
        path = build(
            args.dir,
            module=args.module,
            output=args.output,
            wit=args.wit,
            world=args.world,
            cache=args.cache,
        )
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
