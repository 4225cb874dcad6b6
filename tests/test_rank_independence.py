"""Same answers serially, with 2 and with (oversubscribed) 4 ranks, for both schedules."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    from mpi4py import MPI
    import numpy as np
    import hmm_fenics as hf
    from hmm_fenics.coupling.micro_models import BalancedModel, CellModel
    from hmm_fenics.macro.mesh import macro_mesh
    from hmm_fenics.macro.problem import MacroProblem
    from hmm_fenics.materials import PowerLawElastic
    from hmm_fenics.micro.nonlinear import NonlinearCellModel, nonlinear_cell_problem
    from hmm_fenics.solver import solve

    comm = MPI.COMM_WORLD
    physics = hf.Elasticity(2)
    glass, epoxy = hf.IsotropicElastic(70.0, 0.2), hf.IsotropicElastic(3.0, 0.35)
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))
    out = {"tensor": hf.homogenize(rve, physics, {"matrix": epoxy, "inclusion": glass}).tensor.tolist()}
    mesh = macro_mesh("plate-with-hole", 0.2, params={"L": 1.0, "R": 0.25})
    pull = {"left": (0.0, None), "bottom": (None, 0.0), "right": (0.005, None)}
    linear = hf.cell_problem(physics, rve, {"matrix": epoxy, "inclusion": glass})
    soft = {"matrix": PowerLawElastic(3.0, 0.35, 0.002, 0.5), "inclusion": glass}
    models = {
        "linear owner": lambda: CellModel(linear),
        "linear balanced": lambda: BalancedModel(CellModel(linear), comm),
        "nonlinear owner": lambda: NonlinearCellModel(nonlinear_cell_problem(physics, rve, soft)),
        "nonlinear balanced": lambda: BalancedModel(NonlinearCellModel(nonlinear_cell_problem(physics, rve, soft)), comm),
    }
    for name, make in models.items():
        problem = MacroProblem(mesh, physics, pull)
        solve(problem, make(), progress=False)
        n = problem.V.dofmap.index_map.size_local
        x = problem.V.tabulate_dof_coordinates()[:n, :2]
        u = problem.u.x.array.reshape(-1, 2)[:n]
        x, u = np.concatenate(comm.allgather(x)), np.concatenate(comm.allgather(u))
        order = np.lexsort((np.round(x[:, 1], 9), np.round(x[:, 0], 9)))  # partition-free order
        out[name] = u[order].tolist()
    if comm.rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f)
""")


def run(tmp_path, ranks):
    script = tmp_path / "same.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"out{ranks}.json"
    mpirun = Path(sys.executable).parent / "mpirun"
    command = [
        str(mpirun if mpirun.exists() else "mpirun"),
        "-n",
        str(ranks),
        sys.executable,
        "-m",
        "mpi4py",
        str(script),
        str(out),
    ]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.serial
def test_serial_two_and_four_ranks_agree_for_both_schedules(tmp_path):
    serial = run(tmp_path, 1)
    for ranks in (2, 4):
        parallel = run(tmp_path, ranks)
        for key, reference in serial.items():
            reference = np.asarray(reference)
            scale = max(np.abs(reference).max(), 1e-300)
            np.testing.assert_allclose(
                np.asarray(parallel[key]),
                reference,
                atol=1e-10 * scale,
                err_msg=f"{key}, {ranks} ranks",
            )
    # and the schedules agree with each other
    np.testing.assert_allclose(serial["linear balanced"], serial["linear owner"], atol=1e-12)
