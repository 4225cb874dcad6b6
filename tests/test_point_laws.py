"""The history laws at quadrature points against closed forms written here.

J2 plasticity (von Mises, linear isotropic + kinematic hardening): the uniaxial-strain,
uniaxial-stress and simple-shear responses have piecewise-linear closed forms in terms of a
scalar plastic strain κ (derived in the docstrings below from the yield condition alone, not
from the return mapping); the algorithmic tangent is checked against central differences.
Generalized Maxwell: the response to a strain ramp and hold is the hereditary integral of the
relaxation modulus E(t) = E + Σ E_i exp(−t/τ_i), integrated by hand. Energies: stored +
dissipated = the work ∫ σ:dε of a fine path.

Mandel notation (11, 22, 33, √2·23, √2·13, √2·12) throughout; round-off tolerances are a few
hundred ulps of the largest stress, since every closed form is a handful of operations.
"""

import itertools

import numpy as np
import pytest

from hmm_fenics.point_laws import (
    DEVIATOR,
    IDENTITY,
    IN_PLANE,
    Elastic,
    J2Plasticity,
    Maxwell,
    plane_strain_3d,
)

E, NU, SIGMA_Y = 200.0, 0.3, 0.25
G = E / (2 * (1 + NU))
K = E / (3 * (1 - 2 * NU))
LAMBDA = K - 2 * G / 3
E_Y = SIGMA_Y / (2 * G)  # uniaxial strain: σ11 − σ22 = 2G ε11 reaches σ_y
SQRT2 = np.sqrt(2.0)
ROUND_OFF = 1e-12  # relative: a few hundred ulps of the stress scale
HARDENING = {  # (H_iso, H_kin)
    "perfect": (0.0, 0.0),
    "isotropic": (12.0, 0.0),
    "kinematic": (0.0, 7.0),
    "mixed": (12.0, 7.0),
}


def run_path(law, strains, dt=1.0):
    """Stress, tangent and state after every strain of ``strains`` ``(steps, 6)``, one point."""
    state = np.zeros((1, law.n_vars))
    out = []
    for strain in strains:
        stress, tangent, state = law.update(strain[None, :], state, dt)
        out.append((stress[0], tangent[0], state[0]))
    return out


def uniaxial_strain(values):
    strains = np.zeros((len(values), 6))
    strains[:, 0] = values
    return strains


def yield_function(law, stress, state):
    """f = √(3/2)|dev σ − α| − (σ_y + H_iso p), written from the definition."""
    eta = stress @ DEVIATOR - state[..., 6:12]
    return np.sqrt(1.5) * np.linalg.norm(eta, axis=-1) - (law.sigma_y + law.H_iso * state[..., 12])


# --- J2: closed forms --------------------------------------------------------------------


