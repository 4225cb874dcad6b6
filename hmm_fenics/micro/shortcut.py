"""Fewer micro factorizations for history cells: the elastic shortcut and Krylov Newton steps.

Every phase law of a history cell is affine in the strain where it does not flow
(``point_laws.Predictable``): σ = ε C_p + σ₀, with C_p the same at every point of the law
for a given time step (J2: the elastic stiffness, σ₀ = −C εᵖ; Maxwell: its algorithmic
modulus C(E + Σ g_i E_i, ν), which depends on Δt, and the relaxed branch stresses; the
Maxwell step is affine everywhere). With C_p in the Jacobian form, K_p = Pᵀ K(C_p) P is
factored once per template and predictor stiffness (``ElasticShortcut`` caches a few: a
Maxwell cell gets one per Δt, a J2 cell one in all). For a macro strain G and a committed
state the affine cell problem is one solve,

    K_p w = −(SP)ᵀ (w (C_p G + σ₀)),

the elastic trial. When no point of the trial flows (every law's ``flowed`` is false) the
laws' update IS the affine response, so the trial is the exact answer of the step and the
consistent macro tangent is the affine cell's C_hom (computed with the factorization);
otherwise the micro Newton runs (from the committed fluctuation by default). The same affine
solve at the committed gradient and internal variables with Δt = 0 (``affine_solve``) gives
that committed fluctuation back to the Newton tolerance: a state store need not keep it
(``HistoryCellProblem.committed_fluctuation``).

The Newton of a flowing point can also skip its refactorizations: the tangent system
K_t δ = r is solved by conjugate gradients preconditioned with the K_p factorization
(``pcg``; K_t is applied without assembly as (SP)ᵀ w C_q (SP) δ). The algorithmic tangents
of J2 and Maxwell are symmetric, and K_t ≤ K_p in the energy sense (plastic flow only
softens), so the preconditioned spectrum lies in (0, 1].
"""

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.micro.nonlinear import MicroNewtonError

Array = npt.NDArray[np.float64]


class ElasticFactor(NamedTuple):
    """The factored affine cell of one predictor stiffness.

    Attributes:
        Kr: The reduced operator Pᵀ K(C_p) P.
        ksp: Its ``hmm_micro_`` solver, set up (factored).
        stiffness: C_p at every quadrature point (cell components), ``(m, n, n)``.
        tangent: The affine cell's macro tangent C_hom, ``(n, n)``.
    """

    Kr: Any
    ksp: Any
    stiffness: Array
    tangent: Array


def law_predictor(name: str, law: Any, state: Array, dt: float) -> tuple[Array, Array]:
    """``law.predictor(state, dt)`` of phase ``name``, refused when C_p or σ₀ is not finite.

    Raises:
        InputError: a non-finite C_p or σ₀, naming the phase, the law and Δt (a law undefined
            at Δt = 0 cannot give the committed fluctuation: ``point_laws.Predictable``).
    """
    with np.errstate(all="ignore"):  # a 0/0 of the law is reported below, by name
        C, sigma0 = law.predictor(state, dt)
    C, sigma0 = np.asarray(C, dtype=np.float64), np.asarray(sigma0, dtype=np.float64)
    if not (np.isfinite(C).all() and np.isfinite(sigma0).all()):
        which = "C_p" if not np.isfinite(C).all() else "σ₀"
        raise InputError(
            f"materials.{name}: {type(law).__name__}.predictor(state, dt = {dt:g}) gave a "
            f"non-finite {which}; a Predictable law must give finite ones for every dt ≥ 0 "
            "(dt = 0 derives the committed fluctuation, point_laws.Predictable)."
        )
    return C, sigma0


