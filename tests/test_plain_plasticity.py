"""The plain DOLFINx J2 reference (tests/plain_plasticity.py) against closed forms.

Homogeneous problems (every point the same strain) have closed-form stresses; the reaction on
a unit face is then that stress. Units: MPa-like (E = 70 000, σ_y = 100).

Uniaxial strain (ε = e e₁⊗e₁, plane strain or 3D, the same 3D state), derived here:
every deviatoric tensor of the problem is a multiple of D = diag(1, −½, −½), and
q(a D) = √(3/2 · a² · 3/2) = (3/2)|a|. With εᵖ = π D (plastic flow is along D, trace-free),
α = (2/3) H_kin π D, dev ε = (2/3) e D:
    s = 2μ ((2/3) e − π) D,   ξ = s − α = ((4/3)μ e − (2μ + (2/3) H_kin) π) D,
    (3/2)|ξ₁₁| = |2μ e − (3μ + H_kin) π|,
    σ₁₁ = K e + s₁₁ = (K + 4μ/3) e − 2μ π,   σ₂₂ = σ₃₃ = (K − 2μ/3) e + μ π.
Monotonic loading from the virgin state (p = π): yield at e_y = σ_y / (2μ); beyond it
2μ e − (3μ + H_kin) π = σ_y + H_iso π gives π = (2μ e − σ_y) / (3μ + H), H = H_iso + H_kin,
and the slope dσ₁₁/de = K + 4μ/3 − 4μ²/(3μ + H) = K + (4/3) μ H / (3μ + H) (K at H = 0).
Unloading from e₁ (π₁) is elastic (slope K + 4μ/3) until the reverse yield
−(2μ e − (3μ + H_kin) π₁) = σ_y + H_iso π₁, i.e. e_r = ((3μ + H_kin − H_iso) π₁ − σ_y) / (2μ)
(e₁ − e_r = (σ_y + H_iso π₁)/μ: a 2(σ_y + H_iso p) wide elastic range in q, the Bauschinger
effect); beyond it p = 2π₁ − π and −(2μ e − (3μ + H_kin) π) = σ_y + H_iso (2π₁ − π) gives
π = (2μ e + σ_y + 2 H_iso π₁) / (3μ + H).

Tolerances: these states are represented exactly by P1 and any quadrature rule, so the
discrete answer is the closed form up to the Newton tolerance (1e-10 relative residual, the
default; the residual is linear in the error near the solution) and round-off: 1e-9 σ_y
(measured: ≤ 7e-13 σ_y·100, i.e. round-off of stresses of a few hundred).
"""

import itertools

from mpi4py import MPI

import numpy as np
import pytest
from plain_plasticity import (
    BACK,
    BOTTOM,
    FRONT,
    LEFT,
    RIGHT,
    TOP,
    NewtonError,
    solve_plasticity,
    unit_box,
)

E, NU, SIGMA_Y = 70e3, 0.3, 100.0
MU = E / (2 * (1 + NU))
K = E / (3 * (1 - 2 * NU))
HARDENING = {"perfect": (0.0, 0.0), "isotropic": (2e3, 0.0), "kinematic": (0.0, 3e3)}
HARDENING["mixed"] = (2e3, 3e3)
TOL = 1e-9 * SIGMA_Y  # see the module docstring


