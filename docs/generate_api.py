"""The API reference page: autodoc of the curated public API, ``hmm_fenics.__all__``.

One entry per exported name, in the order of ``__all__``: classes with their members, then
functions. The docstrings are Google style, read by ``sphinx.ext.napoleon``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

BUILDING_BLOCKS = {
    "Macro problem and solver": (
        "hmm_fenics.macro.mesh.macro_mesh",
        "hmm_fenics.macro.problem.MacroProblem",
        "hmm_fenics.solver.solve",
        "hmm_fenics.solver.SolveResult",
        "hmm_fenics.solver.timing_summary",
    ),
    "Micro models (what answers a macro quadrature point)": (
        "hmm_fenics.coupling.micro_models.EffectiveModel",
        "hmm_fenics.coupling.micro_models.CellModel",
        "hmm_fenics.coupling.micro_models.GradedModel",
        "hmm_fenics.coupling.micro_models.BalancedModel",
        "hmm_fenics.micro.nonlinear.nonlinear_cell_problem",
        "hmm_fenics.micro.nonlinear.NonlinearCellModel",
        "hmm_fenics.micro.nonlinear.finite_difference_tangent",
        "hmm_fenics.micro.history.history_cell_problem",
        "hmm_fenics.micro.history_model.HistoryCellModel",
    ),
    "Nonlinear and history phase laws": (
        "hmm_fenics.materials.PowerLawConductivity",
        "hmm_fenics.materials.PowerLawElastic",
        "hmm_fenics.materials.J2Plastic",
        "hmm_fenics.materials.Maxwell",
    ),
    "Errors": (
        "hmm_fenics.errors.InputError",
        "hmm_fenics.errors.PeriodicityError",
        "hmm_fenics.errors.MicroFailure",
    ),
}
"""FE² objects the README's examples import from their modules (not re-exported): listed by
hand, so a renamed one fails the build (autodoc cannot import it) instead of drifting."""


def _entry(path: str) -> str:
    import importlib

    module, name = path.rsplit(".", 1)
    obj = getattr(importlib.import_module(module), name)
    if inspect.isclass(obj):
        return f".. autoclass:: {path}\n   :members:\n"
    return f".. autofunction:: {path}\n"


def api_markdown() -> str:
    """The API page (MyST Markdown with autodoc directives)."""
    import hmm_fenics

    names = [name for name in hmm_fenics.__all__ if not name.startswith("_")]
    objects = {name: getattr(hmm_fenics, name) for name in names}
    classes = [name for name, obj in objects.items() if inspect.isclass(obj)]
    functions = [name for name, obj in objects.items() if inspect.isfunction(obj)]
    modules = [name for name, obj in objects.items() if inspect.ismodule(obj)]
    constants = [name for name in names if name not in classes + functions + modules]
    out = [
        "# API reference",
        "",
        "The public API is what `import hmm_fenics as hf` exports (`hmm_fenics.__all__`); "
        "this page is generated from it and the docstrings at every docs build. Import "
        "`hmm_fenics` before `dolfinx`: with the `dolfinx-solver-real` wheel it loads the "
        "bundled MPI. Mandel notation throughout: 2D strains (ε11, ε22, √2 ε12), 3D "
        "(ε11, ε22, ε33, √2 ε23, √2 ε13, √2 ε12).",
        "",
        "## Functions",
        "",
        "```{eval-rst}",  # autodoc writes reST: it must be parsed as reST, not as MyST
        ".. currentmodule:: hmm_fenics",
        "",
        *(f".. autofunction:: {name}\n" for name in functions),
        "```",
        "",
        "## Classes",
        "",
        "```{eval-rst}",
        ".. currentmodule:: hmm_fenics",
        "",
        *(f".. autoclass:: {name}\n   :members:\n" for name in classes),
        "```",
        "",
        "## Constants",
        "",
        "```{eval-rst}",
        ".. currentmodule:: hmm_fenics",
        "",
        *(f".. autodata:: {name}\n" for name in constants),
        "```",
        "",
        "## Modules",
        "",
        "```{eval-rst}",
        ".. currentmodule:: hmm_fenics",
        "",
        *(
            f".. py:data:: {name}\n\n   The module :mod:`hmm_fenics.{name}`:\n\n"
            f".. automodule:: hmm_fenics.{name}\n   :members:\n   :no-index:\n"
            for name in modules
        ),
        "```",
        "",
        "## FE² building blocks",
        "",
        "Not re-exported by `hmm_fenics`: import them from their modules, as the examples in "
        "{doc}`../getting_started` do.",
        "",
    ]
    for title, paths in BUILDING_BLOCKS.items():
        out += [f"### {title}", "", "```{eval-rst}", *map(_entry, paths), "```", ""]
    return "\n".join(out)


def write(path: str | Path) -> Path:
    """Write the API page to ``path`` (its folder is created) and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(api_markdown())
    return target