@pytest.mark.parametrize("hardening", list(HARDENING))
def test_j2_uniaxial_strain_load_unload_reverse(hardening):
    """ε = e e₁⊗e₁: εᵖ = κ diag(1, −½, −½) (p = κ while κ grows), α = (2/3) H_kin εᵖ.

    With s = σ11 − σ22 = 2G(e − 3κ/2) and α11 − α22 = H_kin κ, loading yields at
    e_y = σ_y/(2G) and then s − H_kin κ = σ_y + H_iso κ, i.e.
    κ = (2G e − σ_y)/(3G + H). The mean stress is K e, so σ11 = K e + 2s/3 and σ22 = K e − s/3.
    Unloading from e1 is elastic (slope λ + 2G) until s − H_kin κ1 = −(σ_y + H_iso κ1); then
    κ decreases with s − H_kin κ = −(σ_y + H_iso (2κ1 − κ)) (p = 2κ1 − κ).
    """
    H_iso, H_kin = HARDENING[hardening]
    H = H_iso + H_kin
    law = J2Plasticity(E, NU, SIGMA_Y, H_iso, H_kin)
    e1 = 6 * E_Y
    kappa1 = (2 * G * e1 - SIGMA_Y) / (3 * G + H)
    e_rev = 1.5 * kappa1 + (H_kin * kappa1 - SIGMA_Y - H_iso * kappa1) / (2 * G)
    load = np.linspace(0, e1, 37)  # crosses e_y inside a step
    back = np.linspace(e1, -e1, 61)[1:]
    path = np.concatenate([load, back])

    def closed_form(e, loading):
        if loading:
            kappa, p = (max(0.0, (2 * G * e - SIGMA_Y) / (3 * G + H)),) * 2
        elif e >= e_rev:
            kappa = p = kappa1
        else:
            kappa = (2 * G * e + SIGMA_Y + 2 * H_iso * kappa1) / (3 * G + H)
            p = 2 * kappa1 - kappa
        s = 2 * G * (e - 1.5 * kappa)
        return np.array([K * e + 2 * s / 3, K * e - s / 3, K * e - s / 3]), p

    results = run_path(law, uniaxial_strain(path))
    for i, (e, (stress, _, state)) in enumerate(zip(path, results, strict=True)):
        expected, p = closed_form(e, loading=i < len(load))
        assert np.allclose(stress[:3], expected, rtol=0, atol=ROUND_OFF * E * e1), (i, e)
        assert np.allclose(stress[3:], 0, atol=ROUND_OFF * E * e1)
        assert abs(state[12] - p) <= ROUND_OFF * e1, (i, e)

    # Slopes: the hardening slope K + (4/3) G H/(3G + H) of σ11 (K alone when perfect),
    # and elastic unloading λ + 2G.
    de = load[-1] - load[-2]
    slope = (results[len(load) - 1][0][0] - results[len(load) - 2][0][0]) / de
    assert slope == pytest.approx(K + 4 / 3 * G * H / (3 * G + H), rel=1e-9)
    slope = (results[len(load)][0][0] - results[len(load) - 1][0][0]) / (back[0] - e1)
    assert slope == pytest.approx(LAMBDA + 2 * G, rel=1e-9)


@pytest.mark.parametrize("hardening", ["kinematic", "isotropic"])
def test_j2_bauschinger_shift(hardening):
    """Reverse yielding after loading to e1: the elastic range of s = σ11 − σ22 is 2σ_y with
    kinematic hardening (the surface translates by H_kin κ1), 2(σ_y + H_iso κ1) with isotropic
    hardening (it grows)."""
    H_iso, H_kin = HARDENING[hardening]
    law = J2Plasticity(E, NU, SIGMA_Y, H_iso, H_kin)
    e1 = 5 * E_Y
    ((stress1, _, state1),) = run_path(law, uniaxial_strain([e1]))
    kappa1 = state1[12]
    expected_range = 2 * SIGMA_Y if hardening == "kinematic" else 2 * (SIGMA_Y + H_iso * kappa1)
    e_rev = e1 - expected_range / (2 * G)  # elastic unloading: Δs = 2G Δe
    delta = 1e-6 * E_Y
    before, _, s_before = law.update(uniaxial_strain([e_rev + delta]), state1[None, :], 1.0)
    _, _, s_after = law.update(uniaxial_strain([e_rev - delta]), state1[None, :], 1.0)
    assert s_before[0, 12] == kappa1  # still elastic just before
    assert s_after[0, 12] > kappa1  # yields again (p grows) just after
    s = lambda sigma: sigma[0, 0] - sigma[0, 1]  # noqa: E731
    assert (stress1[0] - stress1[1]) - s(before) == pytest.approx(
        expected_range - 2 * G * delta, rel=1e-9
    )