class ElasticShortcut:
    """Factorizations of a history cell's affine (elastic) predictor, cached per stiffness.

    Args:
        cell: The history cell (every law ``Predictable``).
        keep: Factorizations kept (the least recently used goes first): cut-backs of a
            Maxwell cell's Δt need a few.
    """

    def __init__(self, cell: Any, keep: int = 4) -> None:
        self.cell, self.keep = cell, keep
        self._factors: OrderedDict[bytes, ElasticFactor] = OrderedDict()

    def predictor(self, internal_row: Array, dt: float) -> tuple[ElasticFactor, Array]:
        """The factored affine cell of the step and σ₀ at every point ``(m, n)``.

        Raises:
            InputError: a law's C_p or σ₀ is not finite (``law_predictor``).
        """
        cell = self.cell
        comps = cell.components
        sigma0 = np.empty((cell.n_points_q, len(comps)))
        stiffness: dict[str, Array] = {}
        for name, law in cell.laws.items():
            C, s0 = law_predictor(name, law, cell.phase_state(name, internal_row), dt)
            stiffness[name] = C[comps[:, None], comps]
            sigma0[cell.phase_points[name]] = s0[:, comps]
        key = b"".join(stiffness[name].tobytes() for name in cell.laws)
        factor = self._factors.get(key)
        if factor is None:
            factor = self._factor(stiffness)
            self._factors[key] = factor
            while len(self._factors) > self.keep:
                old = self._factors.popitem(last=False)[1]
                old.ksp.destroy()
                old.Kr.destroy()
        self._factors.move_to_end(key)
        return factor, sigma0

    def _factor(self, stiffness: dict[str, Array]) -> ElasticFactor:
        cell = self.cell
        n = len(cell.components)
        C = np.empty((cell.n_points_q, n, n))
        for name, block in stiffness.items():
            C[cell.phase_points[name]] = block
        Kr, ksp = cell.factored_copy(cell.assemble_jacobian(C))
        return ElasticFactor(Kr, ksp, C, cell.macro_tangent(C, ksp))

    def clear(self) -> None:
        """Drop every factorization (they are rebuilt when needed)."""
        for factor in self._factors.values():
            factor.ksp.destroy()
            factor.Kr.destroy()
        self._factors.clear()


def pcg(
    apply: Callable[[Array], Array],
    precondition: Callable[[Array], Array],
    b: Array,
    rtol: float,
    max_iterations: int = 500,
) -> tuple[Array, int]:
    """Preconditioned conjugate gradients for every column of ``b`` at once.

    Each column runs its own CG (own step lengths) on the shared operator; one ``apply``
    and one ``precondition`` per iteration serve all columns (a direct preconditioner
    solves them in one pass over its factor). A column stops at ‖r‖ ≤ rtol ‖b‖.

    Args:
        apply: x ↦ A x for blocks ``(n, k)``; A symmetric positive (semi)definite.
        precondition: r ↦ M⁻¹ r for blocks ``(n, k)``; M symmetric positive definite.
        b: Right-hand sides, ``(n,)`` or ``(n, k)``.
        rtol: Relative residual tolerance.
        max_iterations: Iterations before giving up.

    Returns:
        The solution (the shape of ``b``) and the iterations taken.

    Raises:
        RuntimeError: not converged in ``max_iterations``, or a non-positive curvature.
    """
    B = b[:, None] if b.ndim == 1 else b
    X = np.zeros_like(B)
    R = B.copy()
    limit = rtol * np.linalg.norm(B, axis=0)
    active = np.linalg.norm(R, axis=0) > limit
    if not active.any():
        return (X[:, 0] if b.ndim == 1 else X), 0
    Z = precondition(R)
    D = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    for iteration in range(1, max_iterations + 1):
        AD = apply(D[:, active])
        curvature = np.einsum("ij,ij->j", D[:, active], AD)
        if not (curvature > 0).all():
            raise RuntimeError("CG met a non-positive curvature: the tangent is not SPD.")
        alpha = rz[active] / curvature
        X[:, active] += alpha * D[:, active]
        R[:, active] -= alpha * AD
        active &= np.linalg.norm(R, axis=0) > limit
        if not active.any():
            return (X[:, 0] if b.ndim == 1 else X), iteration
        Z[:, active] = precondition(R[:, active])
        rz_new = np.einsum("ij,ij->j", R[:, active], Z[:, active])
        D[:, active] = Z[:, active] + (rz_new / rz[active]) * D[:, active]
        rz[active] = rz_new
    raise RuntimeError(f"CG did not converge in {max_iterations} iterations.")


