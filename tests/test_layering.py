"""Layers, enforced: the pure layers import no framework, each internal unit imports only the units
below it (``ALLOWED``), and no cipo module imports itself through a chain (lazy imports included).

A "unit" is a top-level module or package of ``src/cipo`` (``algorithms``, ``types``, ``cli``...).
A new unit must get a row in ``ALLOWED`` (the test fails on an unlisted one). The rules are the
module map of /work/notes/arch-decisions.md (section 5).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cipo"
PURE_PACKAGES = ("algorithms", "verifiers", "tasks")
FORBIDDEN = {
    "lightning",
    "pytorch_lightning",
    "lightning_fabric",
    "hydra",
    "omegaconf",
    "vllm",
    "transformers",
}
EVERYTHING = "*"
# unit -> the other cipo units it may import (bottom of the stack first)
ALLOWED: dict[str, set[str] | str] = {
    "types": set(),
    "schema": set(),
    "code_reference": set(),
    "parallel": set(),
    "skip_guard": set(),
    "models": set(),
    "reporting": set(),
    "loggers": set(),  # the trackers: config + outcome, logger=wandb / mlflow factories (used by cli)
    "algorithms": {"types", "schema"},
    "verifiers": {"types", "code_reference"},
    "tasks": {"types"},
    "data": {"types", "code_reference"},
    "metrics": {"types", "algorithms"},
    "checkpointing": {"parallel"},
    "rollout": {"types", "algorithms", "verifiers", "metrics", "parallel", "models"},  # models: LoRA merge for vLLM
    "settings": {"types", "schema", "algorithms"},
    "module": {"types", "algorithms", "models", "parallel", "settings", "skip_guard"},
    "callbacks": {"types", "algorithms", "verifiers", "rollout", "parallel", "settings", "checkpointing", "metrics"},
    "cli": EVERYTHING,
}


# ------------------------------------------------------------------ third-party imports
def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _files(package: str) -> list[Path]:
    folder = SRC / package
    return sorted(folder.rglob("*.py")) if folder.is_dir() else []


def test_algorithms_package_is_checked():
    assert _files("algorithms"), f"no python files under {SRC / 'algorithms'}"


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_no_forbidden_imports(package):
    files = _files(package)
    if not files:
        pytest.skip(f"src/cipo/{package} has no python files yet")
    bad = {
        str(f.relative_to(SRC)): sorted(_imported_roots(f) & FORBIDDEN) for f in files if _imported_roots(f) & FORBIDDEN
    }
    assert not bad, f"forbidden imports in pure layers: {bad}"


def test_detector_sees_nested_and_from_imports(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import os\nfrom hydra.core import x\ndef g():\n    import vllm.engine as e\n")
    assert _imported_roots(f) & FORBIDDEN == {"hydra", "vllm"}


def test_only_the_vllm_engine_imports_vllm_and_only_lazily():
    importers = {str(f.relative_to(SRC)) for f in SRC.rglob("*.py") if "vllm" in _imported_roots(f)}
    assert importers == {"rollout/vllm_engine.py"}
    tree = ast.parse((SRC / "rollout" / "vllm_engine.py").read_text())
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    roots = {alias.name.split(".")[0] for node in top_level if isinstance(node, ast.Import) for alias in node.names}
    roots |= {node.module.split(".")[0] for node in top_level if isinstance(node, ast.ImportFrom) and node.module}
    assert "vllm" not in roots, "import vllm inside functions: the module must import without vLLM installed"


# ------------------------------------------------------------------ internal layers and cycles
def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """``{module: modules of the same package tree it imports}`` for every ``.py`` under ``root``
    (a package folder), imports inside functions included; ``from pkg import sub`` counts as
    importing ``pkg.sub`` when that is a module."""
    files = {_module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the current package upwards
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets.add(base)
                targets |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in files}
        graph[name] = {target for target in targets if target in files and target != name}
    return graph


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_violations(graph: dict[str, set[str]], allowed: dict[str, set[str] | str]) -> list[str]:
    """``"a.b imports c.d (unit b may import ...)"`` for every import the table does not allow."""
    found = []
    for module, targets in sorted(graph.items()):
        unit = _unit(module)
        if unit is None:
            continue
        if unit not in allowed:
            found.append(f"{module}: unit {unit!r} has no row in ALLOWED")
            continue
        may = allowed[unit]
        for target in sorted(targets):
            other = _unit(target)
            if other in (None, unit) or may == EVERYTHING or other in may:
                continue
            found.append(f"{module} imports {target} (unit {unit} may import {sorted(may)})")
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_every_unit_imports_only_the_layers_below_it():
    assert layer_violations(import_graph(SRC), ALLOWED) == []


def test_every_unit_has_a_row():
    units = {_unit(module) for module in import_graph(SRC)} - {None}
    assert units == set(ALLOWED), f"new or removed units: {sorted(units ^ set(ALLOWED))}"


def test_no_import_cycles():
    assert find_cycle(import_graph(SRC)) is None


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "cipo"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_upward_import_fails(tmp_path):
    root = _tree(
        tmp_path,
        {
            "types.py": "",
            "data/__init__.py": "",
            "data/readers.py": "from cipo.types import Record\n",
            "data/references.py": "def f():\n    from cipo.verifiers.code import x\n",  # lazy, still counted
            "verifiers/__init__.py": "",
            "verifiers/code.py": "from cipo import types\n",
        },
    )
    allowed = {"types": set(), "data": {"types"}, "verifiers": {"types"}}
    found = layer_violations(import_graph(root), allowed)
    assert found == ["cipo.data.references imports cipo.verifiers.code (unit data may import ['types'])"]
    unlisted = layer_violations(import_graph(root), {"types": set(), "data": {"types"}})
    assert "cipo.verifiers.code: unit 'verifiers' has no row in ALLOWED" in unlisted


def test_a_cycle_fails_even_through_a_lazy_import(tmp_path):
    root = _tree(
        tmp_path,
        {
            "data/__init__.py": "",
            "data/readers.py": "def rows():\n    from cipo.data.packaged import packaged_rows\n",
            "data/packaged.py": "from cipo.data.readers import Row\n",
            "data/records.py": "from cipo.data import readers\n",
        },
    )
    graph = import_graph(root)
    assert graph["cipo.data.records"] == {"cipo.data", "cipo.data.readers"}
    assert find_cycle(graph) == ["cipo.data.packaged", "cipo.data.readers", "cipo.data.packaged"]
    (root / "data" / "packaged.py").write_text("from .rows import Row\n")  # the fix: Row in its own module
    (root / "data" / "rows.py").write_text("")
    assert find_cycle(import_graph(root)) is None


def test_the_eval_command_does_not_import_the_train_command():
    graph = import_graph(SRC)
    assert "cipo.cli.train" not in graph["cipo.cli.evaluate"] and "cipo.cli.train" not in graph["cipo.cli.eval_config"]
