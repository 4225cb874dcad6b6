"""Error-controlled prediction of nonlinear cells (issue 14 point 2).

References: the same cell solved by its plain Newton from zero (a different path to the
same converged state, tolerance 1e-10), central differences of converged fluctuations,
and the FE² run without prediction.
"""

import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.materials import PowerLawElastic
from hmm_fenics.micro.nonlinear import NonlinearCellModel, nonlinear_cell_problem
from hmm_fenics.stepping import load_path, march

PHYSICS = hf.Elasticity(2)
MATERIALS = {
    "matrix": PowerLawElastic(3.0, 0.35, 0.005, 0.3),
    "inclusion": hf.IsotropicElastic(70.0, 0.2),
}
G0 = np.array([0.02, -0.005, 0.01])
# Both answers meet ‖Pᵀr‖ ≤ 1e-10 (‖Uᵀr‖ + ‖Pᵀr₀‖); their flux difference is that residual
# through Kr⁻¹ and the lifts, amplified by the cell's stiffness contrast (70/3 here, and
# the softened matrix): 1e-8 relative leaves two decades over the tolerance.
FLUX_RTOL = 1e-8


@pytest.fixture(scope="module")
def cell():
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))
    return nonlinear_cell_problem(PHYSICS, rve, MATERIALS)


def test_the_lifting_is_the_derivative_of_the_fluctuation(cell):
    solution = cell.solve(G0)
    assert solution.iterations >= 3 and solution.factorizations == solution.iterations + 1
    h = 1e-6 * np.abs(G0).max()
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        plus = cell.solve(G0 + e, solution.fluctuation).fluctuation
        minus = cell.solve(G0 - e, solution.fluctuation).fluctuation
        fd = (plus - minus) / (2 * h)
        # central differences: O(h²) truncation plus (solve tolerance · |w|)/h
        np.testing.assert_allclose(solution.lifting[:, j], fd, atol=1e-6 * np.abs(fd).max())


def test_a_close_prediction_is_accepted_by_one_residual_and_matches_a_cold_solve(cell):
    anchor = cell.solve(G0)
    G = G0 * (1 + 1e-6)
    predicted = anchor.fluctuation + anchor.lifting @ (G - G0)
    before = cell.factorizations
    reused = cell.solve(G, predicted, (anchor.tangent, anchor.lifting))
    assert reused.iterations == 0 and cell.factorizations == before  # one residual, no factor
    np.testing.assert_array_equal(reused.tangent, anchor.tangent)
    fresh = cell.solve(G, predicted)
    assert fresh.iterations == 0 and fresh.factorizations == 1  # the tangent formed there
    cold = cell.solve(G)
    assert cold.iterations >= 3
    scale = np.abs(cold.flux).max()
    np.testing.assert_allclose(reused.flux, cold.flux, atol=FLUX_RTOL * scale)
    np.testing.assert_allclose(fresh.tangent, cold.tangent, atol=1e-8 * np.abs(cold.tangent).max())
    # the reused tangent is off by O(|ΔG|): C'·ΔG with |ΔG|/|G| = 1e-6
    np.testing.assert_allclose(reused.tangent, cold.tangent, atol=1e-5 * np.abs(cold.tangent).max())
    # a far prediction fails the check; the Newton continues from it to the same answer
    far = G0 * 1.3
    continued = cell.solve(far, anchor.fluctuation + anchor.lifting @ (far - G0))
    assert continued.iterations >= 1
    plain = cell.solve(far)
    np.testing.assert_allclose(
        continued.flux, plain.flux, atol=FLUX_RTOL * np.abs(plain.flux).max()
    )
    # the first-order prediction is closer than the warm start alone: fewer Newton steps
    assert continued.iterations < cell.solve(far, anchor.fluctuation).iterations


def newton_like(n_points, seed=0):
    """Gradients of points along a macro Newton: big step, then quadratically shrinking."""
    rng = np.random.default_rng(seed)
    final = G0 * rng.uniform(0.5, 1.5, (n_points, 1))
    direction = rng.standard_normal((n_points, 3)) * np.abs(G0).max()
    return [final + direction * d for d in (0.3, 3e-2, 1e-3, 1e-6, 1e-12, 0.0)]