@pytest.mark.parametrize("hardening", list(HARDENING))
def test_j2_simple_shear(hardening):
    """ε12 = γ/2: τ = G(γ − γᵖ), α12 = H_kin γᵖ/3, p = γᵖ/√3; yield √3|τ − α12| = σ_y + H_iso p
    gives γᵖ = (3Gγ − √3 σ_y)/(3G + H) beyond γ_y = σ_y/(√3 G); unloading slope G."""
    H_iso, H_kin = HARDENING[hardening]
    H = H_iso + H_kin
    law = J2Plasticity(E, NU, SIGMA_Y, H_iso, H_kin)
    gamma_y = SIGMA_Y / (np.sqrt(3) * G)
    gammas = np.linspace(0, 4 * gamma_y, 23)
    strains = np.zeros((len(gammas) + 1, 6))
    strains[:-1, 5] = gammas / SQRT2  # Mandel: √2 ε12 = γ/√2
    unload_to = 3 * gamma_y
    strains[-1, 5] = unload_to / SQRT2
    results = run_path(law, strains)
    for gamma, (stress, _, state) in zip(gammas, results, strict=False):
        gp = max(0.0, (3 * G * gamma - np.sqrt(3) * SIGMA_Y) / (3 * G + H))
        tau = G * (gamma - gp)
        assert stress[5] / SQRT2 == pytest.approx(tau, rel=ROUND_OFF, abs=ROUND_OFF * SIGMA_Y)
        assert np.allclose(stress[:5], 0, atol=ROUND_OFF * SIGMA_Y)
        assert state[12] == pytest.approx(gp / np.sqrt(3), rel=ROUND_OFF, abs=1e-16)
    tau_unloaded = results[-1][0][5] / SQRT2
    tau_peak = results[-2][0][5] / SQRT2
    assert (tau_peak - tau_unloaded) / (gammas[-1] - unload_to) == pytest.approx(G, rel=1e-9)


@pytest.mark.parametrize("hardening", list(HARDENING))
def test_j2_uniaxial_stress(hardening):
    """σ22 = σ33 = 0 solved by Newton on ε22 = ε33 with the law's own tangent (the answer does
    not depend on it): σ = E(e − κ), |σ − H_kin κ| = σ_y + H_iso κ, so
    κ = (E e − σ_y)/(E + H) beyond e = σ_y/E, slope E H/(E + H)."""
    H_iso, H_kin = HARDENING[hardening]
    H = H_iso + H_kin
    law = J2Plasticity(E, NU, SIGMA_Y, H_iso, H_kin)
    state = np.zeros((1, law.n_vars))
    for e in np.linspace(0, 4 * SIGMA_Y / E, 17)[1:]:
        strain = np.array([[e, -NU * e, -NU * e, 0, 0, 0]])
        for _ in range(30):
            stress, tangent, new = law.update(strain, state, 1.0)
            if np.max(np.abs(stress[0, 1:3])) < 1e-15 * SIGMA_Y:
                break
            strain[0, 1:3] -= np.linalg.solve(tangent[0, 1:3, 1:3], stress[0, 1:3])
        state = new
        kappa = max(0.0, (E * e - SIGMA_Y) / (E + H))
        assert stress[0, 0] == pytest.approx(E * (e - kappa), rel=1e-12)
        assert state[0, 12] == pytest.approx(kappa, rel=1e-10, abs=1e-16)


# --- J2: return mapping and tangent ------------------------------------------------------


def random_plastic_states(law, m=200, seed=1):
    """``m`` points with a plastic history: two random strain steps from the virgin state."""
    rng = np.random.default_rng(seed)
    state = np.zeros((m, law.n_vars))
    strain = np.zeros((m, 6))
    for _ in range(2):
        strain = strain + rng.normal(size=(m, 6)) * 4 * E_Y
        _, _, state = law.update(strain, state, 1.0)
    return rng, strain, state


