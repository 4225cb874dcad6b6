"""History cells: J2 and Maxwell phases at micro quadrature points, states that commit and roll back.

References are single-point laws evaluated here (homogeneous cells, laminates solved exactly
by a small Newton over the layer strains), the linear cell problem (elastic phases), central
differences (the consistent tangent) and the Prony series (relaxation).
"""

import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.errors import InputError
from hmm_fenics.materials import PowerLawElastic
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.micro.history_model import HistoryCellModel
from hmm_fenics.micro.nonlinear import MicroNewtonError, finite_difference_tangent
from hmm_fenics.point_laws import IN_PLANE, Elastic, J2Plasticity, Maxwell, isotropic_stiffness

GLASS = (70.0, 0.2)
MATRIX = (3.0, 0.35, 0.02, 0.3, 0.2)  # E, nu, sigma_y, H_iso, H_kin (epoxy-like units)


def embed(G):
    G = np.asarray(G, dtype=float)
    if len(G) == 6:
        return G
    out = np.zeros(6)
    out[IN_PLANE] = G
    return out


def virgin(cell):
    """The committed state before any step: internal row and gradient, zero."""
    return np.zeros(cell.width_internal), np.zeros(cell.physics.n_components)


def path(law, strains, dt=1.0):
    """Single-point responses along a path of 3D strains ``(steps, 6)``: (σ, C, state) each."""
    state = np.zeros((1, law.n_vars))
    out = []
    for eps in strains:
        stress, tangent, state = law.update(np.asarray(eps, dtype=float)[None], state, dt)
        out.append((stress[0], tangent[0], state[0]))
    return out


def walk(cell, gradients, dt=1.0):
    """Solve a strain path point by point, committing every step."""
    row, committed = virgin(cell)
    out = []
    for G in gradients:
        s = cell.solve(G, row, committed, dt)
        row, committed = s.internal_row, G
        out.append(s)
    return out


@pytest.fixture(scope="module")
def inclusion2d():
    return hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))


