# petsc4py's stubs and DOLFINx's singledispatch in-place assemblers are stricter than what runs.
# mypy: disable-error-code="arg-type, misc, operator, index"
"""Nonlinear cell problems: a micro Newton solve per macro gradient, consistent tangent.

For a macro gradient G, find the periodic fluctuation w with Pᵀ r(G, w) = 0, where r is the
full residual vector ∫ σ(G + ∇ˢw) : ∇ˢφ_k. Newton: K_t = ∂r/∂w assembled, Pᵀ K_t P formed
by PtAP into the same matrix, MUMPS refactors numerically. At convergence, with U the
affine lifts of the unit gradients (as in ``cell_problem``):

    ⟨σ⟩ = Uᵀ r / |Y|                           (no extra form: r tested with the lifts)
    C_t = (Uᵀ K_t U − Bᵀ X) / |Y|,   B = −Pᵀ K_t U,   X = (Pᵀ K_t P)⁻¹ B

the exact derivative of ⟨σ⟩ with respect to G (the consistent macro tangent).
"""

import logging
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import MicroFailure, point_label
from hmm_fenics.materials import Material
from hmm_fenics.micro.cell_problem import (
    MicroResponse,
    check_finite,
    phase_laws,
)
from hmm_fenics.micro.core import MicroCore
from hmm_fenics.micro.sparse import to_csr
from hmm_fenics.physics import Physics
from hmm_fenics.rve.mesh import RVEMesh

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 3.0
"""A long micro batch logs its progress this often."""


class MicroNewtonError(MicroFailure):
    """A micro Newton solve that did not converge (``point``: see ``MicroFailure``)."""


class PointSolution(NamedTuple):
    """Converged micro state of one macro gradient.

    Attributes:
        flux: ⟨σ⟩, shape ``(n,)``.
        tangent: d⟨σ⟩/dG, shape ``(n, n)``.
        fluctuation: Reduced fluctuation (warm start for the next solve), ``(n_independent,)``.
        iterations: Newton steps taken.
    """

    flux: npt.NDArray[np.float64]
    tangent: npt.NDArray[np.float64]
    fluctuation: npt.NDArray[np.float64]
    iterations: int


def nonlinear_cell_problem(
    physics: Physics,
    rve: RVEMesh,
    materials: Mapping[str, Material],
    degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
    rtol: float = 1e-10,
    max_iterations: int = 30,
) -> "NonlinearCellProblem":
    """Compile the residual and Jacobian of the cell once; solve per gradient later.

    Args:
        physics: ``Diffusion`` or ``Elasticity``.
        rve: Periodic RVE mesh on ``MPI.COMM_SELF``.
        materials: Phase → material (linear or nonlinear laws).
        degree: Lagrange degree.
        petsc_options: ``hmm_micro_`` options over the direct-solver defaults.
        rtol: Newton tolerance: ‖Pᵀ r‖ ≤ rtol (‖Uᵀ r‖ + ‖Pᵀ r₀‖).
        max_iterations: Newton steps before giving up (the caller may substep).
    """
    laws = phase_laws(physics, rve, materials, degree)
    return NonlinearCellProblem(
        physics, rve, laws, degree, dict(petsc_options or {}), rtol, max_iterations
    )


