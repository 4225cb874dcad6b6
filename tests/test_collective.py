"""A micro failure on one rank is raised on every rank, never a hang."""

import subprocess
import sys
import textwrap
from pathlib import Path

from mpi4py import MPI

import pytest

import hmm_fenics as hf
from hmm_fenics.coupling.micro_models import EffectiveModel
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.micro.nonlinear import MicroNewtonError
from hmm_fenics.parallel.collective import first_failure
from hmm_fenics.solver import solve


class FailsOnLastRank:
    """Injected failure: only the last rank's micro model raises."""

    def __init__(self, inner):
        self.inner = inner

    def respond(self, gradients, points):
        comm = MPI.COMM_WORLD
        if comm.rank == comm.size - 1:
            error = MicroNewtonError("injected failure")
            error.point = 4
            raise error
        return self.inner.respond(gradients, points)


def test_first_failure_agrees_on_every_rank():
    comm = MPI.COMM_WORLD
    assert first_failure(comm, None) is None
    mine = ValueError("bad") if comm.rank == comm.size - 1 else None
    assert first_failure(comm, mine) == f"rank {comm.size - 1}: ValueError: bad"


def test_failure_on_one_rank_raises_the_same_error_everywhere():
    comm = MPI.COMM_WORLD
    problem = MacroProblem(
        macro_mesh("rectangle", 0.25), hf.Diffusion(2), {"left": 0.0, "right": 1.0}
    )
    with pytest.raises(MicroNewtonError) as info:
        solve(problem, FailsOnLastRank(EffectiveModel([[1.0, 0.0], [0.0, 1.0]])))
    message = str(info.value)
    assert message.startswith(
        f"micro failure on rank {comm.size - 1}: MicroNewtonError: macro Newton iteration 0"
    )
    assert (
        "macro cell 1 (local index), its point 1: injected failure" in message
    )  # point 4, 3 per cell
    assert comm.allgather(message) == [message] * comm.size


@pytest.mark.serial
def test_injected_failure_under_mpirun_ends_within_seconds(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_collective import test_failure_on_one_rank_raises_the_same_error_everywhere
        test_failure_on_one_rank_raises_the_same_error_everywhere()
        print("raised on every rank")
    """)
    )
    mpirun = Path(sys.executable).parent / "mpirun"
    proc = subprocess.run(
        [
            str(mpirun if mpirun.exists() else "mpirun"),
            "-n",
            "2",
            sys.executable,
            "-m",
            "mpi4py",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("raised on every rank") == 2
