"""Constitutive updates at quadrature points, vectorized in NumPy: the laws with a history.

A point law maps (total strain, committed internal variables, time step) to (stress,
algorithmic tangent, new internal variables) for ``m`` points at once. Strains and stresses
are 3D Mandel vectors (ε11, ε22, ε33, √2 ε23, √2 ε13, √2 ε12), shape ``(m, 6)``; tangents
``(m, 6, 6)``. A 2D plane-strain cell embeds its in-plane strain with ``plane_strain_3d``
(ε33 = ε23 = ε13 = 0) and keeps the components ``IN_PLANE`` of the answer, so the 3D state
(σ33, the 3D plastic strain) is carried in full.

Internal variables are a float64 array ``(m, n_vars)`` per law, zero in the virgin state;
the last column of every law with a history is its accumulated dissipated energy density, so
that energy balances need no knowledge of the law.
"""

from typing import Protocol

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

IN_PLANE = np.array([0, 1, 5])
"""Indices of the 2D Mandel components (11, 22, √2·12) in the 3D Mandel vector."""

IDENTITY = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
"""The identity tensor in 3D Mandel notation."""

DEVIATOR = np.eye(6) - np.outer(IDENTITY, IDENTITY) / 3.0
"""The deviatoric projector in 3D Mandel notation."""


class PointLaw(Protocol):
    """What the history cell asks of a phase law (see the module docstring)."""

    n_vars: int
    """Internal variables per quadrature point (0 for a law without history)."""

    def update(self, strain: Array, state: Array, dt: float) -> tuple[Array, Array, Array]:
        """Stress ``(m, 6)``, tangent ``(m, 6, 6)`` and new state ``(m, n_vars)``.

        Args:
            strain: Total strain at the end of the step, ``(m, 6)``.
            state: Committed internal variables at the start of the step, ``(m, n_vars)``
                (never modified).
            dt: Time step (> 0); rate-independent laws ignore it.
        """
        ...

    def stress(self, strain: Array, state: Array) -> Array:
        """Stress ``(m, 6)`` at a strain from its UPDATED state (the end of a step).

        ``stress(ε, update(ε, s, dt)[2])`` is ``update(ε, s, dt)[0]`` (to round-off): what a
        snapshot of a converged state shows without repeating the step.
        """
        ...

    def free_energy(self, strain: Array, state: Array) -> Array:
        """Stored (Helmholtz) energy density at a strain and its state, ``(m,)``."""
        ...

    def dissipation(self, state: Array) -> Array:
        """Dissipated energy density accumulated in ``state``, ``(m,)``."""
        ...

    def plastic_strain(self, state: Array) -> Array:
        """Equivalent plastic strain (0 for a law without plasticity), ``(m,)``."""
        ...


class Predictable(Protocol):
    """A point law whose step is affine in the strain wherever it does not flow (issue 14).

    For a committed state and a time step, ``update`` gives σ = ε C_p + σ₀ (C_p symmetric,
    the same at every point of the law) at every point where it reports no flow; the
    history cell solves this affine problem with one factorization of C_p (the elastic
    shortcut) and keeps the answer when no point flowed.

    The cell also derives a committed state's fluctuation from its gradient and internal
    variables (``HistoryCellProblem.committed_fluctuation``), with ``predictor(state,
    0.0)``. So a law must accept ``dt = 0`` and give finite C_p and σ₀ there (the limit
    Δt → 0 of its step: Maxwell's glassy modulus), and at a state its ``update`` returned
    (the converged strain ε_c of that update, Δt = 0), ε_c C_p + σ₀ must be the stress the
    update gave: then the equilibrium the Newton converged to is the affine solution. A
    non-finite C_p or σ₀ is refused naming the law and Δt (``micro.shortcut``); the cell
    checks a virgin state at Δt = 0 when it is built.
    """

    def predictor(self, state: Array, dt: float) -> tuple[Array, Array]:
        """(C_p ``(6, 6)``, σ₀ ``(m, 6)``) of the committed ``state`` for a step ``dt`` ≥ 0."""
        ...

    def flowed(self, state: Array, new: Array) -> npt.NDArray[np.bool_]:
        """Where ``update`` left the affine predictor (from ``state`` to ``new``), ``(m,)``."""
        ...