@pytest.mark.parametrize("reuse", [0.0, 1e-3])
def test_model_answers_within_the_tolerance_of_the_run_without_prediction(cell, reuse):
    points = np.zeros((4, 2))
    off, on = NonlinearCellModel(cell, predict=False), NonlinearCellModel(cell, tangent_reuse=reuse)
    factorizations = {}
    for G in newton_like(4):
        a = off.respond(G, points)
        b = on.respond(G, points)
        scale = np.abs(a.flux).max()
        np.testing.assert_allclose(b.flux, a.flux, atol=FLUX_RTOL * scale)
        # a reused tangent is C(G_a) with |G − G_a| ≤ 1e-3 |G_a|: off by C'·ΔG ≤ 1e-3 relative
        np.testing.assert_allclose(
            b.tangent, a.tangent, atol=max(reuse, 1e-8) * np.abs(a.tangent).max()
        )
    for name, model in (("off", off), ("on", on)):
        factorizations[name] = model.solve_counts["factorizations"]
        assert model.solve_counts["newton"] + model.solve_counts["predicted"] == 6 * 4
    assert off.solve_counts["predicted"] == 0
    # the last two batches move by |ΔG| ≤ 1e-6 |G| from the previous answers: the Taylor
    # remainder (~1e-12 relative) passes the 1e-10 check, so they are accepted predictions
    assert on.solve_counts["predicted"] >= 2 * 4
    assert factorizations["on"] < factorizations["off"]
    if reuse:  # accepted within 1e-3 of the anchor: no factorization, where the Newton
        # needs at least one (its tangent) per point
        assert factorizations["on"] <= factorizations["off"] - 2 * 4


def test_counts_restart_after_commit_and_rollback_keeps_the_anchors(cell):
    model = NonlinearCellModel(cell)
    points = np.zeros((2, 2))
    G = np.vstack([G0, 0.5 * G0])
    model.respond(G, points)
    model.commit()
    assert model.solve_counts["newton"] == 2  # the step's counts stay readable after commit
    model.respond(G * 1.1, points)
    assert model.solve_counts["newton"] == 2 and model.solve_counts["predicted"] == 0
    model.rollback()
    before = cell.factorizations
    model.respond(G, points)  # back at the committed gradients: the warm start is the answer
    # the anchors stayed at the rolled-back gradients (converged states all the same), 10 %
    # away: the tangent is formed afresh, one factorization per point
    assert model.solve_counts == {"newton": 0, "predicted": 2, "factorizations": 2}
    assert cell.factorizations == before + 2
    model.respond(G, points)  # now the anchors are here: nothing to factor
    assert model.solve_counts == {"newton": 0, "predicted": 4, "factorizations": 2}
    assert model.anchor_bytes == 2 * (3 + 9 + 3 * cell.n_unknowns) * 8


def test_a_failed_prediction_falls_back_to_the_warm_start(cell):
    points = np.zeros((1, 2))
    model, plain = NonlinearCellModel(cell), NonlinearCellModel(cell, predict=False)
    for m in (model, plain):
        m.respond(G0[None, :], points)
    model._anchors[2][:] = np.nan  # a poisoned lifting: the prediction is not finite
    a = model.respond(1.2 * G0[None, :], points)
    b = plain.respond(1.2 * G0[None, :], points)
    np.testing.assert_allclose(a.flux, b.flux, atol=FLUX_RTOL * np.abs(b.flux).max())
    assert model.solve_counts["newton"] == 2 and model.solve_counts["predicted"] == 0


def test_fe2_ramp_with_prediction_matches_without_and_factors_less():
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.15))
    path = load_path([(0, 0), (1, 1)], steps=2)
    runs = {}
    for predict in (False, True):
        problem = MacroProblem(
            macro_mesh("plate-with-hole", 0.5, params={"L": 1.0, "R": 0.25}),
            PHYSICS,
            {"left": (0.0, None), "bottom": (None, 0.0), "right": (0.03, None)},
            quadrature_degree=1,
        )
        model = NonlinearCellModel(nonlinear_cell_problem(PHYSICS, rve, MATERIALS), predict=predict)
        records = [i.record for i in march(problem, model, path, progress=False)]
        runs[predict] = (problem.u.x.array.copy(), records)
    (u_off, off), (u_on, on) = runs[False], runs[True]
    # the macro Newton converges to 1e-10 in both; the micro answers differ within their
    # tolerance, which the macro solve carries over with the contrast factor
    np.testing.assert_allclose(u_on, u_off, atol=1e-8 * np.abs(u_off).max())
    # the reused tangents are within 1e-3 of the consistent one: the macro Newton keeps its
    # quadratic convergence (the same iteration counts)
    assert [r["iterations"] for r in on] == [r["iterations"] for r in off]
    for a, b in zip(on, off, strict=True):
        assert a["micro_solves"]["predicted"] > 0 and b["micro_solves"]["predicted"] == 0
        assert a["micro_solves"]["factorizations"] < b["micro_solves"]["factorizations"]
