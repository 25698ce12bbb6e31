"""The pure layers (algorithms, verifiers, tasks) import no framework or inference stack."""

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
