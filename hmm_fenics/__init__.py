"""hmm_fenics: the Heterogeneous Multiscale Method (FE²) on FEniCSx.

The package re-exports the public API, each name imported on first use (``_API``); DOLFINx
is imported by the modules that need it. The ``dolfinx-solver-real`` wheel ships its own MPI,
which must be loaded before ``dolfinx`` is imported: ``hmm_fenics.mpi_first`` sees to that at
the first import of DOLFINx or PETSc (not before: meshing a cell needs neither), and does
nothing for a native DOLFINx (for example in the official FEniCS images).
"""

import importlib
from typing import TYPE_CHECKING, Any

from hmm_fenics import log, mpi_first  # noqa: F401 (mpi_first: the wheel's MPI before DOLFINx)

if TYPE_CHECKING:  # the names, for type checkers and readers; at run time ``__getattr__``
    from hmm_fenics.coupling.ensemble import EnsembleResult, SizeStudy, ensemble, size_study
    from hmm_fenics.coupling.homogenize import HomogenizationResult, homogenize
    from hmm_fenics.coupling.sampling import CoefficientWindows, LatticeWindows, SampledModel
    from hmm_fenics.materials import Conductivity, IsotropicElastic, Void
    from hmm_fenics.micro.boundary import BOUNDARY_CONDITIONS
    from hmm_fenics.micro.cell_problem import CellProblem, MicroResponse, cell_problem
    from hmm_fenics.micro.interval import interval_window
    from hmm_fenics.physics import Diffusion, Elasticity
    from hmm_fenics.run.solution import MacroFields, macro_fields, write_fields
    from hmm_fenics.rve.medium import CoefficientMedium
    from hmm_fenics.rve.mesh import RVEMesh, build_rve
    from hmm_fenics.rve.spec import RVESpec
    from hmm_fenics.rve.tiling import tile_rve

# Where each public name lives: imported when first used, so that `hmm-fenics --help` or a
# cell check does not pay for DOLFINx, UFL and PETSc modules it never touches.
_API = {
    "BOUNDARY_CONDITIONS": "hmm_fenics.micro.boundary",
    "CellProblem": "hmm_fenics.micro.cell_problem",
    "CoefficientMedium": "hmm_fenics.rve.medium",
    "CoefficientWindows": "hmm_fenics.coupling.sampling",
    "Conductivity": "hmm_fenics.materials",
    "Diffusion": "hmm_fenics.physics",
    "Elasticity": "hmm_fenics.physics",
    "EnsembleResult": "hmm_fenics.coupling.ensemble",
    "HomogenizationResult": "hmm_fenics.coupling.homogenize",
    "IsotropicElastic": "hmm_fenics.materials",
    "LatticeWindows": "hmm_fenics.coupling.sampling",
    "MacroFields": "hmm_fenics.run.solution",
    "MicroResponse": "hmm_fenics.micro.cell_problem",
    "RVEMesh": "hmm_fenics.rve.mesh",
    "RVESpec": "hmm_fenics.rve.spec",
    "SampledModel": "hmm_fenics.coupling.sampling",
    "SizeStudy": "hmm_fenics.coupling.ensemble",
    "Void": "hmm_fenics.materials",
    "build_rve": "hmm_fenics.rve.mesh",
    "cell_problem": "hmm_fenics.micro.cell_problem",
    "ensemble": "hmm_fenics.coupling.ensemble",
    "homogenize": "hmm_fenics.coupling.homogenize",
    "interval_window": "hmm_fenics.micro.interval",
    "macro_fields": "hmm_fenics.run.solution",
    "size_study": "hmm_fenics.coupling.ensemble",
    "tile_rve": "hmm_fenics.rve.tiling",
    "write_fields": "hmm_fenics.run.solution",
}

log.install()  # progress on rank 0 for Python users; hmm_fenics.log.quiet() silences it


def __getattr__(name: str) -> Any:
    """The public API, imported on first use; ``__version__`` from the package metadata."""
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # later lookups find it without this hook
        return value
    if name != "__version__":
        raise AttributeError(f"module 'hmm_fenics' has no attribute {name!r}")
    from importlib import metadata

    try:
        return metadata.version("hmm_fenics")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "BOUNDARY_CONDITIONS",
    "CellProblem",
    "CoefficientMedium",
    "CoefficientWindows",
    "Conductivity",
    "Diffusion",
    "Elasticity",
    "EnsembleResult",
    "HomogenizationResult",
    "IsotropicElastic",
    "LatticeWindows",
    "MacroFields",
    "MicroResponse",
    "RVEMesh",
    "RVESpec",
    "SampledModel",
    "SizeStudy",
    "Void",
    "__version__",
    "build_rve",
    "cell_problem",
    "ensemble",
    "homogenize",
    "interval_window",
    "log",
    "macro_fields",
    "size_study",
    "tile_rve",
    "write_fields",
]
