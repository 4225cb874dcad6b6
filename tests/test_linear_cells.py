"""Linear cells answer from their unit solutions (issue 10.5): no solve per point, exact linearity.

A linear cell's flux is C_hom G; with an iterative micro solver a per-point solve is not
linear in G (Krylov iterates depend nonlinearly on the right-hand side), so a macro Newton
with the tangent C_hom stalls at the solver tolerance. Answering from the unit solutions
makes the response exactly linear with a consistent tangent.
"""

import numpy as np
import pytest
from test_fe2 import gathered

import hmm_fenics as hf
from hmm_fenics.coupling.micro_models import CellModel, EffectiveModel
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.solver import solve

GAMG = {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-7, "ksp_atol": 1e-50}
PULL_3D = {"left": (0.0, 0.0, 0.0), "right": (0.01, None, None)}


@pytest.fixture(scope="module")
def gamg_cell():
    """A 3D glass/epoxy cell solved by CG + GAMG (the default above 5 000 unknowns)."""
    materials = {
        "matrix": hf.IsotropicElastic(3.0, 0.35),
        "inclusion": hf.IsotropicElastic(70.0, 0.2),
    }
    rve = hf.build_rve(hf.RVESpec("inclusion", 3, 0.2, 0.25))
    return hf.cell_problem(hf.Elasticity(3), rve, materials, petsc_options=GAMG)


def test_a_query_does_not_solve(gamg_cell, monkeypatch):
    def no_solve(*args):
        raise AssertionError("a linear cell must not solve per point")

    monkeypatch.setattr(gamg_cell, "solve", no_solve)
    monkeypatch.setattr(gamg_cell, "ksp", None)  # no solver left to call
    monkeypatch.setattr(gamg_cell, "_factor", None)
    G = np.random.default_rng(0).standard_normal((7, 6))
    response = CellModel(gamg_cell).respond(G, np.zeros((7, 3)))
    np.testing.assert_allclose(response.flux, G @ gamg_cell.effective_tensor.T, rtol=1e-14)


def test_3d_fe2_with_a_gamg_cell_reaches_the_default_tolerance(gamg_cell):
    assert gamg_cell.ksp.getType() == "cg" and gamg_cell.ksp.getPC().getType() == "gamg"
    mesh = macro_mesh("box", 0.5)
    per_point = MacroProblem(mesh, hf.Elasticity(3), PULL_3D)
    result = solve(per_point, CellModel(gamg_cell), progress=False)  # default rtol 1e-10
    assert result.residuals[-1] <= 1e-10 * result.residuals[0]
    # the same answer as the one-tensor fast path, to the macro solver's round-off
    fast = MacroProblem(mesh, hf.Elasticity(3), PULL_3D)
    solve(fast, EffectiveModel(gamg_cell.effective_tensor), progress=False)
    a, b = gathered(fast.u), gathered(per_point.u)
    np.testing.assert_allclose(b, a, atol=1e-10 * np.abs(a).max())


@pytest.mark.parametrize("dim", [2, 3])
def test_the_answer_from_unit_solutions_equals_a_solve_per_point(dim):
    """An independent per-point solve (lift, solve, average the flux) gives the same flux."""
    materials = {
        "matrix": hf.IsotropicElastic(3.0, 0.35),
        "inclusion": hf.IsotropicElastic(70.0, 0.2),
    }
    physics = hf.Elasticity(dim)
    cell = hf.cell_problem(
        physics,
        hf.build_rve(hf.RVESpec("inclusion", dim, 0.2, 0.1 if dim == 2 else 0.25)),
        materials,
    )
    G = np.random.default_rng(1).standard_normal((4, physics.n_components))
    x = cell.solve(cell.load @ G.T)  # the fluctuations of these very gradients
    solved = G @ cell.mean_tensor.T - (cell.load.T @ x).T / cell.rve.volume
    answered = CellModel(cell).respond(G, np.zeros((4, dim))).flux
    np.testing.assert_allclose(answered, solved, atol=1e-11 * np.abs(solved).max())