@pytest.mark.parametrize("hardening", list(HARDENING))
def test_j2_return_is_on_the_yield_surface_and_dissipation_exact(hardening):
    """After the return f ≤ 0 everywhere and f = 0 where p grew; the dissipation increment
    σ_y Δp equals (σ − α):Δεᵖ − H_iso p Δp evaluated from the returned variables."""
    law = J2Plasticity(E, NU, SIGMA_Y, *HARDENING[hardening])
    rng, strain, state = random_plastic_states(law)
    new_strain = strain + rng.normal(size=strain.shape) * 3 * E_Y
    stress, _, new = law.update(new_strain, state, 1.0)
    f = yield_function(law, stress, new)
    dp = new[:, 12] - state[:, 12]
    assert (dp > 0).sum() > 50  # most points yield in this step
    assert np.all(f <= 1e-12 * SIGMA_Y)
    assert np.all(np.abs(f[dp > 0]) <= 1e-12 * SIGMA_Y)
    increment = new[:, 0:6] - state[:, 0:6]
    assert np.allclose(increment @ IDENTITY, 0, atol=1e-16)  # plastic incompressibility
    assert np.allclose(new[:, 6:12], 2 / 3 * law.H_kin * new[:, 0:6], rtol=1e-12, atol=1e-18)
    work = np.einsum("mi,mi->m", stress - new[:, 6:12], increment) - law.H_iso * new[:, 12] * dp
    assert np.allclose(new[:, 13] - state[:, 13], work, rtol=1e-10, atol=1e-16)
    assert np.allclose(law.dissipation(new), SIGMA_Y * new[:, 12], rtol=1e-12)
    assert np.array_equal(law.plastic_strain(new), new[:, 12])


@pytest.mark.parametrize("hardening", list(HARDENING))
def test_j2_tangent_is_the_derivative_of_the_return(hardening):
    """Algorithmic tangent vs central differences at plastic states, relative ≤ 1e-6.

    Step h = 1e-7 of strains ~1e-2: truncation (h/ε)² ~ 1e-10, round-off ε_mach σ/(h C) ~ 1e-11.
    """
    law = J2Plasticity(E, NU, SIGMA_Y, *HARDENING[hardening])
    rng, strain, state = random_plastic_states(law, m=50, seed=2)
    new_strain = strain + rng.normal(size=strain.shape) * 3 * E_Y
    _, tangent, new = law.update(new_strain, state, 1.0)
    plastic = new[:, 12] > state[:, 12]
    assert plastic.sum() > 20
    h = 1e-7
    differences = np.empty_like(tangent)
    for j in range(6):
        step = np.zeros(6)
        step[j] = h
        plus = law.update(new_strain + step, state, 1.0)[0]
        minus = law.update(new_strain - step, state, 1.0)[0]
        differences[:, :, j] = (plus - minus) / (2 * h)
    error = np.linalg.norm(tangent - differences, axis=(1, 2)) / np.linalg.norm(
        tangent, axis=(1, 2)
    )
    assert error.max() <= 1e-6
    assert np.allclose(tangent, tangent.transpose(0, 2, 1), rtol=0, atol=1e-12 * E)
    elastic = ~plastic
    assert np.array_equal(tangent[elastic], np.broadcast_to(law.stiffness, tangent[elastic].shape))


def test_j2_perfect_plasticity_flows_along_the_normal():
    """H = 0: the consistent tangent maps the flow direction n to zero (C n = 2G n is taken
    back entirely) and the stress stays on σ_eq = σ_y under further straining."""
    law = J2Plasticity(E, NU, SIGMA_Y)
    rng, strain, state = random_plastic_states(law, m=30, seed=3)
    stress, tangent, new = law.update(strain + rng.normal(size=strain.shape) * 3 * E_Y, state, 1.0)
    plastic = new[:, 12] > state[:, 12]
    dev = stress @ DEVIATOR
    n = dev / np.linalg.norm(dev, axis=1)[:, None]
    assert np.allclose(np.sqrt(1.5) * np.linalg.norm(dev, axis=1)[plastic], SIGMA_Y, rtol=1e-12)
    assert np.allclose(np.einsum("mij,mj->mi", tangent, n)[plastic], 0, atol=1e-12 * E)