def plane_strain_3d(strain: Array) -> Array:
    """3D Mandel strains ``(m, 6)`` of 2D Mandel strains ``(m, 3)`` (ε33 = ε13 = ε23 = 0)."""
    out = np.zeros((len(strain), 6))
    out[:, IN_PLANE] = strain
    return out


def quadratic_form(x: Array, matrix: Array) -> Array:
    """x_m · M x_m for every row of ``x`` ``(m, n)``, ``M`` ``(n, n)``: shape ``(m,)``."""
    out: Array = np.einsum("mi,ij,mj->m", x, matrix, x)
    return out


def isotropic_stiffness(E: float, nu: float) -> Array:
    """3D Mandel stiffness of an isotropic material, ``(6, 6)``."""
    bulk, shear = E / (3.0 * (1.0 - 2.0 * nu)), E / (2.0 * (1.0 + nu))
    return bulk * np.outer(IDENTITY, IDENTITY) + 2.0 * shear * DEVIATOR


class Elastic:
    """Isotropic linear elasticity: no history (``n_vars`` = 0)."""

    n_vars = 0
    dissipates = ""
    """What the law dissipates energy by: "" (nothing), "plastic" or "viscous"."""

    def __init__(self, E: float, nu: float) -> None:
        self.stiffness = isotropic_stiffness(E, nu)

    def update(self, strain: Array, state: Array, dt: float) -> tuple[Array, Array, Array]:
        """σ = C ε, tangent C; the (empty) state is returned unchanged."""
        stress = strain @ self.stiffness.T
        tangent = np.broadcast_to(self.stiffness, (len(strain), 6, 6))
        return stress, tangent, state

    def stress(self, strain: Array, state: Array) -> Array:
        """σ = C ε."""
        out: Array = strain @ self.stiffness.T
        return out

    def free_energy(self, strain: Array, state: Array) -> Array:
        """½ ε : C ε."""
        return 0.5 * quadratic_form(strain, self.stiffness)

    def dissipation(self, state: Array) -> Array:
        """An elastic phase dissipates nothing."""
        return np.zeros(len(state))

    def plastic_strain(self, state: Array) -> Array:
        """An elastic phase does not yield."""
        return np.zeros(len(state))

    def predictor(self, state: Array, dt: float) -> tuple[Array, Array]:
        """σ = C ε: (C, 0)."""
        return self.stiffness, np.zeros((len(state), 6))

    def flowed(self, state: Array, new: Array) -> npt.NDArray[np.bool_]:
        """Never."""
        return np.zeros(len(state), dtype=bool)


SQRT_3_2 = float(np.sqrt(1.5))


def symmetric_tangent(stiffness: Array, a: Array, n: Array, c: Array) -> Array:
    """C − a P_dev − c n⊗n at every point, ``(m, 6, 6)``; ``a``, ``c`` ``(m,)``, ``n`` ``(m, 6)``.

    Filled entry by entry (21 of them, vector operations over the points): about a quarter of
    the time of broadcasting ``(m, 6, 6)`` temporaries, whose inner loops have length 6
    (measured at 10⁴ points).
    """
    tangent = np.empty((len(n), 6, 6))
    for i in range(6):
        for j in range(i, 6):
            entry = stiffness[i, j] - c * n[:, i] * n[:, j]
            if DEVIATOR[i, j] != 0.0:
                entry -= DEVIATOR[i, j] * a
            tangent[:, i, j] = entry
            tangent[:, j, i] = entry
    return tangent


