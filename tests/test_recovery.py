"""History runs recover from what review found: failed factorizations, units, balancing.

Each test failed on the code before its fix (issue 11 review): a failed MUMPS factorization
made every later one fail (macro and micro), an elastic step in SI units never met the
relative tolerance once the tangent predictor made the first residual round-off, and a
balanced run of a J2 cell crashed at its micro snapshot after the whole solve.
"""

import tomllib
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.errors import MicroFailure
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.point_laws import IN_PLANE, Elastic, J2Plasticity, isotropic_stiffness
from hmm_fenics.run.job import run
from hmm_fenics.run.schema import parse_run_config

COMM = MPI.COMM_WORLD


def test_a_micro_solve_after_a_failed_factorization_succeeds():
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.3))
    laws = {"matrix": J2Plasticity(3.0, 0.35, 0.02, 0.3, 0.2), "inclusion": Elastic(70.0, 0.2)}
    cell = history_cell_problem(hf.Elasticity(2), rve, laws)
    row, committed = np.zeros(cell.width_internal), np.zeros(3)
    G = np.array([0.001, 0.0, 0.0])
    expected = cell.solve(G, row, committed).flux
    with pytest.raises(MicroFailure):
        cell._factor(np.zeros((cell.n_points_q, 3, 3)))  # a zero tangent: singular
    # the same cell answers again (it failed with INFOG(1) = -9 for good before the fix)
    np.testing.assert_allclose(cell.solve(G, row, committed).flux, expected, rtol=1e-12)


def test_a_macro_step_after_a_failed_factorization_succeeds():
    mesh = macro_mesh("rectangle", 0.5, COMM, params={"L": 1.0, "H": 1.0})
    physics = hf.Elasticity(2)
    C = isotropic_stiffness(1.0, 0.3)[np.ix_(IN_PLANE, IN_PLANE)]

    def step(problem, tangent):
        n = problem.quadrature.n_points
        problem.quadrature.store(np.zeros((n, 3)), np.broadcast_to(tangent, (n, 3, 3)).copy())
        problem.residual_norm()
        return problem.newton_step()

    problems = [
        MacroProblem(mesh, physics, {"left": (0.0, 0.0), "right": (0.01, 0.0)}) for _ in range(2)
    ]
    for problem in problems:
        problem.set_load(1.0)
    with pytest.raises(RuntimeError, match="macro linear solver failed"):
        step(problems[0], np.zeros((3, 3)))
    # the retry factors the valid tangent and makes the same step as a fresh problem
    assert step(problems[0], C) == pytest.approx(step(problems[1], C), rel=1e-12)


PLASTIC = """
[macro]
geometry = "plate-with-hole"
mesh_size = 0.4
quadrature_degree = 1
[dirichlet]
left = [0.0, "free"]
bottom = ["free", 0.0]
right = [{u}, "free"]
[loading]
path = {path}
steps = 1
[rve]
kind = "inclusion"
dim = 2
fraction = 0.2
mesh_size = 0.25
[physics]
kind = "elasticity"
[materials.matrix]
law = "j2"
E = {E}
nu = 0.33
sigma_y = {sigma_y}
H_iso = {H}
H_kin = {H}
[materials.inclusion]
E = {E_inclusion}
nu = 0.2
[solver]
schedule = "{schedule}"
[output]
fields = "none"
png = false
"""


def plastic_run(folder: Path, scale: float, schedule: str, u: float, path: str) -> dict:
    """The coarse composite plate; moduli and yield stress × ``scale`` (units)."""
    text = PLASTIC.format(
        u=u,
        path=path,
        E=70.0 * scale,
        sigma_y=0.25 * scale,
        H=1.0 * scale,
        E_inclusion=400.0 * scale,
        schedule=schedule,
    )
    config = parse_run_config(tomllib.loads(text), folder)
    return run(config, folder, overwrite=True, progress=False)


def reactions(results: dict) -> np.ndarray:
    return np.array([step["reactions"]["right"][0] for step in results["steps"]])


@pytest.fixture
def folder(tmp_path):
    return COMM.bcast(tmp_path, root=0)


def test_elastic_steps_converge_in_si_units(folder):
    """Elastic load, hold, unload: pascals give the GPa answer × 1e9."""
    path = "[[0, 0], [1, 1], [2, 1], [3, 0.5]]"
    gpa = plastic_run(folder / "gpa", 1.0, "owner", -1e-4, path)
    si = plastic_run(folder / "si", 1e9, "owner", -1e-4, path)
    assert max(step["dissipated_energy"] for step in gpa["steps"]) == 0.0  # elastic
    np.testing.assert_allclose(reactions(si), 1e9 * reactions(gpa), rtol=1e-8)


def test_balanced_history_run_writes_its_snapshot_and_equals_owner(folder):
    path = "[[0, 0], [1, 1]]"
    owner = plastic_run(folder / "owner", 1.0, "owner", -0.003, path)
    balanced = plastic_run(folder / "balanced", 1.0, "balanced", -0.003, path)
    assert owner["steps"][0]["dissipated_energy"] > 0  # it yields
    np.testing.assert_allclose(reactions(balanced), reactions(owner), rtol=1e-10)
    files = balanced["snapshots"][0]["files"]
    assert {"plastic_strain", "dissipation", "stress"} <= set(files)
    assert (folder / "balanced" / files["plastic_strain"]).exists()
    assert (folder / "balanced" / "results.json").exists()
