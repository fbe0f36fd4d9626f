"""The build, natively (componentize-py is faked): the world it picks for a
plugin that uses lookups, and the cache key that holds the world."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from weir_sdk import build
from weir_sdk.build import BuildError, lookup_uses, resolve_world

PLAIN = "import sys\nimport weir_sdk\nfrom weir_sdk import Outcome\n"


def plugin_dir(tmp_path: Path, source: str, **others: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "plugin.py").write_text(source, encoding="utf-8")
    for name, text in others.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    "source",
    [
        "from weir_sdk import lookup\n",
        "from weir_sdk import Outcome, lookup as lk\n",
        "from weir_sdk.lookup import get_json, NotGranted\n",
        "import weir_sdk.lookup\n",
        "import weir_sdk.lookup as lk\n",
        "import weir_sdk\n\ndef f():\n    return weir_sdk.lookup.get('s', 'k')\n",
        "import weir_sdk as w\nx = w.lookup\n",
        "from weir_sdk import *\nlookup.get('s', 'k')\n",
        "from wit_world.imports import lookup\n",
        "import wit_world.imports.lookup\n",
    ],
)
def test_a_plugin_that_uses_lookups_is_built_against_typed_lookup(tmp_path: Path, source: str) -> None:
    d = plugin_dir(tmp_path, source)
    assert lookup_uses(d), source
    assert resolve_world(d) == "typed-lookup"
    assert resolve_world(d, None) == resolve_world(d, "auto") == "typed-lookup"


@pytest.mark.parametrize(
    "source",
    [
        PLAIN,
        "# from weir_sdk import lookup\nx = 'import weir_sdk.lookup'\n",
        "import weir_sdk\nx = weir_sdk.log\nlookup = 1\n",
        "from weir_sdk import *\n",
        "from mylib import lookup\n",
        "def broken(:\n",  # left to componentize-py
    ],
)
def test_a_plugin_that_does_not_is_built_against_typed(tmp_path: Path, source: str) -> None:
    d = plugin_dir(tmp_path, source)
    assert lookup_uses(d) == []
    assert resolve_world(d) == "typed"


def test_every_bundled_source_counts_and_tests_do_not(tmp_path: Path) -> None:
    d = plugin_dir(tmp_path, PLAIN, **{"tests/test_plugin.py": "from weir_sdk import lookup\n"})
    assert resolve_world(d) == "typed"
    (d / "helpers").mkdir()
    (d / "helpers" / "users.py").write_text("\n\nfrom weir_sdk.lookup import get\n", encoding="utf-8")
    assert lookup_uses(d) == ["helpers/users.py:3 imports from weir_sdk.lookup"]
    assert resolve_world(d) == "typed-lookup"


def test_the_sdk_vendored_into_the_project_does_not_count(tmp_path: Path) -> None:
    # `weir plugin new` vendors the SDK as vendor/weir_sdk: its own lookup
    # module imports the generated bindings, the plugin does not.
    sdk = Path(build.__file__).parent
    d = plugin_dir(
        tmp_path,
        PLAIN,
        **{
            "vendor/weir_sdk/lookup.py": (sdk / "lookup.py").read_text(encoding="utf-8"),
            "vendor/weir_sdk/__init__.py": (sdk / "__init__.py").read_text(encoding="utf-8"),
        },
    )
    assert lookup_uses(d) == []
    assert resolve_world(d) == "typed"
    (d / "plugin.py").write_text("from weir_sdk import lookup\n", encoding="utf-8")
    assert resolve_world(d) == "typed-lookup"


def test_an_explicit_world_is_kept_unless_it_lacks_lookup(tmp_path: Path) -> None:
    plain = plugin_dir(tmp_path / "plain", PLAIN)
    assert resolve_world(plain, "typed-lookup") == "typed-lookup"
    assert resolve_world(plain, "typed-state-lookup") == "typed-state-lookup"
    uses = plugin_dir(tmp_path / "uses", "from weir_sdk import lookup\n")
    assert resolve_world(uses, "typed-state-lookup") == "typed-state-lookup"
    assert resolve_world(uses, "my-own-world") == "my-own-world"
    with pytest.raises(BuildError, match=r"uses lookups \(plugin.py:1 imports weir_sdk.lookup\) but the world "
                       r"`typed` does not import `weir:transform/lookup`: build it with --world typed-lookup"):
        resolve_world(uses, "typed")
    with pytest.raises(BuildError):
        resolve_world(uses, "typed-state")


def test_the_cache_key_holds_the_world(tmp_path: Path) -> None:
    d = plugin_dir(tmp_path, PLAIN)
    wit = build.default_wit()
    tool = sys.executable  # `--version` answers; a stand-in for componentize-py
    typed = build.inputs_hash(d, "plugin", wit, "typed", tool)
    assert typed == build.inputs_hash(d, "plugin", wit, "typed", tool)
    assert typed != build.inputs_hash(d, "plugin", wit, "typed-lookup", tool)


class FakeComponentize:
    """Stands in for componentize-py: records each build's command and
    writes a placeholder component."""

    def __init__(self) -> None:
        self.builds: list[list[str]] = []

    def __call__(self, cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if cmd[1:] == ["--version"]:
            return subprocess.CompletedProcess(cmd, 0, "componentize-py 0.25.1\n", "")
        self.builds.append(cmd)
        Path(cmd[cmd.index("-o") + 1]).write_bytes(b"\0asm")
        return subprocess.CompletedProcess(cmd, 0, "", "")


def test_build_passes_the_world_it_picked_and_caches_per_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeComponentize()
    monkeypatch.setattr(build, "componentize_py", lambda: "componentize-py")
    monkeypatch.setattr(build.subprocess, "run", fake)
    d = plugin_dir(tmp_path / "enrich", "from weir_sdk import lookup\n")
    cache = tmp_path / "cache"

    auto = build.build(d, cache=cache)
    assert fake.builds[-1][fake.builds[-1].index("-w") + 1] == "typed-lookup"
    assert build.build(d, cache=cache) == auto and len(fake.builds) == 1  # cached
    wider = build.build(d, cache=cache, world="typed-state-lookup")
    assert fake.builds[-1][fake.builds[-1].index("-w") + 1] == "typed-state-lookup"
    assert wider != auto and len(fake.builds) == 2

    with pytest.raises(BuildError, match="--world typed-lookup"):
        build.build(d, world="typed")
    assert len(fake.builds) == 2

    plain = plugin_dir(tmp_path / "plain", PLAIN)
    out = build.build(plain)
    assert out == plain / "build" / "plain.wasm" and out.read_bytes() == b"\0asm"
    assert fake.builds[-1][fake.builds[-1].index("-w") + 1] == "typed"


def test_the_command_line_defaults_to_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeComponentize()
    monkeypatch.setattr(build, "componentize_py", lambda: "componentize-py")
    monkeypatch.setattr(build.subprocess, "run", fake)
    d = plugin_dir(tmp_path / "p", "import weir_sdk.lookup\n")
    assert build.main([str(d)]) == 0
    assert capsys.readouterr().out.strip() == str(d / "build" / "p.wasm")
    assert fake.builds[-1][fake.builds[-1].index("-w") + 1] == "typed-lookup"
    assert build.main([str(d), "--world", "typed"]) == 1
    assert "does not import `weir:transform/lookup`" in capsys.readouterr().err