class J2Plasticity:
    """Von Mises plasticity, linear isotropic and linear kinematic (Prager) hardening.

    Yield function f = √(3/2) |dev σ − α| − (σ_y + H_iso p), associative flow
    ε̇ᵖ = ṗ √(3/2) n with n = (dev σ − α)/|dev σ − α|, so that p = ∫ √(2/3) |ε̇ᵖ| dt is the
    equivalent plastic strain; backstress α̇ = (2/3) H_kin ε̇ᵖ (uniaxial hardening modulus
    H_iso + H_kin). Integrated by backward Euler (radial return, exact for this law:
    Δp = f_trial / (3G + H_iso + H_kin)), with the algorithmic consistent tangent
    C − b n⊗n − a (P_dev − n⊗n), b = 6G²/(3G + H), a = 6G² Δp/(√(3/2)|η_trial|).
    H_iso = H_kin = 0 is perfect plasticity.

    State columns: εᵖ (0:6, Mandel), α (6:12, Mandel), p (12), dissipated energy density
    (13), accumulated as σ_y Δp per step, the exact dissipation of this law:
    (σ − α):Δεᵖ − H_iso p Δp with p at the end of the step.

    Args:
        E: Young's modulus, > 0.
        nu: Poisson's ratio, in (−1, 0.5).
        sigma_y: Initial yield stress (uniaxial), > 0.
        H_iso: Linear isotropic hardening modulus, ≥ 0.
        H_kin: Linear kinematic hardening modulus, ≥ 0.
    """

    n_vars = 14
    YIELD_TOLERANCE = 1e-12
    """A trial state is plastic when f > YIELD_TOLERANCE · σ_y (round-off on the surface)."""

    dissipates = "plastic"

    def __init__(
        self, E: float, nu: float, sigma_y: float, H_iso: float = 0.0, H_kin: float = 0.0
    ) -> None:
        self.E, self.nu = float(E), float(nu)
        self.sigma_y, self.H_iso, self.H_kin = float(sigma_y), float(H_iso), float(H_kin)
        self.stiffness = isotropic_stiffness(E, nu)
        self.shear = E / (2.0 * (1.0 + nu))

    def update(self, strain: Array, state: Array, dt: float) -> tuple[Array, Array, Array]:
        """Radial return from the committed state; see the class docstring."""
        G, H = self.shear, self.H_iso + self.H_kin
        plastic_strain, backstress, p = state[:, 0:6], state[:, 6:12], state[:, 12]
        stress = (strain - plastic_strain) @ self.stiffness  # C is symmetric
        eta = stress @ DEVIATOR - backstress
        norm = np.sqrt(np.einsum("mi,mi->m", eta, eta))
        f = SQRT_3_2 * norm - (self.sigma_y + self.H_iso * p)
        yielding = f > self.YIELD_TOLERANCE * self.sigma_y
        dp = np.where(yielding, f, 0.0) / (3.0 * G + H)
        n = eta / np.where(yielding, norm, 1.0)[:, None]  # used only where yielding
        increment = (SQRT_3_2 * dp)[:, None] * n  # Δεᵖ
        stress -= 2.0 * G * increment

        new = state.copy()
        new[:, 0:6] += increment
        new[:, 6:12] += (2.0 / 3.0 * self.H_kin) * increment
        new[:, 12] += dp
        new[:, 13] += self.sigma_y * dp

        # the elastic stiffness where the step stays elastic (most points, most steps);
        # the algorithmic tangent only where it flows
        tangent = np.empty((len(strain), 6, 6))
        tangent[:] = self.stiffness
        if yielding.any():
            y = np.flatnonzero(yielding)
            a = 6.0 * G * G * dp[y] / (SQRT_3_2 * norm[y])
            b = 6.0 * G * G / (3.0 * G + H)
            tangent[y] = symmetric_tangent(self.stiffness, a, n[y], b - a)
        return stress, tangent, new

    def stress(self, strain: Array, state: Array) -> Array:
        """σ = C (ε − εᵖ) with the updated plastic strain."""
        out: Array = (strain - state[:, 0:6]) @ self.stiffness  # C is symmetric
        return out

    def free_energy(self, strain: Array, state: Array) -> Array:
        """½ (ε − εᵖ):C(ε − εᵖ) + ½ H_iso p² + (1/3) H_kin εᵖ:εᵖ."""
        plastic_strain, p = state[:, 0:6], state[:, 12]
        elastic = strain - plastic_strain
        return (
            0.5 * quadratic_form(elastic, self.stiffness)
            + 0.5 * self.H_iso * p**2
            + self.H_kin / 3.0 * np.sum(plastic_strain**2, axis=1)
        )

    def dissipation(self, state: Array) -> Array:
        """Accumulated σ_y Δp (the last state column)."""
        return np.array(state[:, -1])

    def plastic_strain(self, state: Array) -> Array:
        """Equivalent plastic strain p."""
        return np.array(state[:, 12])

    def predictor(self, state: Array, dt: float) -> tuple[Array, Array]:
        """The elastic trial σ = C (ε − εᵖ): (C, −C εᵖ), exact where the return is not needed."""
        sigma0: Array = -(state[:, 0:6] @ self.stiffness)
        return self.stiffness, sigma0

    def flowed(self, state: Array, new: Array) -> npt.NDArray[np.bool_]:
        """Where the radial return ran (p grew; Δp = 0 below ``YIELD_TOLERANCE``)."""
        flowed: npt.NDArray[np.bool_] = new[:, 12] > state[:, 12]
        return flowed


