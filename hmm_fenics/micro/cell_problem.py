# petsc4py's stubs reject the NumPy arrays and mpi4py communicators it accepts at run time.
# mypy: disable-error-code="arg-type, assignment, operator, index"
"""The linear cell problem: compiled once, factored once, queried for any gradient.

For a macro gradient G (Mandel vector) the micro field is u = u_G + w: u_G(y) = G·(y − O) is
the affine lift (interpolated exactly by Lagrange elements) and w the fluctuation of the
boundary condition (``micro.boundary``; periodic by default, pinned at the origin corner
O). With K the stiffness of the full space, P the prolongation of the boundary condition
(Neumann: with its constraints, see ``micro.core``) and U the nodal values of the affine
lifts of the unit gradients
(``n_full × n``), everything follows from K alone:

    lifting:      Pᵀ K P x = B G,   B = −Pᵀ K U               (one factorization, many G)
    restriction:  ⟨σ⟩ = ⟨C⟩ G − Bᵀ x / |Y|,   ⟨C⟩ = Uᵀ K U / |Y|

so C_hom = ⟨C⟩ − Bᵀ X / |Y| with X the fluctuations of all unit gradients. The
volume averages are recovered without any extra assembly; ``coupling.restriction`` checks
them against explicitly integrated fields (Hill–Mandel).
"""

import functools
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError, MicroFailure, point_label
from hmm_fenics.materials import NONLINEAR, Law, Material
from hmm_fenics.micro.core import (
    GAMG_THRESHOLD,
    OPTIONS_PREFIX,
    MicroCore,
    cell_domain,
    cell_name,
    check_converged,
    default_solver_options,
    set_up_solver,
    solid_phases,
    solve_columns,
)
from hmm_fenics.micro.sparse import times
from hmm_fenics.physics import Physics
from hmm_fenics.rve.mesh import RVEMesh

__all__ = [
    "GAMG_THRESHOLD",
    "OPTIONS_PREFIX",
    "CellProblem",
    "MicroResponse",
    "cell_name",
    "cell_problem",
    "check_converged",
    "check_finite",
    "default_solver_options",
    "phase_laws",
    "set_up_solver",
    "solve_columns",
]

DIRECT_RESIDUAL = 1e-8
"""Largest relative residual of a direct solve of the unit problems (MUMPS gives ~1e-14)."""


class MicroResponse(NamedTuple):
    """Volume-averaged micro response to a batch of macro gradients.

    Attributes:
        flux: Averaged flux/stress, shape ``(n_points, n_components)`` (Mandel for elasticity).
        tangent: d flux / d gradient, shape ``(n_points, n_components, n_components)``.
    """

    flux: npt.NDArray[np.float64]
    tangent: npt.NDArray[np.float64]


def phase_laws(
    physics: Physics, rve: RVEMesh, materials: Mapping[str, Material], degree: int
) -> dict[int, Law]:
    """Cell tag → UFL law of every meshed phase, after checking materials against phases.

    Raises:
        InputError: see ``core.solid_phases``.
    """
    solid = solid_phases(physics, rve, materials, degree)
    return {rve.phases[name]: material.law(rve.mesh, physics) for name, material in solid.items()}


def cell_problem(
    physics: Physics,
    rve: RVEMesh,
    materials: Mapping[str, Material],
    degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
    bc: str = "periodic",
    oversampling: float | None = None,
) -> "CellProblem":
    """Compile, assemble and factor the cell problem of ``rve`` under the boundary condition ``bc``.

    Args:
        physics: ``Diffusion`` or ``Elasticity`` of the RVE's dimension.
        rve: Periodic RVE mesh on ``MPI.COMM_SELF``.
        materials: Phase name → material, one per phase of ``rve.phases``.
        degree: Lagrange degree of the micro field.
        petsc_options: Options for the ``hmm_micro_`` solver, over ``default_solver_options``
            (which are chosen per problem: ``ksp_type`` and ``pc_type`` given here replace the
            whole default choice).
        bc: ``"periodic"``, ``"dirichlet"``, ``"neumann"`` or ``"oversampling"``
            (``micro.boundary``); the non-periodic ones give apparent tensors.
        oversampling: Periods per axis of the oversampling window (an odd whole number;
            ``bc = "oversampling"`` only, default ``core.DEFAULT_OVERSAMPLING``).

    Raises:
        InputError: a phase without material, a material for no phase, a dimension mismatch,
            an unknown ``bc`` or a bad ``oversampling``.
    """
    nonlinear = sorted(name for name, m in materials.items() if isinstance(m, NONLINEAR))
    if nonlinear:
        raise InputError(
            f"phase(s) {nonlinear} are nonlinear: use nonlinear_cell_problem (a micro Newton solve)."
        )
    mesh, window = cell_domain(rve, bc, oversampling)
    laws = phase_laws(physics, mesh, materials, degree)
    return CellProblem(physics, mesh, laws, degree, dict(petsc_options or {}), bc, window)