def affine_solve(cell: Any, elastic: ElasticFactor, sigma0: Array, G: Array) -> tuple[Array, Array]:
    """The affine cell problem K_p w = −(SP)ᵀ (w (C_p G + σ₀)): (w, the right-hand side).

    One solve with the factored affine cell ``elastic``; ``sigma0`` ``(m, n)`` from its
    ``ElasticShortcut.predictor``.
    """
    clock = time.perf_counter()
    load = np.einsum("qij,j->qi", elastic.stiffness, G) + sigma0
    rhs = -(cell.strain_operator.T @ (cell.weights[:, None] * load).ravel())
    cell.lap("law", clock)
    wr: Array = cell.solve_reduced(rhs, elastic.ksp)
    return wr, rhs


def elastic_trial(
    cell: Any, elastic: ElasticFactor, sigma0: Array, G: Array, internal_row: Array, dt: float
) -> tuple[Any, Array]:
    """The elastic trial of a step: (the answer or None, the trial's reduced fluctuation).

    The answer is the cell's ``HistorySolution``. One solve with the factored affine cell; the laws' update at the trial strains decides:
    no point flowed (and the residual is at round-off, ≤ rtol (|Y| ‖⟨σ⟩‖ + ‖load‖)) → the
    answer, with the affine cell's tangent, ``method = "shortcut"``, 0 iterations.
    """
    wr, rhs = affine_solve(cell, elastic, sigma0, G)
    clock = time.perf_counter()
    weights, S = cell.weights[:, None], cell.strain_operator
    eps = cell.strains(G, wr)
    stress, _, sigma33, states, flowed = cell._update(eps, internal_row, dt)
    weighted = weights * stress
    norm = cell.free_norm(S.T @ weighted.ravel())
    total = cell.average_weights @ stress
    cell.lap("law", clock)
    if flowed:
        return None, wr
    limit = cell.rtol * (float(np.linalg.norm(total)) + float(np.linalg.norm(rhs)))
    if norm > limit and norm != 0.0:
        return None, wr  # round-off of an ill-conditioned cell: let the Newton polish it
    solution = cell._solution(
        total / cell.volume, elastic.tangent.copy(), wr, eps, states, sigma33, 0
    )
    return solution._replace(method="shortcut"), wr


TANGENT_RTOL = 1e-10
"""CG tolerance of the macro tangent's columns in Krylov mode (the tangent to ~1e-10)."""


def tangent_operator(cell: Any, tangent: Array) -> Callable[[Array], Array]:
    """X ↦ (SP)ᵀ w C_q (SP) x for blocks ``(n_unknowns, k)``: K_t without assembly.

    Under Neumann constraints the product is projected off their range (``free_part``):
    CG then runs in the constrained space, where the constrained preconditioner acts.
    """
    S, w = cell.strain_operator, cell.weights
    m, n = cell.n_points_q, tangent.shape[1]

    def apply(x: Array) -> Array:
        eps = (S @ x).reshape(m, n, -1)
        flux = w[:, None, None] * np.einsum("qij,qjk->qik", tangent, eps)
        out: Array = cell.free_part(S.T @ flux.reshape(m * n, -1))
        return out

    return apply


def krylov_solve(cell: Any, tangent: Array, rhs: Array, rtol: float, ksp: Any) -> tuple[Array, int]:
    """Solve K_t x = rhs by CG preconditioned with the elastic factorization ``ksp``.

    Raises:
        MicroNewtonError: CG did not converge (or K_t is not positive).
    """
    clock = time.perf_counter()
    try:
        x, iterations = pcg(
            tangent_operator(cell, tangent),
            lambda r: cell.solve_reduced(r, ksp),
            cell.free_part(rhs),
            rtol,
        )
    except RuntimeError as err:
        raise MicroNewtonError(f"micro Krylov solve failed: {err}") from err
    cell.lap("krylov", clock)
    return x, iterations


def krylov_tangent(cell: Any, tangent: Array, ksp: Any) -> tuple[Array, int]:
    """The consistent macro tangent with X = K_t⁻¹ B by block CG (no factorization)."""
    mean, load, load_average = cell.tangent_parts(tangent)
    X, steps = krylov_solve(cell, tangent, load, TANGENT_RTOL, ksp)
    return np.asarray(mean - load_average.T @ X / cell.volume, dtype=np.float64), steps
