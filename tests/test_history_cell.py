"""History cells: J2 and Maxwell phases at micro quadrature points, states that commit and roll back.

References are single-point laws evaluated here (homogeneous cells, laminates solved exactly
by a small Newton over the layer strains), the linear cell problem (elastic phases), central
differences (the consistent tangent) and the Prony series (relaxation).
"""

import numpy as np
import pytest
from history_laws import j2, path

import hmm_fenics as hf
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.point_laws import IN_PLANE, Elastic

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
    return np.zeros(cell.width_internal), np.zeros(cell.n_unknowns)


def walk(cell, gradients, dt=1.0):
    """Solve a strain path point by point, committing every step."""
    row, w = virgin(cell)
    out = []
    for G in gradients:
        s = cell.solve(G, row, w, dt)
        row, w = s.internal_row, s.fluctuation
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
    n_cells = inclusion2d.mesh.topology.index_map(2).size_local
    expected = expr.eval(inclusion2d.mesh, np.arange(n_cells, dtype=np.int32)).reshape(-1, 3)
    # quadrature dofs are numbered cell by cell in serial: row c·k + point
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
    law = j2(*MATRIX)
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
