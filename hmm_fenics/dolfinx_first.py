"""A start-up hook for a venv with the ``dolfinx-solver-real`` wheel: ``import dolfinx`` just works.

The wheel's DOLFINx finds its MPI library (``libmpi.so.12``) only after ``import
dolfinx_solver`` has loaded it, so a plain ``python -c "import dolfinx"`` fails unless
something imports ``dolfinx_solver`` first (``import hmm_fenics`` sets that up). ``make install`` runs
``python -m hmm_fenics.dolfinx_first``, which writes two files into the venv's
site-packages:

- ``hmm_fenics_dolfinx_first.pth``: one line, ``import _hmm_fenics_dolfinx_first``, that
  Python's ``site`` runs at start-up;
- ``_hmm_fenics_dolfinx_first.py``: a copy of ``hmm_fenics.mpi_first``, an import finder
  that waits for the first import of ``dolfinx``, ``petsc4py`` or ``slepc4py``, imports
  ``dolfinx_solver`` just before it, and removes itself.

Nothing is loaded at start-up but that small module (``python -X importtime -c pass``:
0.13 ms of a 50–100 ms start-up here), MPI is initialised only by a script that imports
DOLFINx anyway, and where DOLFINx is installed natively (no ``dolfinx_solver``) nothing is
written. Remove the two files to undo it.
"""

import importlib.util
import py_compile
import sys
import sysconfig
from pathlib import Path

MODULE = "_hmm_fenics_dolfinx_first"
PTH = "hmm_fenics_dolfinx_first.pth"
HOOK = (Path(__file__).parent / "mpi_first.py").read_text()
"""The hook module: ``hmm_fenics.mpi_first``, copied (stdlib only, it runs at start-up)."""


def install(site_packages: str | Path | None = None) -> list[Path]:
    """Write the hook into ``site_packages`` (default: this interpreter's purelib).

    Returns:
        The files written: none where ``dolfinx_solver`` is not installed (a native
        DOLFINx needs no hook).
    """
    if importlib.util.find_spec("dolfinx_solver") is None:
        return []
    folder = Path(site_packages or sysconfig.get_paths()["purelib"])
    module, pth = folder / f"{MODULE}.py", folder / PTH
    module.write_text(HOOK)
    pth.write_text(f"import {MODULE}\n")
    # compiled now: Python may run with PYTHONDONTWRITEBYTECODE, and compiling the hook at
    # every start-up costs ~1.8 ms against ~0.13 ms to load its bytecode (measured here)
    py_compile.compile(str(module), doraise=True)
    return [module, pth]


if __name__ == "__main__":
    written = install(sys.argv[1] if len(sys.argv) > 1 else None)
    print("\n".join(f"wrote {p}" for p in written) or "dolfinx_solver not installed: no hook")