def test_j2_plane_strain_embedding_and_virgin_elasticity():
    """Within the elastic range the law is Hooke's (the Elastic law); a 2D plane-strain strain
    embedded with ε33 = 0 gives σ33 = ν(σ11 + σ22) and keeps the in-plane answer."""
    law, elastic = J2Plasticity(E, NU, SIGMA_Y, 3.0, 2.0), Elastic(E, NU)
    strain = plane_strain_3d(np.array([[0.3, -0.2, 0.1]]) * E_Y)
    stress, tangent, state = law.update(strain, np.zeros((1, 14)), 1.0)
    reference = elastic.update(strain, np.zeros((1, 0)), 1.0)[0]
    assert np.allclose(stress, reference, rtol=1e-14, atol=1e-14 * SIGMA_Y)
    assert stress[0, 2] == pytest.approx(NU * (stress[0, 0] + stress[0, 1]), rel=1e-12)
    assert np.all(state == 0)
    assert law.free_energy(strain, state)[0] == pytest.approx(
        elastic.free_energy(strain, state)[0], rel=1e-14
    )
    in_plane = tangent[0][np.ix_(IN_PLANE, IN_PLANE)]
    lame = np.array([[LAMBDA + 2 * G, LAMBDA, 0], [LAMBDA, LAMBDA + 2 * G, 0], [0, 0, 2 * G]])
    assert np.allclose(in_plane, lame, rtol=1e-14)


def test_update_leaves_the_committed_state_alone():
    law = J2Plasticity(E, NU, SIGMA_Y, 3.0, 2.0)
    rng, strain, state = random_plastic_states(law, m=20)
    before = state.copy()
    law.update(strain + rng.normal(size=strain.shape) * E_Y, state, 1.0)
    assert np.array_equal(state, before)
    maxwell = Maxwell(E, NU, ((50.0, 1.0),))
    state = rng.normal(size=(20, maxwell.n_vars))
    before = state.copy()
    maxwell.update(strain, state, 0.1)
    assert np.array_equal(state, before)


def work_and_energy(law, strains, dt):
    """Trapezoidal work Σ ½(σ_n + σ_{n+1}):Δε, stored + dissipated energy at the end, and the
    dissipated part alone."""
    m = strains.shape[1]
    state = np.zeros((m, law.n_vars))
    stress = np.zeros((m, 6))
    work = np.zeros(m)
    for previous, strain in itertools.pairwise(strains):
        new_stress, _, state = law.update(strain, state, dt)
        work += 0.5 * np.einsum("mi,mi->m", stress + new_stress, strain - previous)
        stress = new_stress
    dissipated = law.dissipation(state)
    return work, law.free_energy(strains[-1], state) + dissipated, dissipated


def cyclic_path(amplitude, steps, m=8, seed=4):
    """Load, unload, reverse, reload along random directions: ``(4 steps + 1, m, 6)``."""
    direction = np.random.default_rng(seed).normal(size=(m, 6))
    corners = np.array([0.0, 1.0, 0.2, -0.8, 0.5]) * amplitude
    factors = np.concatenate(
        [np.linspace(a, b, steps + 1)[:-1] for a, b in itertools.pairwise(corners)] + [corners[-1:]]
    )
    return factors[:, None, None] * direction[None, :, :]


def test_j2_energy_balance_converges():
    """Work = stored + dissipated, up to the time-integration error, which vanishes with the
    step. In a plastic step with a fixed flow direction, ψ is quadratic and σ − α linear in
    (ε, εᵖ), so ½(σ_n + σ_{n+1}):Δε = Δψ + σ_y Δp exactly (midpoint identity); the error is
    O(Δε²) at each of the few elastic-plastic transitions and where the flow direction turns:
    second order overall (measured: 7.0e-5, 4.8e-6, 2.9e-7 at 100, 400, 1600 steps per
    segment). Asserted: better than first order (> 8× for 4× the steps) and < 1e-5."""
    law = J2Plasticity(E, NU, SIGMA_Y, 12.0, 7.0)
    errors = []
    for steps in (100, 400):
        work, energy, dissipated = work_and_energy(law, cyclic_path(5 * E_Y, steps), 1.0)
        assert np.all(dissipated > 0)
        errors.append(np.max(np.abs(work - energy) / work))
    assert errors[1] < 1e-5
    assert errors[0] / errors[1] > 8.0


