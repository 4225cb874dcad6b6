"""Nonlinear micro-physics: micro Newton, consistent tangents, macro Newton convergence."""

import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.coupling.micro_models import CellModel
from hmm_fenics.errors import InputError
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.materials import PowerLawConductivity, PowerLawElastic
from hmm_fenics.micro.nonlinear import (
    MicroNewtonError,
    NonlinearCellModel,
    finite_difference_tangent,
    nonlinear_cell_problem,
)
from hmm_fenics.solver import solve

GLASS = hf.IsotropicElastic(70.0, 0.2)
CASES = {
    "power-law conductivity": (
        hf.Diffusion(2),
        {"matrix": PowerLawConductivity(1.0, 4.0, 0.5), "inclusion": hf.Conductivity(10.0)},
        {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)},
        np.array([1.0, 0.5]),
    ),
    "power-law elasticity": (
        hf.Elasticity(2),
        {"matrix": PowerLawElastic(3.0, 0.35, 0.01, 0.3), "inclusion": GLASS},
        {"matrix": hf.IsotropicElastic(3.0, 0.35), "inclusion": GLASS},
        np.array([0.02, -0.005, 0.01]),
    ),
    "power-law elasticity 3D": (
        hf.Elasticity(3),
        {"matrix": PowerLawElastic(3.0, 0.35, 0.01, 0.5), "inclusion": GLASS},
        {"matrix": hf.IsotropicElastic(3.0, 0.35), "inclusion": GLASS},
        np.array([0.02, -0.005, 0.003, 0.004, 0.0, 0.01]),
    ),
}


def rve_for(dim):
    return hf.build_rve(
        hf.RVESpec("inclusion", dim, 0.3 if dim == 2 else 0.2, 0.07 if dim == 2 else 0.2)
    )


@pytest.mark.parametrize("case", list(CASES))
def test_consistent_tangent_matches_finite_differences(case):
    physics, materials, _, G = CASES[case]
    cell = nonlinear_cell_problem(physics, rve_for(physics.dim), materials)
    solution = cell.solve(G)
    assert solution.iterations >= 3  # really nonlinear at this gradient
    step = 1e-6 * np.abs(G).max()
    fd = finite_difference_tangent(lambda g: cell.solve(g, solution.fluctuation).flux, G, step)
    # central differences: O(step²) truncation plus round-off·|σ|/step ≈ 1e-9 relative
    np.testing.assert_allclose(solution.tangent, fd, atol=1e-7 * np.abs(solution.tangent).max())
    np.testing.assert_allclose(
        solution.tangent, solution.tangent.T, atol=1e-12 * np.abs(solution.tangent).max()
    )


@pytest.mark.parametrize("case", list(CASES))
def test_small_gradients_recover_the_linear_cell(case):
    physics, materials, linear, G = CASES[case]
    rve = rve_for(physics.dim)
    cell = nonlinear_cell_problem(physics, rve, materials)
    reference = hf.cell_problem(physics, rve, linear).effective_tensor
    small = cell.solve(1e-7 * G)
    np.testing.assert_allclose(small.tangent, reference, atol=1e-9 * np.abs(reference).max())
    np.testing.assert_allclose(small.flux, reference @ (1e-7 * G), rtol=1e-8, atol=1e-18)


def test_linear_cell_problem_refuses_nonlinear_phases():
    physics, materials, _, _ = CASES["power-law elasticity"]
    with pytest.raises(InputError, match="nonlinear: use nonlinear_cell_problem"):
        hf.cell_problem(physics, rve_for(2), materials)


def test_fe2_with_nonlinear_cells_converges_quadratically_and_matches_linear_limit():
    physics, materials, linear, _ = CASES["power-law elasticity"]
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))
    mesh = macro_mesh("rectangle", 0.25)
    pull = {"left": (0.0, None), "bottom": (None, 0.0), "right": (0.02, None)}
    nonlinear = MacroProblem(mesh, physics, pull)
    result = solve(nonlinear, NonlinearCellModel(nonlinear_cell_problem(physics, rve, materials)))
    r = np.array(result.residuals)
    assert r[-1] < 1e-10 * r[0]
    # quadratic convergence: the last reduction is far beyond linear rate
    assert r[-1] / r[-2] < (r[-2] / r[-3]) ** 1.5
    # softening matrix: less force for the same stretch than the linear cell
    linear_problem = MacroProblem(mesh, physics, pull)
    solve(linear_problem, CellModel(hf.cell_problem(physics, rve, linear)))
    assert result.iterations > 2
    flux_nl = nonlinear.quadrature.flux.x.array.reshape(-1, 3)[:, 0].mean()
    flux_lin = linear_problem.quadrature.flux.x.array.reshape(-1, 3)[:, 0].mean()
    assert flux_nl < flux_lin


def test_micro_failure_names_point_and_gradient_after_substeps():
    physics = hf.Diffusion(2)
    cell = nonlinear_cell_problem(
        physics,
        rve_for(2),
        {"matrix": PowerLawConductivity(1.0, 1.05, 1e-3), "inclusion": hf.Conductivity(1.0)},
        max_iterations=2,
    )
    model = NonlinearCellModel(cell)
    with pytest.raises(
        MicroNewtonError,
        match=r"at point 1 at x = \(0.5, 0.5\), macro gradient \[50.0, 0.0\].*8 load substeps",
    ):
        model.respond(np.array([[0.0, 0.0], [50.0, 0.0]]), np.array([[0.0, 0.0], [0.5, 0.5]]))


def test_fe2_micro_failure_names_iteration_rank_global_point_and_gradient():
    physics = hf.Diffusion(2)
    cell = nonlinear_cell_problem(
        physics,
        rve_for(2),
        {"matrix": PowerLawConductivity(1.0, 1.05, 1e-3), "inclusion": hf.Conductivity(1.0)},
        max_iterations=2,
    )
    problem = MacroProblem(macro_mesh("rectangle", 0.5), physics, {"left": 0.0, "right": 50.0})
    with pytest.raises(
        MicroNewtonError,
        match=r"^macro Newton iteration \d+: rank \d: micro solve failed at macro point \d+ \(global index\) at x = \(.*\), macro gradient \[.*\], also with 8 load substeps",
    ):
        solve(problem, NonlinearCellModel(cell))


def test_a_long_micro_batch_reports_its_progress(monkeypatch, caplog):
    import logging

    import hmm_fenics.micro.nonlinear as nonlinear

    monkeypatch.setattr(nonlinear, "PROGRESS_SECONDS", 0.0)  # every point counts as "long"
    cell = nonlinear_cell_problem(
        hf.Diffusion(2),
        rve_for(2),
        {"matrix": PowerLawConductivity(1.0, 1.5, 1.0), "inclusion": hf.Conductivity(10.0)},
    )
    G = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with caplog.at_level(logging.INFO, logger="hmm_fenics.micro.nonlinear"):
        NonlinearCellModel(cell).respond(G, np.zeros((3, 2)))
    reports = [r.getMessage() for r in caplog.records if "micro points" in r.getMessage()]
    assert reports and reports[-1].startswith("micro points 3/3 on this rank")
