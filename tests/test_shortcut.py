"""Fewer micro factorizations (issue 14): the exact elastic shortcut and Krylov Newton steps.

References: closed-form affine predictors of the laws (isotropic stiffness from E, ν by the
Lamé constants, the Prony gain), the linear cell problem (its effective tensor), and the
same cell solved by its plain Newton (every step refactored), which converges to 1e-10.
"""

import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.micro.history_model import HistoryCellModel
from hmm_fenics.micro.shortcut import pcg
from hmm_fenics.point_laws import Elastic, J2Plasticity, Maxwell
from hmm_fenics.stepping import micro_solves, solves_line

GLASS = (70.0, 0.2)
MATRIX = (3.0, 0.35, 0.02, 0.3, 0.2)  # E, nu, sigma_y, H_iso, H_kin


def lame_stiffness(E, nu):
    """3D Mandel stiffness from the Lamé constants (independent of point_laws' helper)."""
    lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
    C = np.zeros((6, 6))
    C[:3, :3] = lam
    C[np.arange(6), np.arange(6)] += 2 * mu
    return C


def walk(cell, gradients, dt=1.0):
    row, committed = np.zeros(cell.width_internal), np.zeros(cell.physics.n_components)
    out = []
    for G in gradients:
        s = cell.solve(G, row, committed, dt)
        row, committed = s.internal_row, G
        out.append(s)
    return out


@pytest.fixture(scope="module")
def inclusion2d():
    return hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))


def composite(rve, dim=2, **options):
    laws = {"matrix": J2Plasticity(*MATRIX), "inclusion": Elastic(*GLASS)}
    return history_cell_problem(hf.Elasticity(dim), rve, laws, **options)


def test_j2_predictor_is_the_elastic_trial_and_flow_is_reported():
    law = J2Plasticity(*MATRIX)
    rng = np.random.default_rng(3)
    state = np.zeros((4, law.n_vars))
    state[:, 0:6] = 0.01 * rng.standard_normal((4, 6))  # committed plastic strains
    state[:, 12] = [0.0, 0.01, 0.02, 0.03]
    C, sigma0 = law.predictor(state, 0.5)
    expected = lame_stiffness(*MATRIX[:2])
    np.testing.assert_allclose(C, expected, rtol=1e-13)
    np.testing.assert_allclose(sigma0, -state[:, 0:6] @ expected, rtol=1e-12)
    small = state[:, 0:6] + 1e-4 * rng.standard_normal((4, 6))  # σ ~ 3e-4 < σ_y = 0.02
    stress, _, new = law.update(small, state, 0.5)
    assert not law.flowed(state, new).any()
    np.testing.assert_allclose(stress, small @ C + sigma0, rtol=1e-12, atol=1e-16)
    large = state[:, 0:6] + 0.05 * rng.standard_normal((4, 6))
    _, _, new = law.update(large, state, 0.5)
    assert law.flowed(state, new).all()


def test_maxwell_predictor_is_its_whole_step_with_the_prony_modulus():
    prony = ((2.0, 0.5), (5.0, 3.0))
    law = Maxwell(1.0, 0.3, prony)
    rng = np.random.default_rng(4)
    state = 0.01 * rng.standard_normal((3, law.n_vars))
    dt = 0.7
    C, sigma0 = law.predictor(state, dt)
    gain = sum(Ei * tau / dt * (1 - np.exp(-dt / tau)) for Ei, tau in prony)
    np.testing.assert_allclose(C, lame_stiffness(1.0 + gain, 0.3), rtol=1e-13)
    for scale in (1e-4, 1.0):  # affine at every strain: no flow to detect
        strain = scale * rng.standard_normal((3, 6))
        stress, tangent, new = law.update(strain, state, dt)
        assert not law.flowed(state, new).any()
        np.testing.assert_allclose(stress, strain @ C + sigma0, rtol=1e-12, atol=1e-14 * scale)
        np.testing.assert_allclose(tangent, np.broadcast_to(C, (3, 6, 6)), rtol=1e-13)


def test_shortcut_of_an_elastic_cell_is_the_linear_cell(inclusion2d):
    physics = hf.Elasticity(2)
    linear = hf.cell_problem(
        physics,
        inclusion2d,
        {"matrix": hf.IsotropicElastic(*MATRIX[:2]), "inclusion": hf.IsotropicElastic(*GLASS)},
    )
    cell = composite(inclusion2d)
    G = np.array([1e-3, -4e-4, 2e-4])  # well below yield (σ ~ 5e-3 < 0.02)
    s = cell.solve(G, np.zeros(cell.width_internal), np.zeros(cell.physics.n_components))
    assert s.method == "shortcut" and s.iterations == 0
    C = linear.effective_tensor
    # both exact discrete solutions by direct solves: round-off
    np.testing.assert_allclose(s.tangent, C, atol=1e-12 * np.abs(C).max())
    np.testing.assert_allclose(s.flux, C @ G, atol=1e-12 * np.abs(C @ G).max())