def uniaxial_strain_stress(strains, H_iso, H_kin):
    """σ₁₁ and σ₂₂ of uniaxial strain along 0 → e_max → e_min (the docstring's closed form)."""
    H = H_iso + H_kin
    strains = np.asarray(strains)
    peak = int(np.argmax(strains))
    e_max = strains[peak]
    pi_1 = max(0.0, (2 * MU * e_max - SIGMA_Y) / (3 * MU + H))
    e_r = ((3 * MU + H_kin - H_iso) * pi_1 - SIGMA_Y) / (2 * MU)
    pis = []
    for n, e in enumerate(strains):
        if n <= peak:  # loading
            pis.append(max(0.0, (2 * MU * e - SIGMA_Y) / (3 * MU + H)))
        elif e >= e_r:  # elastic unloading
            pis.append(pi_1)
        else:  # reverse yielding
            pis.append((2 * MU * e + SIGMA_Y + 2 * H_iso * pi_1) / (3 * MU + H))
    pis = np.array(pis)
    return (K + 4 * MU / 3) * strains - 2 * MU * pis, (K - 2 * MU / 3) * strains + MU * pis


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("hardening", list(HARDENING))
@pytest.mark.parametrize("degree, quadrature_degree", [(1, 2), (1, 1), (2, 4)])
def test_uniaxial_strain_load_unload_reverse(dim, hardening, degree, quadrature_degree):
    H_iso, H_kin = HARDENING[hardening]
    msh, tags = unit_box(MPI.COMM_WORLD, dim, 2)
    zero = (None,) * dim

    def fixed(c, value):
        return tuple(value if i == c else None for i in range(dim))

    dirichlet = {LEFT: fixed(0, 0.0), RIGHT: fixed(0, 1.0), BOTTOM: fixed(1, 0.0)}
    dirichlet[TOP] = fixed(1, 0.0)
    if dim == 3:
        dirichlet |= {BACK: fixed(2, 0.0), FRONT: fixed(2, 0.0)}
    assert all(v != zero for v in dirichlet.values())
    e_y = SIGMA_Y / (2 * MU)
    # load past yield, unload (elastic), reverse past the reverse yield point
    path = e_y * np.array([0.5, 0.99, 1.5, 2.5, 4.0, 3.0, 2.3, 1.1, -1.3, -2.5, -4.0])
    steps = solve_plasticity(
        msh,
        tags,
        dirichlet,
        E,
        NU,
        SIGMA_Y,
        H_iso,
        H_kin,
        factors=path,
        quadrature_degree=quadrature_degree,
        degree=degree,
        reaction_tags=[RIGHT, TOP],
    )
    s11, s22 = uniaxial_strain_stress(path, H_iso, H_kin)
    r11 = np.array([s["reactions"][RIGHT][0] for s in steps])
    r22 = np.array([s["reactions"][TOP][1] for s in steps])
    # the path visits every branch: elastic, plastic, elastic unloading, reverse plastic
    offset = (K + 4 * MU / 3) * path - s11  # 2μπ
    assert np.all(offset[:2] == 0) and np.all(np.diff(offset[1:5]) > 1.0)
    assert offset[5] == offset[4]
    assert np.all(np.diff(offset[6:]) < -1.0)
    np.testing.assert_allclose(r11, s11, rtol=0, atol=TOL)
    np.testing.assert_allclose(r22, s22, rtol=0, atol=TOL)
    p_max = np.array([s["p_max"] for s in steps])
    assert p_max[1] == 0 and p_max[2] > 0


def test_plastic_slope_formula():
    """The closed form's plastic slope equals K + (4/3) μ H / (3μ + H) (independent check)."""
    for H_iso, H_kin in HARDENING.values():
        H = H_iso + H_kin
        e = SIGMA_Y / (2 * MU) * np.array([2.0, 3.0])
        s11, _ = uniaxial_strain_stress(e, H_iso, H_kin)
        slope = (s11[1] - s11[0]) / (e[1] - e[0])
        assert slope == pytest.approx(K + 4 / 3 * MU * H / (3 * MU + H), rel=1e-12)


def clamped_tension(tangent="consistent", max_iterations=25):
    """A square clamped on the left, pulled on the right: an inhomogeneous plastic zone."""
    msh, tags = unit_box(MPI.COMM_WORLD, 2, 8)
    e_y = SIGMA_Y / E
    return solve_plasticity(
        msh,
        tags,
        {LEFT: (0.0, 0.0), RIGHT: (1.0, None)},
        E,
        NU,
        SIGMA_Y,
        *HARDENING["mixed"],
        factors=e_y * np.array([1.0, 2.0]),
        rtol=1e-13,
        max_iterations=max_iterations,
        tangent=tangent,
    )


def quadratic_pairs(residuals):
    """(ρ_k, ρ_{k+1}) of the relative residuals in the asymptotic range, above round-off."""
    rho = np.asarray(residuals) / residuals[0]
    return [(a, b) for a, b in itertools.pairwise(rho) if a <= 1e-3 and b >= 1e-13]


