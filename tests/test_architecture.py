"""The import graph of src/plmkit: no cycles (ARCHITECTURE.md, issue 22).

Every module is parsed with ``ast``; an edge is any ``import plmkit...`` / ``from ... import`` of a plmkit
module at module level *or* inside a function (a function-level import that hides a cycle is still a
cycle), relative imports resolved. Imports under ``if TYPE_CHECKING:`` never run and are left out. Going
through a package also runs its ``__init__``, which is not counted as an edge: the package root and
``plmkit.data`` load their names on first use (PEP 562), and ``plmkit.models`` only re-exports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "plmkit"


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return mods


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
                (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
                or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")):
            for stmt in node.body:
                skip.update(id(n) for n in ast.walk(stmt))
    return skip


def import_graph() -> dict[str, set[str]]:
    """plmkit module → the plmkit modules it imports (anywhere in its code)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skip = _type_checking_only(tree)
        package = name if is_pkg else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name
                    while target and target not in mods:  # import plmkit.a.b.c where c is a name
                        target = target.rpartition(".")[0]
                    if target.startswith("plmkit"):
                        targets.add(target)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base != "plmkit" and not base.startswith("plmkit."):
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in mods else base)  # a submodule, or a name of the module
        targets.discard(name)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "plmkit.models.hf" in graph["plmkit.models.model"]  # module level, relative
    assert "plmkit.models.elmo" in graph["plmkit.models.auto"]
    assert "plmkit.tokenization" in graph["plmkit.models.elmo"]  # inside a function
    assert "plmkit._version" in graph["plmkit.data.shards"]  # `from .._version import __version__` in a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_plmkit():
    cycle = find_cycle(import_graph())
    if cycle:
        pytest.fail("import cycle in src/plmkit: " + " → ".join(cycle)
                    + "; make the imports point one way (see ARCHITECTURE.md)")


def test_model_files_point_one_way():
    """hf (names) ← model (PlmModel) ← auto (loaders); elmo / tagger ← auto; all of them read files through folder."""
    graph = import_graph()
    models = {m for m in graph if m.startswith("plmkit.models.")}
    assert not graph["plmkit.models.hf"] & models - {"plmkit.models.folder"}
    assert "plmkit.models.auto" not in set().union(*(graph[m] for m in models if m != "plmkit.models.auto"))
    assert not graph["plmkit.models.folder"] & models
    assert "plmkit" not in graph["plmkit.data.shards"]  # the data package does not import the package root


# Config classes that belong with the code they configure rather than in plmkit.config: fine-tuning's (a task's
# settings plus a TrainConfig, next to the task classes) and the demo's.
CONFIGS_ELSEWHERE = {"FinetuneConfig": "plmkit.finetune.config", "DemoConfig": "plmkit.demo"}


def test_every_model_data_and_training_config_lives_in_plmkit_config():
    """Issue 22 item 5: one config home. A class named ``*Config`` defined anywhere else is a second home."""
    found = {}
    for name, (path, is_pkg) in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
                found.setdefault(node.name, []).append(name)
    elsewhere = {cls: mods for cls, mods in found.items()
                 if mods != ["plmkit.config"] and mods != [CONFIGS_ELSEWHERE.get(cls)]}
    assert not elsewhere, f"config classes outside plmkit.config: {elsewhere}"
    assert {"ModelConfig", "DataConfig", "TrainConfig", "ElmoConfig", "TaggerConfig"} <= {
        cls for cls, mods in found.items() if mods == ["plmkit.config"]}


def test_the_old_import_paths_give_the_same_config_classes():
    import plmkit.config as config
    from plmkit.data.objectives import DataConfig, data_config_from_preset
    from plmkit.models.elmo import ElmoConfig, elmo_config_from_preset
    from plmkit.models.tagger import TaggerConfig
    from plmkit.training.trainer import TrainConfig

    assert (DataConfig, TrainConfig, ElmoConfig, TaggerConfig) == (
        config.DataConfig, config.TrainConfig, config.ElmoConfig, config.TaggerConfig)
    assert data_config_from_preset is config.data_config_from_preset
    assert elmo_config_from_preset is config.elmo_config_from_preset
    assert data_config_from_preset("roberta-tiny", {"data.mask_prob": 0.2}).mask_prob == 0.2