@pytest.mark.parametrize("linear_solver", ["direct", "krylov"])
def test_shortcut_and_krylov_give_the_plain_newton_answers(inclusion2d, linear_solver):
    """Load, unload in the elastic range, reload, reverse: every step equals the plain run.

    The reload goes past the previous maximum (2 → 2.5): reloading exactly to it puts points
    on the yield surface to the Newton tolerance, where the elastic and the plastic tangent
    are both right and each run may pick either (the fluxes still agree to 1e-14).
    """
    direction = np.array([1.0, -0.3, 0.4])
    factors = [0.3, 1.0, 2.0, 1.5, 1.0, 2.5, 3.0, 2.0, 0.0, -2.0, -3.0, -2.5]
    gradients = [0.004 * f * direction for f in factors]
    plain = walk(composite(inclusion2d, shortcut=False), gradients)
    fast_cell = composite(inclusion2d, linear_solver=linear_solver)
    fast = walk(fast_cell, gradients)
    methods = [s.method for s in fast]
    assert methods.count("shortcut") >= 5 and methods.count("newton") >= 4  # both paths ran
    assert methods[0] == "shortcut" and methods[3] == "shortcut" and methods[4] == "shortcut"
    assert max(s.plastic_strain for s in plain) > 1e-3
    # Newton stops at |Pᵀr| ≤ 1e-10 (|Y||⟨σ⟩| + |r0|): answers agree to that relative level
    # (direct) or the CG tolerances of the Krylov steps and tangent (1e-3 forcing, then the
    # end tolerance; tangent columns to 1e-10): 1e-8 for the Krylov tangent.
    tol = 1e-10 if linear_solver == "direct" else 1e-8
    for a, b in zip(fast, plain, strict=True):
        np.testing.assert_allclose(a.flux, b.flux, atol=1e-10 * np.abs(b.flux).max())
        np.testing.assert_allclose(a.tangent, b.tangent, atol=tol * np.abs(b.tangent).max())
        np.testing.assert_allclose(
            a.internal_row, b.internal_row, atol=1e-10 * max(np.abs(b.internal_row).max(), 1.0)
        )
        np.testing.assert_allclose(a.plastic_strain, b.plastic_strain, atol=1e-12)
        np.testing.assert_allclose(a.stored_energy, b.stored_energy, rtol=1e-10)
    shortcut_factorizations = [s.factorizations for s in fast if s.method == "shortcut"]
    assert shortcut_factorizations[0] == 1 and sum(shortcut_factorizations[1:]) == 0
    if linear_solver == "krylov":
        assert sum(s.factorizations for s in fast) == 1  # the elastic one, once
        assert all(s.krylov_iterations > 0 for s in fast if s.method == "newton")
    else:
        newton = [s for s in fast if s.method == "newton"]
        assert all(s.factorizations == s.iterations + 1 for s in newton)


def test_maxwell_cell_takes_the_shortcut_every_step_with_one_factor_per_dt(inclusion2d):
    laws = {"matrix": Maxwell(1.0, 0.3, ((2.0, 0.5), (5.0, 3.0))), "inclusion": Elastic(*GLASS)}
    physics = hf.Elasticity(2)
    plain = history_cell_problem(physics, inclusion2d, laws, shortcut=False)
    fast = history_cell_problem(physics, inclusion2d, laws)
    row_p = row_f = np.zeros(plain.width_internal)
    committed = np.zeros(2 + 1)
    steps = [(0.01, 0.1), (0.02, 0.1), (0.02, 0.4), (0.02, 0.1), (0.0, 0.4)]  # (G11, dt)
    for G11, dt in steps:
        G = np.array([G11, -0.3 * G11, 0.5 * G11])
        a = fast.solve(G, row_f, committed, dt)
        b = plain.solve(G, row_p, committed, dt)
        assert a.method == "shortcut"
        np.testing.assert_allclose(a.flux, b.flux, atol=1e-10 * np.abs(b.flux).max())
        np.testing.assert_allclose(a.tangent, b.tangent, atol=1e-10 * np.abs(b.tangent).max())
        np.testing.assert_allclose(a.internal_row, b.internal_row, atol=1e-12)
        row_f, row_p, committed = a.internal_row, b.internal_row, G
    assert len(fast.elastic._factors) == 2  # dt = 0.1 and 0.4
    assert fast.factorizations == 2


def test_history_model_counts_the_solves_of_a_step(inclusion2d):
    model = HistoryCellModel(composite(inclusion2d))
    direction = np.array([1.0, -0.3, 0.4])
    gradients = np.array([0.001 * direction, 0.02 * direction, 0.0 * direction])
    points = np.zeros((3, 2))
    model.begin_step(1.0, 1.0)
    model.respond(gradients, points)
    model.respond(gradients, points)  # a second macro iteration of the same step
    counts = model.solve_counts
    assert counts["shortcut"] == 4 and counts["newton"] == 2 and counts["predicted"] == 0
    assert counts["factorizations"] == 1 + sum(model.iterations[i] + 1 for i in [1]) * 2
    model.begin_step(2.0, 1.0)
    assert model.solve_counts["newton"] == 0


def test_micro_solves_sums_over_ranks_and_reads_on_the_progress_line():
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    counts = {"newton": 2, "shortcut": 5, "factorizations": 7}
    total = micro_solves(comm, counts)
    assert total == {name: value * comm.size for name, value in counts.items()}
    assert micro_solves(comm, None) is None
    line = solves_line(total)
    assert f"{2 * comm.size} by Newton" in line and f"{7 * comm.size} factorizations" in line


def test_pcg_solves_spd_blocks_columnwise():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((40, 40))
    A = A @ A.T + 40 * np.eye(40)
    M = np.diag(np.diag(A))
    B = rng.standard_normal((40, 3))
    X, iterations = pcg(lambda x: A @ x, lambda r: np.linalg.solve(M, r), B, 1e-12)
    np.testing.assert_allclose(A @ X, B, atol=1e-10 * np.abs(B).max())
    assert 0 < iterations <= 40
    x, _ = pcg(lambda x: A @ x, lambda r: r, B[:, 0], 1e-12)
    assert x.shape == (40,)
    np.testing.assert_allclose(A @ x, B[:, 0], atol=1e-10 * np.abs(B).max())