def test_newton_converges_quadratically_in_a_plastic_step():
    steps = clamped_tension()
    step = steps[1]  # 1 → 2 σ_y/E: the plastic zone spreads through the section
    assert step["p_max"] > 0
    pairs = quadratic_pairs(step["residuals"])
    assert len(pairs) >= 2, step["residuals"]
    # quadratic: ρ_{k+1} ≤ C ρ_k² with C of order 1 (measured 3.1 and 4.2); a linear rate r
    # gives ρ_{k+1}/ρ_k² = r/ρ_k ≥ 1e3 r at ρ_k ≤ 1e-3, above 20 for any r > 0.02
    for a, b in pairs:
        assert b <= 20 * a**2, step["residuals"]
    assert len(step["residuals"]) <= 8


def test_quadratic_check_fails_for_a_linear_rate():
    """Negative control: the elastic tangent converges linearly and fails the check above."""
    with pytest.raises(NewtonError) as failure:
        clamped_tension(tangent="elastic", max_iterations=30)
    # (already the first step: the clamped corners yield at 1 σ_y/E)
    pairs = quadratic_pairs(failure.value.residuals)
    assert pairs
    assert any(b > 20 * a**2 for a, b in pairs)


def test_plane_strain_tension_limit_load():
    """Perfect plasticity, plane strain, free top (σ₂₂ = 0): σ₁₁ → 2σ_y/√3.

    At the limit state the elastic strain is constant, so ε̇ᵖ₃₃ = −ε̇ᵉ₃₃ = 0: s₃₃ = 0,
    σ₃₃ = σ₁₁/2, s = σ₁₁ (½, −½, 0) and q = (√3/2) σ₁₁ = σ_y. The approach is exponential
    in e/e_y (measured: 1e-10 at 10 σ_y/E); at 20 σ_y/E it is below the Newton tolerance.
    """
    msh, tags = unit_box(MPI.COMM_WORLD, 2, 2)
    path = SIGMA_Y / E * np.linspace(0.5, 20.0, 40)
    steps = solve_plasticity(
        msh,
        tags,
        {LEFT: (0.0, None), RIGHT: (1.0, None), BOTTOM: (None, 0.0)},
        E,
        NU,
        SIGMA_Y,
        factors=path,
        reaction_tags=[RIGHT],
    )
    limit = 2 * SIGMA_Y / np.sqrt(3)
    r = np.array([s["reactions"][RIGHT][0] for s in steps])
    assert r[0] == pytest.approx(E / (1 - NU**2) * path[0], rel=1e-10)  # elastic start
    assert np.all(r <= limit + TOL)
    assert np.all(np.diff(r) > -TOL)  # monotone under monotone loading
    assert r[-1] == pytest.approx(limit, abs=TOL)


@pytest.mark.parametrize("hardening", ["perfect", "mixed"])
def test_uniaxial_stress_3d(hardening):
    """A cube on rollers (left, bottom, back), pulled on the right: uniaxial stress.

    The stress stays σ e₁⊗e₁ (radial path), ξ = (2/3)(σ − H_kin π) D, q = σ − H_kin π:
    elastic σ = E e up to σ_y, then σ = σ_y + H π with π = (E e − σ_y)/(E + H), slope
    E H/(E + H) (σ_y exactly at H = 0). Lateral contraction is free: no other reaction.
    """
    H_iso, H_kin = HARDENING[hardening]
    H = H_iso + H_kin
    msh, tags = unit_box(MPI.COMM_WORLD, 3, 2)
    e_y = SIGMA_Y / E
    path = e_y * np.array([0.5, 1.0, 2.0, 5.0, 10.0])
    steps = solve_plasticity(
        msh,
        tags,
        {
            LEFT: (0.0, None, None),
            RIGHT: (1.0, None, None),
            BOTTOM: (None, 0.0, None),
            BACK: (None, None, 0.0),
        },
        E,
        NU,
        SIGMA_Y,
        H_iso,
        H_kin,
        factors=path,
        reaction_tags=[RIGHT, BOTTOM],
    )
    expected = np.where(path <= e_y, E * path, SIGMA_Y + H * (E * path - SIGMA_Y) / (E + H))
    r = np.array([s["reactions"][RIGHT][0] for s in steps])
    np.testing.assert_allclose(r, expected, rtol=0, atol=TOL)
    lateral = np.array([s["reactions"][BOTTOM][1] for s in steps])
    np.testing.assert_allclose(lateral, 0.0, atol=TOL)