class NonlinearCellProblem(MicroCore):
    """Micro Newton on a periodic cell; build it with :func:`nonlinear_cell_problem`.

    Attributes:
        V, periodic, P, U, Kr, ksp, timings: The micro core (``MicroCore``).
        w: The fluctuation the forms read (full space).
        G: The macro gradient constant (Mandel).
        residual_form, jacobian_form: The compiled forms of r and K_t = ∂r/∂w.
    """

    def __init__(
        self,
        physics: Physics,
        rve: RVEMesh,
        laws: dict[int, Any],
        degree: int,
        petsc_options: dict[str, Any],
        rtol: float,
        max_iterations: int,
    ) -> None:
        import ufl
        from dolfinx import fem
        from dolfinx.fem import petsc as fem_petsc

        super().__init__(physics, rve, degree, petsc_options)
        self.rtol, self.max_iterations, self.laws = rtol, max_iterations, laws
        mesh = rve.mesh
        self.w = fem.Function(self.V)
        self.G = fem.Constant(mesh, np.zeros(physics.n_components))
        dx = ufl.Measure("dx", domain=mesh, subdomain_data=rve.cell_tags)
        v, dw = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        eps = physics.from_mandel(self.G) + physics.gradient(self.w)
        residual = sum(
            (ufl.inner(law(eps), physics.gradient(v)) * dx(tag) for tag, law in laws.items()),
            start=ufl.as_ufl(0) * dx,
        )
        self.residual_form = fem.form(residual)
        self.jacobian_form = fem.form(ufl.derivative(residual, self.w, dw))
        for stage in ("assemble", "ptap", "factor", "solve"):
            self.timings.setdefault(stage, 0.0)
        self._K = fem_petsc.create_matrix(self.jacobian_form)  # assembled in place each step
        self._r = fem_petsc.create_vector(self.V)

    def _residual(self) -> npt.NDArray[np.float64]:
        from dolfinx.fem import petsc as fem_petsc

        start = time.perf_counter()
        with self._r.localForm() as local:
            local.set(0.0)
        fem_petsc.assemble_vector(self._r, self.residual_form)
        self.lap("assemble", start)
        return np.array(self._r.array, dtype=np.float64)

    def _factor(self) -> Any:
        """Assemble K_t, form Pᵀ K_t P in place and refactor; return the full K_t."""
        from dolfinx.fem import petsc as fem_petsc

        start = time.perf_counter()
        K = self._K
        K.zeroEntries()
        fem_petsc.assemble_matrix(K, self.jacobian_form)
        K.assemble()
        self.lap("assemble", start)
        self.reduce(K)
        return K

    def solve(
        self, gradient: npt.NDArray[np.float64], start: npt.NDArray[np.float64] | None = None
    ) -> PointSolution:
        """Micro Newton for one macro gradient.

        Args:
            gradient: Shape ``(n,)`` (Mandel for elasticity).
            start: Reduced fluctuation to start from (a previous solution), else zero.

        Raises:
            MicroNewtonError: no convergence in ``max_iterations`` steps.
        """
        self.G.value[:] = gradient
        wr = np.zeros(self.n_unknowns) if start is None else start.copy()
        self.w.x.array[:] = self.P @ wr
        first = None
        for iteration in range(self.max_iterations + 1):
            r = self._residual()
            rr = self.P.T @ r
            norm = float(np.linalg.norm(rr))
            if not np.isfinite(norm):
                break  # a non-finite state: no Newton step can recover from it
            first = norm if first is None else first
            scale = float(np.linalg.norm(self.U.T @ r)) + first
            if norm <= self.rtol * scale or norm == 0.0:
                K = self._factor()
                return PointSolution(*self._average(r, K), wr, iteration)
            if iteration == self.max_iterations:
                break
            self._factor()
            wr = wr - self.solve_reduced(rr)
            self.w.x.array[:] = self.P @ wr
        raise MicroNewtonError(
            f"micro Newton did not converge in {self.max_iterations} steps for G = {np.round(gradient, 8).tolist()} "
            f"(|Pᵀr| = {norm:.3e}, start {norm if first is None else first:.3e})"
        )

    def fluctuation(self, gradient: npt.NDArray[np.float64], steps: int = 8) -> Any:
        """The periodic fluctuation of one macro gradient as a DOLFINx ``Function``.

        Solved from zero, in up to ``steps`` load increments if one step does not converge.
        """
        from dolfinx import fem

        G = np.asarray(gradient, dtype=np.float64)
        for k in (1, steps):
            state = None
            try:
                for j in range(1, k + 1):
                    state = self.solve(G * j / k, state).fluctuation
                break
            except MicroNewtonError:
                if k == steps:
                    raise
        w = fem.Function(self.V)
        w.x.array[:] = self.P @ state
        w.x.scatter_forward()
        return w

    def _average(
        self, r: npt.NDArray[np.float64], K: Any
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        volume = self.rve.volume
        KU = to_csr(K) @ self.U
        tangent = self.tangent(self.U.T @ KU / volume, -(self.P.T @ KU))
        return self.U.T @ r / volume, tangent


class NonlinearCellModel:
    """A nonlinear micro solve per macro quadrature point, warm-started from the last one.

    When a point's Newton fails, the gradient increment since its last converged state is
    applied in 2, 4, 8 substeps before the failure is reported.
    """

    def __init__(self, cell: NonlinearCellProblem, substeps: tuple[int, ...] = (2, 4, 8)) -> None:
        self.cell, self.substeps = cell, substeps
        self.states: npt.NDArray[np.float64] | None = None
        self.converged: npt.NDArray[np.float64] | None = None
        self.iterations: list[int] = []
        self.last_costs: npt.NDArray[np.float64] | None = None
        self._committed: tuple[Any, Any] = (None, None)  # (states, converged) at the last commit

    def reset(self) -> None:
        """Forget the per-point warm starts (the points were reassigned)."""
        self.states = self.converged = None
        self._committed = (None, None)

    def commit(self) -> None:
        """The warm starts of the last ``respond`` become the ones a rolled-back step returns to."""
        self._committed = (_copy(self.states), _copy(self.converged))

    def rollback(self) -> None:
        """Warm starts back to the last commit (a failed step's trial ones are dropped)."""
        self.states, self.converged = (_copy(a) for a in self._committed)

    def warm_rows(self) -> npt.NDArray[np.float64]:
        """The committed warm starts, one row per point: gradient | fluctuation (checkpoints)."""
        states, converged = self._committed
        n = self.cell.physics.n_components
        if states is None:
            return np.zeros((0, n + self.cell.n_unknowns))
        return np.hstack([converged, states])

    def set_warm_rows(self, rows: npt.NDArray[np.float64]) -> None:
        """Take committed warm starts (rows as ``warm_rows``; a restart on the same points)."""
        n = self.cell.physics.n_components
        self.converged, self.states = rows[:, :n].copy(), rows[:, n:].copy()
        self.commit()

    def respond(
        self,
        gradients: npt.NDArray[np.float64],
        points: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64] | None = None,
    ) -> MicroResponse:
        """Solve every point; a failure raises ``MicroNewtonError`` naming the point.

        A long batch reports its progress (points done / total on this rank) every few
        seconds in the log, which the command line shows on rank 0.
        """
        n_points, n = gradients.shape
        if self.states is None or len(self.states) != n_points:
            self.states = np.zeros((n_points, self.cell.n_unknowns))
            self.converged = np.zeros((n_points, n))
        assert self.converged is not None
        flux = np.zeros((n_points, n))
        tangent = np.zeros((n_points, n, n))
        self.iterations = []
        self.last_costs = np.zeros(n_points)
        batch_start = reported = time.perf_counter()
        for i, G in enumerate(gradients):
            started = time.perf_counter()
            solution = self._solve_point(i, G, points, ids)
            self.last_costs[i] = time.perf_counter() - started
            flux[i], tangent[i] = solution.flux, solution.tangent
            self.states[i], self.converged[i] = solution.fluctuation, G
            self.iterations.append(solution.iterations)
            if started - reported > PROGRESS_SECONDS:
                reported = started
                log.info(
                    "micro points %d/%d on this rank (%.1f s)",
                    i + 1,
                    n_points,
                    started - batch_start,
                )
        return check_finite(MicroResponse(flux, tangent), gradients, points, ids)

    def _solve_point(
        self,
        i: int,
        G: npt.NDArray[np.float64],
        points: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64] | None,
    ) -> PointSolution:
        assert self.states is not None and self.converged is not None
        if not np.isfinite(G).all():
            error = MicroNewtonError(
                f"non-finite macro gradient {G.tolist()} at {point_label(i, points, ids)}: the "
                "macro Newton diverged; lower the load step."
            )
            error.point = i
            raise error
        try:
            return self.cell.solve(G, self.states[i])
        except MicroFailure as first:
            for k in self.substeps:
                state, previous = self.states[i].copy(), self.converged[i]
                try:
                    for j in range(1, k + 1):
                        solution = self.cell.solve(previous + (G - previous) * j / k, state)
                        state = solution.fluctuation
                    return solution
                except MicroFailure:
                    continue
            error = MicroNewtonError(
                f"micro solve failed at {point_label(i, points, ids)}, macro gradient "
                f"{np.round(G, 8).tolist()}, also with {max(self.substeps)} load substeps: {first}"
            )
            error.point = i
            raise error from first


def _copy(array: Any) -> Any:
    return None if array is None else array.copy()


def finite_difference_tangent(
    flux_of: Any, gradient: npt.NDArray[np.float64], step: float = 1e-6
) -> npt.NDArray[np.float64]:
    """Central-difference tangent d flux/dG of ``flux_of(G) -> (n,)`` at ``gradient``.

    Use it to check a consistent tangent: the error is O(step²) plus round-off/step.
    """
    G = np.asarray(gradient, dtype=np.float64)
    n = len(G)
    columns = []
    for j in range(n):
        e = np.zeros(n)
        e[j] = step
        columns.append((flux_of(G + e) - flux_of(G - e)) / (2 * step))
    return np.array(columns).T