class Maxwell:
    """Generalized Maxwell (Prony series) linear viscoelasticity, isotropic, proportional.

    A long-term spring C(E, ν) in parallel with branches i (spring C(E_i, ν) in series with
    a dashpot of relaxation time τ_i): relaxation modulus E(t) = E + Σ E_i exp(−t/τ_i), the
    same ν in every branch. Branch stresses are integrated exactly for a strain linear in
    time over the step: σ_i⁺ = e^{−Δt/τ_i} σ_i + C_i (τ_i/Δt)(1 − e^{−Δt/τ_i}) Δε, so the
    tangent C(E + Σ g_i E_i, ν), g_i = (τ_i/Δt)(1 − e^{−Δt/τ_i}), is the same at every point.
    Δt = 0 is the instantaneous (glassy) response C(E + Σ E_i, ν).

    The dissipation rate Σ σ_i:C_i⁻¹σ_i/τ_i is integrated over the step by the trapezoidal
    rule (second order: an O(Δt³) error per step, O(Δt²) over a path).

    State columns: the total strain of the last update ε_n (0:6), the branch stresses
    (6 per branch, Mandel), dissipated energy density (last).

    Args:
        E: Long-term Young's modulus, > 0.
        nu: Poisson's ratio of every branch, in (−1, 0.5).
        prony: Branches ``((E_1, tau_1), ...)``: moduli > 0 and relaxation times > 0.
    """

    dissipates = "viscous"

    def __init__(self, E: float, nu: float, prony: tuple[tuple[float, float], ...]) -> None:
        self.E, self.nu = float(E), float(nu)
        self.moduli = np.array([float(Ei) for Ei, _ in prony])
        self.times = np.array([float(tau) for _, tau in prony])
        self.n_branches = len(prony)
        self.n_vars = 7 + 6 * self.n_branches
        self.unit = isotropic_stiffness(1.0, nu)  # C(E, ν) = E · C(1, ν)

    def _branches(self, state: Array) -> Array:
        return state[:, 6 : 6 + 6 * self.n_branches].reshape(len(state), self.n_branches, 6)

    def _branch_energy_rates(self, branches: Array) -> tuple[Array, Array]:
        """Σ_i σ_i:C_i⁻¹σ_i / 2 (stored) and Σ_i σ_i:C_i⁻¹σ_i / τ_i (dissipation rate)."""
        # σ:C(1, ν)⁻¹σ = (1 + ν) σ:σ − ν (tr σ)², and C(E_i, ν)⁻¹ = C(1, ν)⁻¹ / E_i
        trace = branches[:, :, 0] + branches[:, :, 1] + branches[:, :, 2]
        quadratic = (1.0 + self.nu) * np.einsum("mbi,mbi->mb", branches, branches)
        quadratic -= self.nu * trace**2
        return quadratic @ (0.5 / self.moduli), quadratic @ (1.0 / (self.moduli * self.times))

    def update(self, strain: Array, state: Array, dt: float) -> tuple[Array, Array, Array]:
        """Exact branch update for a strain linear in time over ``dt``; see the class docstring."""
        decay, gain = self._factors(dt)
        branches = self._branches(state)
        step = (strain - state[:, 0:6]) @ self.unit  # C(1, ν) Δε
        new = np.empty_like(state)
        new[:, 0:6] = strain
        new_branches = self._branches(new)  # a view: written in place
        np.multiply(branches, decay[None, :, None], out=new_branches)
        new_branches += (gain * self.moduli)[None, :, None] * step[:, None, :]
        stress = self.E * (strain @ self.unit) + new_branches.sum(axis=1)
        modulus = self.E + float(np.dot(gain, self.moduli))
        tangent = np.broadcast_to(modulus * self.unit, (len(strain), 6, 6))

        _, rate_old = self._branch_energy_rates(branches)
        _, rate_new = self._branch_energy_rates(new_branches)
        new[:, -1] = state[:, -1] + 0.5 * dt * (rate_old + rate_new)
        return stress, tangent, new

    def _factors(self, dt: float) -> tuple[Array, Array]:
        """Branch decay e^{−Δt/τ_i} and gain (τ_i/Δt)(1 − e^{−Δt/τ_i}) (both 1 at Δt = 0)."""
        if dt < 0:
            raise ValueError(f"a time step must be >= 0, got {dt}.")
        if dt == 0:
            return np.ones(self.n_branches), np.ones(self.n_branches)
        ratio = dt / self.times
        return np.exp(-ratio), -np.expm1(-ratio) / ratio

    def predictor(self, state: Array, dt: float) -> tuple[Array, Array]:
        """The step is affine in ε everywhere: (C_p, σ₀) of the algorithmic modulus.

        C_p = C(E + Σ g_i E_i, ν), constant for a given Δt; σ₀ = Σ (e^{−Δt/τ_i} σ_i −
        g_i E_i C(1, ν) ε_n).
        """
        decay, gain = self._factors(dt)
        weights = gain * self.moduli
        sigma0: Array = np.einsum("b,mbi->mi", decay, self._branches(state))
        sigma0 -= float(weights.sum()) * (state[:, 0:6] @ self.unit)
        return (self.E + float(weights.sum())) * self.unit, sigma0

    def flowed(self, state: Array, new: Array) -> npt.NDArray[np.bool_]:
        """Never: a Maxwell step is linear in the strain (the predictor is the answer)."""
        return np.zeros(len(state), dtype=bool)

    def stress(self, strain: Array, state: Array) -> Array:
        """σ = C∞ ε + Σ σ_i with the updated branch stresses."""
        out: Array = self.E * (strain @ self.unit) + self._branches(state).sum(axis=1)
        return out

    def free_energy(self, strain: Array, state: Array) -> Array:
        """½ ε:C∞ε + Σ ½ σ_i:C_i⁻¹σ_i."""
        stored, _ = self._branch_energy_rates(self._branches(state))
        return 0.5 * self.E * quadratic_form(strain, self.unit) + stored

    def dissipation(self, state: Array) -> Array:
        """Accumulated viscous dissipation (the last state column)."""
        return np.array(state[:, -1])

    def plastic_strain(self, state: Array) -> Array:
        """A viscoelastic phase has no plastic strain."""
        return np.zeros(len(state))
