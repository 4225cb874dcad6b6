"""hmm_fenics: the Heterogeneous Multiscale Method (FE²) on FEniCSx.

The package re-exports the public API. DOLFINx is imported lazily by the modules that
need it; the ``dolfinx-solver-real`` wheel ships its own MPI, which must be loaded before
``dolfinx`` is imported, so that happens here, guarded, so that a native DOLFINx (for
example in the official FEniCS images) works too.
"""

try:  # The binary wheel: loads its bundled MPI so that ``import dolfinx`` finds libmpi.
    import dolfinx_solver as _dolfinx_solver  # noqa: F401
except ImportError:  # A native DOLFINx installation needs nothing extra.
    pass

from hmm_fenics import log
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

log.install()  # progress on rank 0 for Python users; hmm_fenics.log.quiet() silences it


def __getattr__(name: str) -> str:
    """``__version__``, looked up when asked for: importlib.metadata costs start-up time."""
    if name != "__version__":
        raise AttributeError(f"module 'hmm_fenics' has no attribute {name!r}")
    from importlib import metadata

    try:
        return metadata.version("hmm_fenics")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


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
