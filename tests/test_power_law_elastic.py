"""The power-law elastic phase is the documented 3D law, also in 2D (plane strain, ε33 = 0).

The reference is the law written here again, independently, for one material point in NumPy
on full 3 × 3 tensors. A homogeneous cell (both phases the same law) under a macro strain has
zero fluctuation, so its mean stress is the law's stress at that strain and its consistent
tangent the law's tangent, which is checked against central differences of the NumPy law.
"""

import textwrap

import numpy as np
import pytest
from conftest import cli_error

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.errors import InputError
from hmm_fenics.materials import PowerLawElastic
from hmm_fenics.micro.nonlinear import nonlinear_cell_problem

LAW = PowerLawElastic(E=3.0, nu=0.35, eps0=0.01, n=0.3)
SQRT2 = np.sqrt(2.0)
PAIRS = {2: [(0, 0), (1, 1), (0, 1)], 3: [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]}


def stress_3d(eps: np.ndarray, law: PowerLawElastic = LAW) -> np.ndarray:
    """σ = K tr ε I + 2 μ (1 + (ε_eq/ε0)²)^((n−1)/2) dev ε on a 3 × 3 strain."""
    mu = law.E / (2 * (1 + law.nu))
    bulk = law.E / (3 * (1 - 2 * law.nu))
    dev = eps - np.trace(eps) / 3 * np.eye(3)
    eq = np.sqrt(2.0 / 3.0 * np.sum(dev * dev))
    secant = mu * (1 + (eq / law.eps0) ** 2) ** ((law.n - 1) / 2)
    return bulk * np.trace(eps) * np.eye(3) + 2 * secant * dev


def mandel_stress(G: np.ndarray) -> np.ndarray:
    """The law's stress at the Mandel strain G (2D: embedded with ε33 = 0), as Mandel."""
    dim = 2 if len(G) == 3 else 3
    eps = np.zeros((3, 3))
    for a, (i, j) in enumerate(PAIRS[dim]):
        value = G[a] if i == j else G[a] / SQRT2
        eps[i, j] = eps[j, i] = value
    sigma = stress_3d(eps)
    return np.array([sigma[i, j] if i == j else SQRT2 * sigma[i, j] for i, j in PAIRS[dim]])


def central_differences(G: np.ndarray, step: float) -> np.ndarray:
    columns = []
    for j in range(len(G)):
        e = np.zeros(len(G))
        e[j] = step
        columns.append((mandel_stress(G + e) - mandel_stress(G - e)) / (2 * step))
    return np.array(columns).T


STRAINS = {
    2: np.array([0.02, -0.005, 0.01]),  # tr ε ≠ 0: the 2D and 3D deviators differ
    3: np.array([0.02, -0.005, 0.003, 0.004, -0.002, 0.01]),
}
MESH_SIZE = {2: 0.25, 3: 0.25}


@pytest.mark.parametrize("dim", [2, 3])
def test_homogeneous_power_law_cell_returns_the_3d_law(dim):
    rve = hf.build_rve(hf.RVESpec("inclusion", dim, 0.2, MESH_SIZE[dim]))
    cell = nonlinear_cell_problem(hf.Elasticity(dim), rve, {"matrix": LAW, "inclusion": LAW})
    G = STRAINS[dim]
    solution = cell.solve(G)
    expected = mandel_stress(G)
    # zero fluctuation: the mean stress is a sum of exact cell values, round-off only
    np.testing.assert_allclose(solution.flux, expected, rtol=1e-10)
    # the law is really nonlinear here (the secant shear modulus is far from μ)
    linear = hf.IsotropicElastic(LAW.E, LAW.nu).tensor(hf.Elasticity(dim)) @ G
    assert np.linalg.norm(linear - expected) > 0.1 * np.linalg.norm(expected)
    # central differences: truncation O(step²)·σ''' ≈ 1e-10 relative, round-off 1e-16/1e-7
    tangent = central_differences(G, 1e-7)
    np.testing.assert_allclose(solution.tangent, tangent, atol=1e-6 * np.abs(tangent).max())


def test_plane_strain_power_law_has_the_3d_out_of_plane_deviator():
    """A pure in-plane shear has tr ε = 0 and no ε33, so 2D and 3D agree trivially; a
    uniaxial strain does not: its 3D deviator has ε33 component −ε11/3 that the 2 × 2
    deviator (tr/2) misses. The plane-strain cell must give the 3D answer."""
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.2, 0.25))
    cell = nonlinear_cell_problem(hf.Elasticity(2), rve, {"matrix": LAW, "inclusion": LAW})
    G = np.array([0.03, 0.0, 0.0])
    expected = mandel_stress(G)
    np.testing.assert_allclose(
        cell.solve(G).flux, expected, rtol=1e-10, atol=1e-14 * expected.max()
    )


def test_plane_stress_power_law_is_refused():
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.2, 0.25))
    with pytest.raises(InputError, match=r'plane strain only .* set physics.plane = "strain"'):
        nonlinear_cell_problem(
            hf.Elasticity(2, plane="stress"), rve, {"matrix": LAW, "inclusion": LAW}
        )


PLANE_STRESS_CELL = """\
[rve]
kind = "inclusion"
dim = 2
fraction = 0.2
mesh_size = 0.25
[physics]
kind = "elasticity"
plane = "stress"
[materials.matrix]
E = 3.0
nu = 0.35
eps0 = 0.01
n = 0.3
[materials.inclusion]
E = 70.0
nu = 0.2
"""


def test_plane_stress_power_law_cell_file_stops_with_exit_2(tmp_path, capsys):
    cell = tmp_path / "cell.toml"
    cell.write_text(textwrap.dedent(PLANE_STRESS_CELL))
    assert main(["homogenize", str(cell)]) == 2
    err = cli_error(capsys)
    assert "materials.matrix" in err and 'physics.plane = "strain"' in err
    assert "Traceback" not in err
