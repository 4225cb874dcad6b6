"""The environment just works (issue 15 point 6): dolfinx imports on its own, MPI runs report once."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hmm_fenics import dolfinx_first

TESTS = Path(__file__).parent
WHEEL = importlib.util.find_spec("dolfinx_solver") is not None
MPIRUN = Path(sys.executable).parent / "mpirun"


def python(*args, **kwargs):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, check=False, **kwargs
    )


@pytest.mark.serial
def test_start_up_loads_no_mpi():
    proc = python("-c", "import sys; print('mpi4py' in sys.modules, 'dolfinx' in sys.modules)")
    assert proc.stdout.split() == ["False", "False"]


@pytest.mark.serial
def test_import_dolfinx_in_this_venv_needs_no_hmm_fenics_first():
    proc = python("-c", "import dolfinx; print(dolfinx.__version__)")
    assert proc.returncode == 0, (
        f"`python -c 'import dolfinx'` fails in {sys.prefix}: run `make install` (it writes "
        f"the start-up hook of hmm_fenics/dolfinx_first.py)\n{proc.stderr[-1500:]}"
    )
    assert proc.stdout.startswith("0.11")


@pytest.mark.serial
@pytest.mark.skipif(not WHEEL, reason="a native DOLFINx: no dolfinx_solver, no hook needed")
def test_the_hook_is_what_makes_import_dolfinx_work(tmp_path):
    written = dolfinx_first.install(tmp_path)
    assert sorted(p.name for p in written) == sorted(
        [dolfinx_first.PTH, f"{dolfinx_first.MODULE}.py"]
    )
    assert list((tmp_path / "__pycache__").glob(f"{dolfinx_first.MODULE}.*.pyc"))
    assert (tmp_path / dolfinx_first.PTH).read_text() == f"import {dolfinx_first.MODULE}\n"
    # this venv's own hook (if make install wrote one) is taken out first
    off = (
        "import sys, site; sys.meta_path[:] = [f for f in sys.meta_path "
        "if getattr(f, '__name__', '') != 'DolfinxSolverFirst']; "
        f"sys.modules.pop({dolfinx_first.MODULE!r}, None); "
    )
    bare = python("-c", off + "import dolfinx")
    assert bare.returncode != 0 and "libmpi" in bare.stderr  # the failure the hook removes
    hooked = python(
        "-c",
        off + f"sys.path.insert(0, {str(tmp_path)!r}); site.addsitedir({str(tmp_path)!r}); "
        f"print(sys.modules[{dolfinx_first.MODULE!r}].__file__.startswith({str(tmp_path)!r}), "
        "'mpi4py' in sys.modules, end=' '); import dolfinx; "
        "print('dolfinx_solver' in sys.modules, all(getattr(f, '__name__', '') != "
        "'DolfinxSolverFirst' for f in sys.meta_path))",
    )
    assert hooked.returncode == 0, hooked.stderr[-1500:]
    # the written files hook; no MPI before dolfinx; dolfinx brought dolfinx_solver, the
    # hook is gone
    assert hooked.stdout.split() == ["True", "False", "True", "True"]


@pytest.mark.serial
@pytest.mark.skipif(not WHEEL, reason="a native DOLFINx: no dolfinx_solver")
def test_import_hmm_fenics_loads_the_wheel_mpi_at_the_first_dolfinx_import_only():
    """Without the start-up hook: ``import hmm_fenics`` loads no MPI (a cell can be meshed
    meanwhile), and a later ``import dolfinx`` still finds the wheel's MPI."""
    off = (
        "import sys; sys.meta_path[:] = [f for f in sys.meta_path "
        "if getattr(f, '__name__', '') != 'DolfinxSolverFirst']; "
        f"sys.modules.pop({dolfinx_first.MODULE!r}, None); "
    )
    proc = python(
        "-c",
        off + "import hmm_fenics; print('dolfinx_solver' in sys.modules, 'mpi4py' in sys.modules, "
        "end=' '); import dolfinx; print('dolfinx_solver' in sys.modules, dolfinx.__version__[:4])",
    )
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.split() == ["False", "False", "True", "0.11"]


@pytest.mark.serial
@pytest.mark.skipif(shutil.which(str(MPIRUN)) is None, reason="no mpirun next to this python")
def test_mpi_pytest_prints_once_and_a_failure_on_rank_1_still_fails(tmp_path):
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_ranks.py").write_text(
        "from mpi4py import MPI\n\n"
        "def test_everywhere():\n    assert True\n\n"
        "def test_fails_on_rank_1():\n    assert MPI.COMM_WORLD.rank != 1, 'rank 1 differs'\n"
    )
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    command = [str(MPIRUN), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "pytest", "-q"]
    proc = subprocess.run(
        [*command, "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0  # rank 1's failure fails the run
    assert out.count("2 passed") == 1  # rank 0's report, once
    # ... and it says that another rank failed (it used to end on "2 passed" alone)
    assert proc.stdout.count("FAILED on rank 1: 1 test(s)") == 1, proc.stdout
    assert "[rank 1] FAILED test_ranks.py::test_fails_on_rank_1 (call)" in proc.stderr
    assert "rank 1 differs" in proc.stderr
    assert out.count("test_everywhere") == 0  # no per-test lines from rank 1 (-q)