# --- Maxwell --------------------------------------------------------------------------------

PRONY = ((80.0, 0.5), (40.0, 3.0), (20.0, 20.0))
UNIT = np.array([1.0, -0.3, 0.2, 0.1, -0.05, 0.4])  # a 3D strain direction


def unit_stiffness():
    """C(1, ν) from λ and μ (independent of the law's projector form)."""
    lam, mu = NU / ((1 + NU) * (1 - 2 * NU)), 1 / (2 * (1 + NU))
    return lam * np.outer(IDENTITY, IDENTITY) + 2 * mu * np.eye(6)


def ramp_hold(t, t_ramp):
    """Stress factor of ε(t) = ε0 min(t/t_ramp, 1): σ = ε̇ ∫ E(t − s) ds C(1, ν) ε0 / ε0."""
    if t <= t_ramp:
        value = E * t + sum(Ei * tau * (1 - np.exp(-t / tau)) for Ei, tau in PRONY)
        return value / t_ramp
    decay = sum(Ei * tau * (np.exp(-(t - t_ramp) / tau) - np.exp(-t / tau)) for Ei, tau in PRONY)
    return E + decay / t_ramp


def test_maxwell_relaxation_is_the_prony_series():
    """Ramp to ε0 in one step of t_r, hold with unequal steps: at every time the stress is the
    ramp-and-hold hereditary integral of E(t) (the Prony series) to 1e-12."""
    law = Maxwell(E, NU, PRONY)
    eps0 = 0.01 * UNIT
    t_ramp = 0.2
    holds = np.append(np.geomspace(0.01, 10, 30), 1000.0)  # the last: 50 τ_max
    times = np.concatenate([[0.0, t_ramp], t_ramp + np.cumsum(holds)])
    state = np.zeros((1, law.n_vars))
    for t0, t1 in itertools.pairwise(times):
        stress, _, state = law.update(eps0[None, :], state, t1 - t0)
        expected = ramp_hold(t1, t_ramp) * (unit_stiffness() @ eps0)
        assert np.allclose(stress[0], expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    # long after: the relaxed modulus E alone (the branches decayed below e^{-50})
    assert np.allclose(stress[0], E * unit_stiffness() @ eps0, rtol=1e-14)


def test_maxwell_linear_ramp_is_exact_in_one_step():
    """A linear ramp in one step = the same ramp in 100 steps = the closed form."""
    law = Maxwell(E, NU, PRONY)
    eps1 = 0.01 * UNIT
    duration = 4.0
    one, tangent, _ = law.update(eps1[None, :], np.zeros((1, law.n_vars)), duration)
    state = np.zeros((1, law.n_vars))
    for k in range(1, 101):
        many, _, state = law.update((k / 100 * eps1)[None, :], state, duration / 100)
    expected = ramp_hold(duration, duration) * (unit_stiffness() @ eps1)
    assert np.allclose(one[0], expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    assert np.allclose(many[0], expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    # the tangent is the ramp's secant C(E + Σ g_i E_i), g_i = (τ_i/Δt)(1 − e^{−Δt/τ_i})
    modulus = ramp_hold(duration, duration)
    assert np.allclose(tangent[0], modulus * unit_stiffness(), rtol=1e-13)


def test_maxwell_instantaneous_response():
    """Δt = 0: the glassy modulus E + Σ E_i, no relaxation, no dissipation."""
    law = Maxwell(E, NU, PRONY)
    strain = (0.01 * UNIT)[None, :]
    stress, _, state = law.update(strain, np.zeros((1, law.n_vars)), 0.0)
    glassy = E + sum(Ei for Ei, _ in PRONY)
    assert np.allclose(stress[0], glassy * unit_stiffness() @ strain[0], rtol=1e-14)
    assert state[0, -1] == 0.0
    with pytest.raises(ValueError, match="time step"):
        law.update(strain, state, -1.0)


def test_maxwell_energy_balance_is_second_order():
    """Work = stored + viscous dissipation; the trapezoidal work and dissipation rules are
    second order, so the error falls 4× per halved step (and is ~1e-5 at Δt = τ_min/50)."""
    law = Maxwell(E, NU, PRONY)
    errors = []
    for steps in (100, 200):
        path = cyclic_path(0.01, steps, m=4)
        dt = 2.0 / steps  # each segment lasts 2 time units, τ from 0.5 to 20
        work, energy, dissipated = work_and_energy(law, path, dt)
        assert np.all(dissipated > 0)
        errors.append(np.max(np.abs(work - energy) / np.abs(work).max()))
    assert errors[1] < 1e-4
    assert 3.5 < errors[0] / errors[1] < 4.5


def test_state_layout():
    """The widths the history cell allocates, dissipation last."""
    assert J2Plasticity(E, NU, SIGMA_Y).n_vars == 14
    law = Maxwell(E, NU, PRONY)
    assert law.n_vars == 6 + 6 * len(PRONY) + 1
    state = np.arange(2.0 * law.n_vars).reshape(2, law.n_vars)
    assert np.array_equal(law.dissipation(state), state[:, -1])
    assert np.array_equal(law.plastic_strain(state), np.zeros(2))


@pytest.mark.parametrize("hardening", list(HARDENING))
def test_j2_stress_from_the_updated_state_is_the_step_stress(hardening):
    """σ = C(ε − εᵖ) with the returned εᵖ is the return's σ_trial − 2G Δεᵖ (Δεᵖ deviatoric,
    so C Δεᵖ = 2G Δεᵖ): equal up to round-off, at elastic and plastic points alike."""
    law = J2Plasticity(E, NU, SIGMA_Y, *HARDENING[hardening])
    rng, strain, state = random_plastic_states(law)
    size = np.where(np.arange(len(strain)) % 2 == 0, 0.01, 4.0)[:, None] * E_Y
    new_strain = strain + rng.normal(size=strain.shape) * size
    stress, _, new = law.update(new_strain, state, 1.0)
    plastic = new[:, 12] > state[:, 12]
    assert plastic.any() and (~plastic).any()
    np.testing.assert_allclose(
        law.stress(new_strain, new), stress, rtol=0, atol=ROUND_OFF * np.abs(stress).max()
    )


@pytest.mark.parametrize("dt", [0.0, 0.1, 5.0])
def test_maxwell_and_elastic_stress_from_the_updated_state_is_the_step_stress(dt):
    """Maxwell: C∞ε + Σ σ_i with the new branch stresses; elastic: C ε (no state)."""
    rng = np.random.default_rng(7)
    law = Maxwell(E, NU, PRONY)
    strain = rng.normal(size=(30, 6)) * 0.01
    state = rng.normal(size=(30, law.n_vars)) * 0.01
    stress, _, new = law.update(strain, state, dt)
    np.testing.assert_allclose(
        law.stress(strain, new), stress, rtol=0, atol=ROUND_OFF * np.abs(stress).max()
    )
    elastic = Elastic(E, NU)
    stress, _, new = elastic.update(strain, np.zeros((30, 0)), dt)
    expected = strain @ (LAMBDA * np.outer(IDENTITY, IDENTITY) + 2 * G * np.eye(6))
    np.testing.assert_allclose(elastic.stress(strain, new), expected, rtol=0, atol=1e-12 * E)
    np.testing.assert_allclose(stress, expected, rtol=0, atol=1e-12 * E)
