"""Imports dolfinx_solver (the wheel's MPI) just before the first import of DOLFINx or PETSc.

The ``dolfinx-solver-real`` wheel's DOLFINx finds its MPI library only once ``import
dolfinx_solver`` has loaded it. Importing this module puts a finder first on
``sys.meta_path`` that finds nothing itself: on the first import of ``dolfinx``,
``petsc4py`` or ``slepc4py`` it imports ``dolfinx_solver`` first, then removes itself.
Where DOLFINx is installed natively (no ``dolfinx_solver``) it does nothing.

``hmm_fenics`` imports it, so ``import hmm_fenics`` does not load DOLFINx, PETSc or the
wheel's start-up checks (0.15 s): ``hmm-fenics homogenize`` meshes the cell with gmsh while
they load. If nothing imported ``mpi4py.MPI`` before, the first import of DOLFINx
initialises MPI: do that import on the main thread.

``make install`` copies this file into the venv's site-packages as
``_hmm_fenics_dolfinx_first.py`` with a ``hmm_fenics_dolfinx_first.pth`` line
(``hmm_fenics.dolfinx_first``), so that scripts that import ``dolfinx`` before
``hmm_fenics`` work too; remove those two files to undo it. It imports only ``sys``: there
it runs at every start-up.
"""

import sys

NEEDS_MPI = ("dolfinx", "petsc4py", "slepc4py")


class DolfinxSolverFirst:
    """Finds nothing itself: on the first import of NEEDS_MPI, imports dolfinx_solver first."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):  # type: ignore[no-untyped-def]
        """Import dolfinx_solver if ``name`` needs the wheel's MPI; find nothing (None)."""
        if name in NEEDS_MPI and cls in sys.meta_path:
            try:
                sys.meta_path.remove(cls)
            except ValueError:  # another thread's first import took it out meanwhile
                pass
            try:
                import dolfinx_solver  # noqa: F401
            except ModuleNotFoundError as err:  # a native DOLFINx; a broken wheel says so
                if err.name != "dolfinx_solver":
                    raise
        return None


if "dolfinx_solver" not in sys.modules and not any(
    getattr(finder, "__name__", "") == DolfinxSolverFirst.__name__ for finder in sys.meta_path
):  # one finder is enough (the start-up copy of this file may have put one there)
    sys.meta_path.insert(0, DolfinxSolverFirst)
