"""The package imports point downward only (design.md §5) and have no cycles."""

import ast
import shutil
import sys
from pathlib import Path

import hmm_fenics

PACKAGE = Path(hmm_fenics.__file__).parent

# Lower rank = lower layer. A module may import modules of lower rank, or of its own
# subpackage (checked for cycles separately).
RANK = {
    "errors": 0,
    "log": 0,
    "strict_json": 0,
    "dolfinx_first": 0,
    "mpi_first": 0,
    "physics": 1,
    "petsc_options": 1,
    "plots": 1,
    "summaries": 1,
    "point_laws": 1,
    "materials": 2,
    "rve": 3,
    "micro": 4,
    "parallel": 1,
    "macro": 4,
    "coupling": 5,
    "solver": 6,
    "stepping": 7,
    "studies": 7,
    "dns": 6,
    "io": 6,
    "config": 6,
    "run": 8,
    "cli": 9,
    "__init__": 10,
}
NO_DOLFINX = (
    "hmm_fenics.parallel",
    "hmm_fenics.rve.geometry",
    "hmm_fenics.rve.pixels",
    "hmm_fenics.physics",
    "hmm_fenics.errors",
    "hmm_fenics.dolfinx_first",
    "hmm_fenics.mpi_first",
    "hmm_fenics.point_laws",
    "hmm_fenics.plots",
    "hmm_fenics.summaries",
    "hmm_fenics.log",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports_of(path):
            # resolve to the longest known module prefix
            parts = imported.split(".")
            for n in range(len(parts), 0, -1):
                candidate = ".".join(parts[:n])
                if candidate in modules and candidate != name:
                    targets.add(candidate)
                    break
        edges[name] = targets
    return edges


def test_every_layer_is_ranked():
    assert {layer(m) for m in graph()} <= set(RANK)


def test_imports_point_downward():
    bad = [
        f"{m} -> {t}"
        for m, targets in graph().items()
        for t in targets
        if t != "hmm_fenics" and layer(t) != layer(m) and RANK[layer(t)] >= RANK[layer(m)]
    ]
    assert not bad, f"upward or sideways imports: {bad}"


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for t in edges.get(node, ()):
            if state.get(t) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*stack, node, t])}")
            if t not in state:
                visit(t, [*stack, node])
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node, [])


def test_pure_modules_do_not_import_dolfinx():
    for name, path in ((module_name(p), p) for p in PACKAGE.rglob("*.py")):
        if name.startswith(NO_DOLFINX):
            assert not any(i.split(".")[0] in ("dolfinx", "petsc4py") for i in imports_of(path)), (
                name
            )


def test_layering_check_detects_an_upward_import(tmp_path, monkeypatch):
    """The check itself can fail: an upward import planted in a copy is reported."""
    copy = tmp_path / "hmm_fenics"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "physics" / "diffusion.py"
    target.write_text(target.read_text() + "\nfrom hmm_fenics.cli import main\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", copy)
    try:
        test_imports_point_downward()
    except AssertionError as err:
        assert "hmm_fenics.physics.diffusion -> hmm_fenics.cli" in str(err)
    else:
        raise AssertionError("the planted upward import was not detected")