class CellProblem(MicroCore):
    """A factored cell problem; build it with :func:`cell_problem`.

    Attributes:
        physics, rve, laws, degree: What it was built from (laws: cell tag → UFL law).
        V, periodic, P, U, Kr, ksp: The micro core (``MicroCore``).
        dx: The cell measure with the phase tags.
        mean_tensor: ⟨C⟩ (Voigt average), shape ``(n, n)``.
        load: B = −Pᵀ K U, the lifting of the unit gradients, ``(n_independent, n)``.
        effective_tensor: C_hom from the energy of the unit fluctuations, shape ``(n, n)``
            (Mandel for elasticity); symmetric by construction. Oversampling: the inner
            cell's averaged flux (Uᵀ K_in (U + P X))/|Y_in|, not symmetric in general.
        flux_tensor: C_hom from the averaged fluxes ⟨C⟩ − BᵀX/|Y|; equal to
            ``effective_tensor`` up to the solve error (linear in it, where the energy form
            is quadratic): a check of the solve, not what ``query`` uses.
        hill_mandel_residual: ``MicroCore.hill_mandel`` of the unit solutions (round-off
            but for oversampling).
        timings: Seconds per set-up stage.
    """

    def __init__(
        self,
        physics: Physics,
        rve: RVEMesh,
        laws: dict[int, Law],
        degree: int,
        petsc_options: dict[str, Any],
        bc: str = "periodic",
        window: Any = None,
    ) -> None:
        import ufl
        from dolfinx import fem
        from dolfinx.fem import petsc as fem_petsc

        super().__init__(
            physics, rve, degree, petsc_options, iterative=True, spd=True, bc=bc, window=window
        )
        self.laws = laws
        clock = time.perf_counter()
        self.dx = ufl.Measure("dx", domain=rve.mesh, subdomain_data=rve.cell_tags)
        u, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        grad = physics.gradient

        def stiffness(weight: Any) -> Any:
            return sum(
                (
                    weight * ufl.inner(law(grad(u)), grad(v)) * self.dx(tag)
                    for tag, law in laws.items()
                ),
                start=ufl.as_ufl(0) * self.dx,
            )

        form = fem.form(stiffness(1.0))
        inner = None if self.indicator is None else fem.form(stiffness(self.indicator))
        clock = self.lap("compile", clock)

        K = fem_petsc.assemble_matrix(form)
        K.assemble()
        K_avg = K  # the stiffness of the averaging domain (a window's inner cell)
        if inner is not None:
            K_avg = fem_petsc.assemble_matrix(inner)
            K_avg.assemble()
        clock = self.lap("assemble", clock)
        KU = times(K, self.U)
        KU_avg = KU if inner is None else times(K_avg, self.U)
        volume = self.volume
        self.mean_tensor = self.U.T @ KU_avg / volume
        self.load = np.asfortranarray(-(self.P.T @ KU))  # F-ordered for the block solve
        load_average = -(self.P.T @ KU_avg)
        self.lap("ptap", clock)
        self.reduce(K)
        # A direct solver's factor is applied without the KSP layer; iterative ones use the KSP.
        self._factor = self.factor

        n = physics.n_components
        X = self.solve(self.load)  # timed as "solve" by the core
        clock = time.perf_counter()
        BX = self.load.T @ X
        # Two estimators of C_hom from the same fluctuations. The flux average ⟨C⟩ − BᵀX/|Y|
        # is what a query returns; its error is linear in the solve error. The energy
        # (Galerkin) form (U + PX)ᵀ K (U + PX)/|Y| is symmetric by construction and its error
        # is quadratic, so an iterative solve at rtol 1e-7 still gives C_hom to ~1e-14.
        KX = times(self.Kr, X)
        self.flux_tensor = self.mean_tensor - load_average.T @ X / volume
        if inner is None:
            self.effective_tensor = self.mean_tensor - (BX + BX.T - X.T @ KX) / volume
        else:  # the inner average is no energy of the window: no symmetric form
            self.effective_tensor = self.flux_tensor.copy()
        # no unknowns (a one-voxel cell) or no load (a homogeneous one): X = 0 is exact, and
        # the residual 0 rather than 0/0
        load_norm = max(float(np.linalg.norm(self.load)), np.finfo(float).tiny)
        residual = float(np.linalg.norm(self.free_part(KX - self.load))) / load_norm
        W = self.P @ X
        r = times(K_avg, self.U + W)  # kept small for hill_mandel_residual: few ask for it
        self._unit_sums = (r.T @ (self.U + W), self.U.T @ r)
        K.destroy()
        if inner is not None:
            K_avg.destroy()
        if self._factor is not None and not residual < DIRECT_RESIDUAL:
            raise MicroFailure(
                f"the direct solver's unit solutions of the {cell_name(rve)} have a relative "
                f"residual {residual:.2e} (an exact factorization gives round-off): an "
                "incomplete factorization (ilu/icc) given as a direct solver, or a numerically "
                "singular cell. Use lu/cholesky with MUMPS (the default), or an iterative "
                "ksp_type with that preconditioner."
            )
        if not (np.isfinite(X).all() and np.isfinite(self.effective_tensor).all()):
            raise MicroFailure(
                f"the {cell_name(rve)} gave a non-finite effective tensor: its stiffness is "
                "singular or the solver failed silently. Check that every phase has a positive, "
                "finite modulus (conductivity) and that the solid percolates; or try "
                "-hmm_micro_pc_type lu."
            )
        self._unit_fluctuations = X
        self._tangent = self.effective_tensor.copy()
        self._tangent.flags.writeable = False
        self.lap("solve", clock)
        self._n = n

    @functools.cached_property
    def hill_mandel_residual(self) -> float:
        """``MicroCore.hill_mandel`` of the unit solutions (round-off but for oversampling).

        Evaluated when first asked for: it assembles the gradient functional of the cell,
        which ``homogenize`` does not need otherwise (its checks integrate the fields).
        """
        energies, flux_sums = self._unit_sums
        W = self.P @ self._unit_fluctuations
        return self.hill_mandel_of_sums(np.eye(self._n), W, energies, flux_sums)

    def solve(self, rhs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Solve Pᵀ K P x = rhs with the stored factorization (or the iterative solver).

        Several right-hand sides are one MatMatSolve (one pass over the factors).

        Args:
            rhs: Right-hand sides, shape ``(n_independent, m)``.

        Returns:
            Reduced fluctuations, shape ``(n_independent, m)`` (a new array).

        Raises:
            MicroFailure: the iterative solver did not converge.
        """
        return self.solve_reduced(rhs)

    def query(self, gradients: npt.NDArray[np.float64]) -> MicroResponse:
        """Averaged flux and tangent for macro gradients, from the stored unit solutions.

        The cell is linear, so the flux of any gradient is the combination of the unit
        responses: ⟨σ⟩ = ⟨C⟩ G − Bᵀ X G / |Y| = C_hom G, with no solve per point. The
        energy form of C_hom (``effective_tensor``) is used for the flux and the tangent
        alike: the response is then exactly linear and its tangent consistent, also when
        the unit solutions come from an iterative solver (whose answer is not linear in
        the right-hand side), so a macro Newton reaches any tolerance.

        Args:
            gradients: Macro gradients, shape ``(n_points, n_components)`` or
                ``(n_components,)`` (Mandel for elasticity).

        Returns:
            ``MicroResponse`` with ``flux`` of shape ``(n_points, n_components)`` and a
            read-only ``tangent`` view of shape ``(n_points, n_components, n_components)``.
        """
        G = np.asarray(gradients, dtype=np.float64)
        if G.ndim == 1:
            G = G[None, :]
        if G.ndim != 2 or G.shape[1] != self._n:
            raise ValueError(f"gradients must have shape (n_points, {self._n}), got {G.shape}.")
        flux = G @ self._tangent.T
        tangent = np.broadcast_to(self._tangent, (len(G), self._n, self._n))
        return MicroResponse(flux, tangent)

    def fluctuation(self, gradient: npt.NDArray[np.float64]) -> Any:
        """The fluctuation w of one macro gradient as a DOLFINx ``Function``."""
        from dolfinx import fem

        G = np.asarray(gradient, dtype=np.float64).reshape(self._n)
        w = fem.Function(self.V)
        xr = self._unit_fluctuations @ G
        full = w.x.petsc_vec
        self.boundary.P.mult(PETSc.Vec().createWithArray(xr, comm=MPI.COMM_SELF), full)
        w.x.scatter_forward()
        return w


def check_finite(
    response: MicroResponse,
    gradients: npt.NDArray[np.float64],
    points: npt.NDArray[np.float64],
    ids: npt.NDArray[np.int64] | None = None,
) -> MicroResponse:
    """``response`` if every flux and tangent is finite, else a ``MicroFailure`` naming the point.

    Args:
        response: Flux ``(n, c)`` and tangent ``(n, c, c)`` of a batch.
        gradients: The batch's gradients ``(n, c)``.
        points: Their coordinates ``(n, gdim)``.
        ids: Their global indices, if known.
    """
    tangent = np.isfinite(response.tangent)  # (n, c, c); an empty batch is fine too
    bad = ~(
        np.isfinite(response.flux).all(axis=1)
        & tangent.reshape(len(tangent), int(np.prod(tangent.shape[1:]))).all(axis=1)
    )
    if bad.any():
        i = int(np.argmax(bad))
        error = MicroFailure(
            f"non-finite micro response at {point_label(i, points, ids)} for the macro gradient "
            f"{np.round(gradients[i], 8).tolist()} ({int(bad.sum())} point(s) in all): a "
            "non-finite macro gradient (a diverging macro Newton: lower the load step) or a "
            "failed micro solve."
        )
        error.point = i
        raise error
    return response