@pytest.mark.parametrize("degree", [1, 2])
def test_strain_operator_is_the_strain_at_the_quadrature_points(inclusion2d, degree):
    import ufl
    from dolfinx import fem

    physics = hf.Elasticity(2)
    cell = history_cell_problem(
        physics, inclusion2d, {"matrix": Elastic(3.0, 0.35), "inclusion": Elastic(*GLASS)}, degree
    )
    wr = np.random.default_rng(1).standard_normal(cell.n_unknowns)
    w = fem.Function(cell.V)
    w.x.array[:] = cell.P @ wr
    import basix

    X, _ = basix.make_quadrature(inclusion2d.mesh.basix_cell(), cell.quadrature_degree)
    expr = fem.Expression(physics.to_mandel(ufl.sym(ufl.grad(w))), X)
    cells = cell.point_cells.astype(np.int32)  # the cell's point numbering: phase by phase
    expected = expr.eval(inclusion2d.mesh, cells).reshape(-1, 3)
    np.testing.assert_allclose(cell.strains(np.zeros(3), wr), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dim", [2, 3])
def test_elastic_history_cell_is_the_linear_cell(dim):
    rve = hf.build_rve(
        hf.RVESpec("inclusion", dim, 0.3 if dim == 2 else 0.2, 0.1 if dim == 2 else 0.25)
    )
    physics = hf.Elasticity(dim)
    linear = hf.cell_problem(
        physics,
        rve,
        {"matrix": hf.IsotropicElastic(3.0, 0.35), "inclusion": hf.IsotropicElastic(*GLASS)},
    )
    cell = history_cell_problem(
        physics, rve, {"matrix": Elastic(3.0, 0.35), "inclusion": Elastic(*GLASS)}
    )
    assert cell.width_internal == 0
    G = np.linspace(0.01, -0.004, physics.n_components)
    solution = cell.solve(G, *virgin(cell))
    C = linear.effective_tensor
    # both are the exact discrete solution (direct solves): round-off of the assembly
    np.testing.assert_allclose(solution.tangent, C, atol=1e-12 * np.abs(C).max())
    np.testing.assert_allclose(solution.flux, C @ G, atol=1e-12 * np.abs(C @ G).max())
    np.testing.assert_allclose(solution.stored_energy, 0.5 * G @ C @ G, rtol=1e-10)
    assert solution.dissipation == 0.0 and solution.plastic_strain == 0.0


@pytest.mark.parametrize("dim", [2, 3])
def test_homogeneous_j2_cell_follows_the_single_point_law(dim):
    """Load, unload, reverse: the cell is the point law to 1e-10 at every step."""
    rve = hf.build_rve(
        hf.RVESpec("inclusion", dim, 0.3 if dim == 2 else 0.1, 0.2 if dim == 2 else 0.3)
    )
    physics = hf.Elasticity(dim)
    law = J2Plasticity(*MATRIX)
    cell = history_cell_problem(physics, rve, {"matrix": law, "inclusion": law})
    direction = (
        np.array([1.0, -0.4, 0.5]) if dim == 2 else np.array([1.0, -0.4, 0.2, 0.1, -0.3, 0.5])
    )
    factors = [0.5, 1.0, 2.0, 3.0, 1.5, 0.0, -2.0, -3.5, -1.0]
    gradients = [0.01 * f * direction for f in factors]
    cells = walk(cell, gradients)
    points = path(law, [embed(G) for G in gradients])
    comps = IN_PLANE if dim == 2 else np.arange(6)
    assert max(p[2][12] for p in points) > 0.01  # really plastic, and reversed
    for G, s, (stress, tangent, state) in zip(gradients, cells, points, strict=True):
        scale = np.abs(stress).max()
        # uniform fields: the fluctuation stays zero; round-off of the quadrature sums only
        np.testing.assert_allclose(s.flux, stress[comps], atol=1e-10 * scale)
        np.testing.assert_allclose(
            s.tangent, tangent[comps][:, comps], atol=1e-10 * np.abs(tangent).max()
        )
        np.testing.assert_allclose(s.plastic_strain, state[12], rtol=1e-10)
        np.testing.assert_allclose(s.dissipation, state[13], rtol=1e-10, atol=1e-16)
        np.testing.assert_allclose(s.sigma33, stress[2], atol=1e-10 * scale)
        energy = law.free_energy(embed(G)[None], state[None])[0]
        np.testing.assert_allclose(s.stored_energy, energy, rtol=1e-10)


def laminate_reference(laws, f, gradients):
    """Exact 2-layer laminate (layers normal to x1, plane strain) from the point laws.

    Layer A (fraction f) has strain G + a, layer B G − f/(1 − f) a, with a jump a in the
    components (11, √2·12) that may differ across the interface; a solves traction
    continuity σ_A·n = σ_B·n (Mandel components 11 and 12) by Newton with the laws' tangents.
    Returns the macro stress f σ_A + (1 − f) σ_B (in-plane Mandel) per step.
    """
    jump = np.array([0, 5])  # 3D Mandel 11 and √2·12
    states = [np.zeros((1, law.n_vars)) for law in laws]
    out = []
    for G in gradients:
        a = np.zeros(6)
        for _ in range(50):
            strains = [embed(G) + a, embed(G) - f / (1 - f) * a]
            results = [
                law.update(e[None], s, 1.0) for law, e, s in zip(laws, strains, states, strict=True)
            ]
            r = (results[0][0][0] - results[1][0][0])[jump]
            J = (
                results[0][1][0][np.ix_(jump, jump)]
                + f / (1 - f) * results[1][1][0][np.ix_(jump, jump)]
            )
            step = np.linalg.solve(J, r)
            a[jump] -= step
            if np.abs(step).max() < 1e-15:
                break
        strains = [embed(G) + a, embed(G) - f / (1 - f) * a]
        results = [
            law.update(e[None], s, 1.0) for law, e, s in zip(laws, strains, states, strict=True)
        ]
        states = [res[2] for res in results]
        out.append((f * results[0][0][0] + (1 - f) * results[1][0][0])[IN_PLANE])
    return out


@pytest.mark.parametrize("direction", ["across", "along", "shear along"])
def test_laminate_with_a_plastic_layer_is_the_exact_layered_solution(direction):
    f = 0.4
    rve = hf.build_rve(hf.RVESpec("laminate", 2, f, 0.1))
    plastic, elastic = J2Plasticity(*MATRIX), Elastic(*GLASS)
    cell = history_cell_problem(
        hf.Elasticity(2), rve, {"inclusion": plastic, "matrix": elastic}, rtol=1e-13
    )
    unit = {"across": [1.0, 0.0, 0.0], "along": [0.0, 1.0, 0.0], "shear along": [0.0, 0.0, 1.0]}
    factors = [1.0, 2.0, 4.0, 1.0, -2.0, -4.0]
    gradients = [0.01 * k * np.array(unit[direction]) for k in factors]
    cells = walk(cell, gradients)
    reference = laminate_reference([plastic, elastic], f, gradients)
    assert cells[2].plastic_strain > 1e-3  # the layer yields, and reverse-yields later
    assert max(s.iterations for s in cells) >= 1  # the fluctuation is solved for, not zero
    for s, expected in zip(cells, reference, strict=True):
        # conforming layers: the P1 solution is the exact one; Newton to 1e-13
        np.testing.assert_allclose(s.flux, expected, atol=1e-10 * np.abs(expected).max())


def check_tangent_at_a_plastic_state(cell):
    """The 2D cell's tangent against central differences after a plastic step; the solution."""
    G0 = np.array([0.02, -0.005, 0.01])
    first = cell.solve(G0, *virgin(cell))
    assert first.plastic_strain > 1e-3
    G = np.array([0.03, -0.002, 0.015])
    row = first.internal_row
    solution = cell.solve(G, row, G0)
    step = 1e-6 * np.abs(G).max()
    fd = finite_difference_tangent(lambda g: cell.solve(g, row, G0).flux, G, step)
    # central differences: O(step²) plus Newton/round-off error / step; relative 1e-6 asked
    scale = np.abs(solution.tangent).max()
    np.testing.assert_allclose(solution.tangent, fd, atol=1e-6 * scale)
    return G, solution


def assert_consistent_tangent_at_a_plastic_state(rve):
    """A 2D J2 matrix + elastic glass cell, loaded into yield: its tangent = central differences."""
    cell = history_cell_problem(
        hf.Elasticity(2),
        rve,
        {"matrix": J2Plasticity(*MATRIX), "inclusion": Elastic(*GLASS)},
        rtol=1e-13,
    )
    check_tangent_at_a_plastic_state(cell)


def test_consistent_macro_tangent_matches_central_differences_at_a_plastic_state(inclusion2d):
    assert_consistent_tangent_at_a_plastic_state(inclusion2d)


def test_consistent_macro_tangent_in_3d_matches_central_differences_at_a_plastic_state():
    """A coarse 3D cell (J2 matrix, elastic sphere), all six strain components loaded."""
    rve = hf.build_rve(hf.RVESpec("inclusion", 3, 0.1, 0.3))
    cell = history_cell_problem(
        hf.Elasticity(3),
        rve,
        {"matrix": J2Plasticity(*MATRIX), "inclusion": Elastic(*GLASS)},
        rtol=1e-13,
    )
    G0 = 0.01 * np.array([2.0, -0.5, 0.3, 0.8, -0.4, 1.0])
    first = cell.solve(G0, *virgin(cell))
    assert first.plastic_strain > 1e-3
    G = 0.01 * np.array([3.0, -0.2, 0.1, 1.2, -0.6, 1.5])
    row = first.internal_row
    solution = cell.solve(G, row, G0)
    assert solution.plastic_strain > first.plastic_strain  # still flowing: a plastic state
    step = 1e-6 * np.abs(G).max()
    fd = finite_difference_tangent(lambda g: cell.solve(g, row, G0).flux, G, step)
    # as in 2D: O(step²) truncation plus Newton/round-off error / step, relative 1e-6 asked
    scale = np.abs(solution.tangent).max()
    np.testing.assert_allclose(solution.tangent, fd, atol=1e-6 * scale)
    assert np.abs(solution.tangent - solution.tangent.T).max() < 1e-10 * scale  # associative


def test_a_solve_never_reads_the_trial_state(inclusion2d):
    cell = history_cell_problem(
        hf.Elasticity(2),
        inclusion2d,
        {"matrix": J2Plasticity(*MATRIX), "inclusion": Elastic(*GLASS)},
    )
    model = HistoryCellModel(cell)
    points = np.zeros((2, 2))
    G1 = np.array([[0.02, 0.0, 0.0], [0.0, 0.015, 0.01]])
    G2 = np.array([[0.03, -0.01, 0.0], [-0.01, 0.02, 0.02]])
    model.respond(G1, points)
    model.commit()
    committed = model.state_rows()
    answer = model.respond(G2, points)
    model.respond(3 * G2, points)  # a trial that is never committed
    again = model.respond(G2, points)
    np.testing.assert_array_equal(again.flux, answer.flux)
    np.testing.assert_array_equal(again.tangent, answer.tangent)
    model.rollback()
    assert not model.store.pending.any()
    np.testing.assert_array_equal(model.store.committed, committed)
    rolled = model.respond(G2, points)
    np.testing.assert_array_equal(rolled.flux, answer.flux)
    # the committed rows alone reproduce the answer in a fresh model (migration, restart)
    fresh = HistoryCellModel(cell)
    fresh.set_state_rows(committed)
    np.testing.assert_array_equal(fresh.respond(G2, points).flux, answer.flux)
    averages = fresh.averages()
    assert set(averages) == {
        "stored_energy",
        "dissipation",
        "viscous_dissipation",
        "plastic_strain",
        "sigma33",
    }
    from hmm_fenics.coupling.out_of_plane import OutOfPlaneStress

    sigma33 = OutOfPlaneStress(fresh, {})(G2, points)
    np.testing.assert_array_equal(sigma33, averages["sigma33"])
    assert (averages["dissipation"] > 0).all()
    assert model.state_width() == 3 + cell.width_internal  # no committed fluctuation
    # committed rows, trial rows of gradient and fluctuation only, a flag per point
    assert model.store.nbytes == 2 * (8 * (model.state_width() + 3 + cell.n_unknowns) + 1)


def test_a_failing_point_is_named_and_nothing_is_committed(inclusion2d):
    cell = history_cell_problem(
        hf.Elasticity(2),
        inclusion2d,
        {"matrix": J2Plasticity(*MATRIX), "inclusion": Elastic(*GLASS)},
        max_iterations=1,
    )
    model = HistoryCellModel(cell)
    points = np.array([[0.0, 0.0], [0.25, 0.5]])
    with pytest.raises(
        MicroNewtonError, match=r"macro point 17 \(global index\) at x = \(0.25, 0.5\)"
    ) as err:
        model.respond(np.array([[1e-4, 0.0, 0.0], [0.05, 0.0, 0.0]]), points, np.array([3, 17]))
    assert err.value.point == 1
    model.rollback()
    assert not model.store.committed.any()


@pytest.mark.parametrize(
    "physics, materials, match",
    [
        (
            hf.Elasticity(2, "stress"),
            {"matrix": Elastic(3.0, 0.35), "inclusion": Elastic(*GLASS)},
            "plane strain only",
        ),
        (
            hf.Diffusion(2),
            {"matrix": Elastic(3.0, 0.35), "inclusion": Elastic(*GLASS)},
            "elasticity",
        ),
        (
            hf.Elasticity(2),
            {"matrix": PowerLawElastic(3.0, 0.35, 0.01, 0.5), "inclusion": Elastic(*GLASS)},
            r"materials.matrix: PowerLawElastic has no point law",
        ),
    ],
)
def test_unsupported_input_is_an_input_error(inclusion2d, physics, materials, match):
    with pytest.raises(InputError, match=match):
        history_cell_problem(physics, inclusion2d, materials)


@pytest.mark.parametrize("dim", [2, 3])
def test_maxwell_cell_relaxes_as_the_prony_series(dim):
    E, nu, prony = 2.0, 0.3, ((1.5, 0.5), (0.7, 4.0))
    law = Maxwell(E, nu, prony)
    rve = hf.build_rve(
        hf.RVESpec("inclusion", dim, 0.3 if dim == 2 else 0.1, 0.2 if dim == 2 else 0.3)
    )
    cell = history_cell_problem(hf.Elasticity(dim), rve, {"matrix": law, "inclusion": law})
    comps = IN_PLANE if dim == 2 else np.arange(6)
    G = 0.01 * (
        np.array([1.0, -0.3, 0.4]) if dim == 2 else np.array([1.0, -0.3, 0.2, 0.1, 0.0, 0.4])
    )
    ramp = 0.2
    row, committed = virgin(cell)
    s = cell.solve(G, row, committed, ramp)  # linear ramp 0 → G over [0, ramp]
    times = [ramp]
    fluxes = [s.flux]
    for dt in (0.1, 0.4, 1.0, 3.0):
        s = cell.solve(G, s.internal_row, G, dt)  # held strain
        times.append(times[-1] + dt)
        fluxes.append(s.flux)
    eps = embed(G)
    for t, flux in zip(times, fluxes, strict=True):
        expected = isotropic_stiffness(E, nu) @ eps
        for E_i, tau in prony:
            # exact response of a Maxwell branch to a ramp of length `ramp` then a hold
            factor = tau / ramp * (1 - np.exp(-ramp / tau)) * np.exp(-(t - ramp) / tau)
            expected = expected + factor * isotropic_stiffness(E_i, nu) @ eps
        np.testing.assert_allclose(flux, expected[comps], atol=1e-12 * np.abs(expected).max())
