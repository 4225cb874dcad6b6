# petsc4py's stubs and DOLFINx's singledispatch in-place assemblers are stricter than what runs.
# mypy: disable-error-code="arg-type, misc, operator, index"
"""Nonlinear cell problems: a micro Newton solve per macro gradient, consistent tangent.

For a macro gradient G, find the fluctuation w = P x (P of the boundary condition,
``micro.boundary``; periodic by default) with Pᵀ r(G, w) = 0 (Neumann: up to the
multipliers of its constraints, ``MicroCore.free_norm``), where r is the
full residual vector ∫ σ(G + ∇ˢw) : ∇ˢφ_k. Newton: K_t = ∂r/∂w assembled, Pᵀ K_t P formed
by PtAP into the same matrix, MUMPS refactors numerically. At convergence, with U the
affine lifts of the unit gradients (as in ``cell_problem``):

    ⟨σ⟩ = Uᵀ r / |Y|                           (no extra form: r tested with the lifts)
    C_t = (Uᵀ K_t U − Bᵀ X) / |Y|,   B = −Pᵀ K_t U,   X = (Pᵀ K_t P)⁻¹ B

the exact derivative of ⟨σ⟩ with respect to G (the consistent macro tangent); X = dw/dG is
the lifting of the unit gradients at that state.

Error-controlled prediction (``NonlinearCellModel(predict=True)``): the cell is
path-independent, so any converged state (G*, w*) with its lifting X* predicts the
fluctuation of a nearby gradient to first order, w ≈ w* + X* (G − G*). One residual at the
prediction decides: if it meets the Newton's own criterion (the test of its iteration 0),
the prediction is the answer (flux from that residual); else the Newton continues from it
(a warm start). The tangent of an accepted prediction is the anchor's C_t(G*) when
‖G − G*‖ ≤ ``tangent_reuse`` ‖G*‖ (no factorization; error O(‖G − G*‖)), else it is formed
at the prediction (one factorization, exact).
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
from hmm_fenics.micro.core import MicroCore, cell_domain
from hmm_fenics.micro.sparse import to_csr
from hmm_fenics.physics import Physics
from hmm_fenics.rve.mesh import RVEMesh

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 3.0
"""A long micro batch logs its progress this often."""


class BatchProgress:
    """Logs "micro points i/n on this rank" at most every ``PROGRESS_SECONDS`` of a batch."""

    def __init__(self, n_points: int) -> None:
        self.n_points = n_points
        self.start = self.reported = time.perf_counter()

    def point_started(self, i: int, now: float) -> None:
        """Point ``i`` (0-based) started at ``now`` (``time.perf_counter``)."""
        if now - self.reported > PROGRESS_SECONDS:
            self.reported = now
            log.info(
                "micro points %d/%d on this rank (%.1f s)", i + 1, self.n_points, now - self.start
            )


class MicroNewtonError(MicroFailure):
    """A micro Newton solve that did not converge (``point``: see ``MicroFailure``)."""


class PointSolution(NamedTuple):
    """Converged micro state of one macro gradient.

    Attributes:
        flux: ⟨σ⟩, shape ``(n,)``.
        tangent: d⟨σ⟩/dG, shape ``(n, n)``.
        fluctuation: Reduced fluctuation (warm start for the next solve), ``(n_independent,)``.
        iterations: Newton steps taken.
        lifting: X = dw/dG at the state where ``tangent`` was formed, ``(n_independent, n)``
            (None when the tangent was reused, not formed).
        factorizations: Micro factorizations this solve took.
    """

    flux: npt.NDArray[np.float64]
    tangent: npt.NDArray[np.float64]
    fluctuation: npt.NDArray[np.float64]
    iterations: int
    lifting: npt.NDArray[np.float64] | None = None
    factorizations: int = 0


def nonlinear_cell_problem(
    physics: Physics,
    rve: RVEMesh,
    materials: Mapping[str, Material],
    degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
    rtol: float = 1e-10,
    max_iterations: int = 30,
    bc: str = "periodic",
    oversampling: float | None = None,
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
        bc: The micro boundary condition (``micro.boundary.BOUNDARY_CONDITIONS``).
        oversampling: Periods per axis of an oversampling window (``cell_problem``).
    """
    mesh, window = cell_domain(rve, bc, oversampling)
    laws = phase_laws(physics, mesh, materials, degree)
    return NonlinearCellProblem(
        physics, mesh, laws, degree, dict(petsc_options or {}), rtol, max_iterations, bc, window
    )


class NonlinearCellProblem(MicroCore):
    """Micro Newton on a cell; build it with :func:`nonlinear_cell_problem`.

    Attributes:
        V, periodic, P, U, Kr, ksp, timings: The micro core (``MicroCore``).
        w: The fluctuation the forms read (full space).
        G: The macro gradient constant (Mandel).
        residual_form, jacobian_form: The compiled forms of r and K_t = ∂r/∂w.
        average_forms: The same over a window's inner cell (oversampling), else None.
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
        bc: str = "periodic",
        window: Any = None,
    ) -> None:
        import ufl
        from dolfinx import fem
        from dolfinx.fem import petsc as fem_petsc

        super().__init__(physics, rve, degree, petsc_options, bc=bc, window=window)
        self.rtol, self.max_iterations, self.laws = rtol, max_iterations, laws
        mesh = rve.mesh
        self.w = fem.Function(self.V)
        self.G = fem.Constant(mesh, np.zeros(physics.n_components))
        dx = ufl.Measure("dx", domain=mesh, subdomain_data=rve.cell_tags)
        v, dw = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        eps = physics.from_mandel(self.G) + physics.gradient(self.w)

        def residual(weight: Any) -> Any:
            return sum(
                (
                    weight * ufl.inner(law(eps), physics.gradient(v)) * dx(tag)
                    for tag, law in laws.items()
                ),
                start=ufl.as_ufl(0) * dx,
            )

        self.residual_form = fem.form(residual(1.0))
        self.jacobian_form = fem.form(ufl.derivative(residual(1.0), self.w, dw))
        self.average_forms: tuple[Any, Any] | None = None
        if self.indicator is not None:
            inner = residual(self.indicator)
            self.average_forms = (
                fem.form(inner),
                fem.form(ufl.derivative(inner, self.w, dw)),
            )
        for stage in ("assemble", "ptap", "factor", "solve"):
            self.timings.setdefault(stage, 0.0)
        self._K = fem_petsc.create_matrix(self.jacobian_form)  # assembled in place each step
        self._r = fem_petsc.create_vector(self.V)

    def _residual(self, form: Any = None) -> npt.NDArray[np.float64]:
        """The full residual vector of ``form`` (default ``residual_form``) at ``w``."""
        from dolfinx.fem import petsc as fem_petsc

        start = time.perf_counter()
        with self._r.localForm() as local:
            local.set(0.0)
        fem_petsc.assemble_vector(self._r, self.residual_form if form is None else form)
        self.lap("assemble", start)
        return np.array(self._r.array, dtype=np.float64)

    def _average_residual(self, r: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The residual over the averaging domain (``r`` itself but for a window)."""
        return r if self.average_forms is None else self._residual(self.average_forms[0])

    def hill_mandel_of(
        self, gradient: npt.NDArray[np.float64], fluctuation: npt.NDArray[np.float64]
    ) -> float:
        """Relative Hill–Mandel residual (``MicroCore.hill_mandel``) of a solved state."""
        self.G.value[:] = gradient
        self.w.x.array[:] = self.P @ fluctuation
        r = self._average_residual(self._residual())
        return self.hill_mandel(np.asarray(gradient, dtype=np.float64), self.w.x.array, r)

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
        self,
        gradient: npt.NDArray[np.float64],
        start: npt.NDArray[np.float64] | None = None,
        reuse: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
    ) -> PointSolution:
        """Micro Newton for one macro gradient.

        Args:
            gradient: Shape ``(n,)`` (Mandel for elasticity).
            start: Reduced fluctuation to start from (a previous solution or a prediction),
                else zero.
            reuse: ``(tangent, lifting)`` to answer with if ``start`` already meets the
                tolerance (no factorization); else the tangent is formed at the answer.

        Raises:
            MicroNewtonError: no convergence in ``max_iterations`` steps.
        """
        self.G.value[:] = gradient
        wr = np.zeros(self.n_unknowns) if start is None else start.copy()
        self.w.x.array[:] = self.P @ wr
        first = None
        factorizations = self.factorizations
        for iteration in range(self.max_iterations + 1):
            r = self._residual()
            rr = self.P.T @ r
            norm = self.free_norm(rr)
            if not np.isfinite(norm):
                break  # a non-finite state: no Newton step can recover from it
            first = norm if first is None else first
            scale = float(np.linalg.norm(self.U.T @ r)) + first
            if norm <= self.rtol * scale or norm == 0.0:
                flux = self.U.T @ self._average_residual(r) / self.volume
                if iteration == 0 and reuse is not None:
                    return PointSolution(flux, reuse[0].copy(), wr, 0)
                tangent, lifting = self._tangent(self._factor())
                done = self.factorizations - factorizations
                return PointSolution(flux, tangent, wr, iteration, lifting, done)
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
        """The fluctuation of one macro gradient as a DOLFINx ``Function``.

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

    def _tangent(self, K: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """C_t and the lifting X = Kr⁻¹ B of the factored K_t (module docstring)."""
        KU = to_csr(K) @ self.U
        load = -(self.P.T @ KU)
        X = self.solve_reduced(load)
        if self.average_forms is not None:  # C_t = Uᵀ K_in (U + P X) / |Y_in|
            from dolfinx.fem import petsc as fem_petsc

            K_in = fem_petsc.assemble_matrix(self.average_forms[1])
            K_in.assemble()
            KU = to_csr(K_in) @ self.U
            K_in.destroy()
        tangent = np.asarray(self.U.T @ KU + KU.T @ (self.P @ X), dtype=np.float64) / self.volume
        return tangent, X


SOLVE_COUNTS = ("newton", "predicted", "factorizations")
"""What a nonlinear model's ``solve_counts`` count over a step: micro points answered by the
Newton, by an accepted prediction, and micro factorizations."""

TANGENT_REUSE = 1e-3
"""Default ``tangent_reuse``: an accepted prediction within this relative distance of its
anchor answers with the anchor's tangent (measured in bench/bench_fewer_solves.py)."""


class NonlinearCellModel:
    """A nonlinear micro solve per macro quadrature point, warm-started from the last one.

    With ``predict`` each point keeps an anchor: the gradient G_a, tangent C_a and lifting
    X_a = dw/dG of its last factored converged state. A new gradient G is first predicted,
    w = w* + X_a (G − G*) from the point's last converged (G*, w*), and checked by one
    residual (module docstring): accepted, it is the answer (the tangent C_a when
    ‖G − G_a‖ ≤ ``tangent_reuse`` ‖G_a‖, else formed at the prediction); else the Newton
    starts from it. The anchors cost ``n_points × n_unknowns × n`` floats (``anchor_bytes``),
    n times the warm starts; they are converged states of a path-independent cell, so a
    rollback keeps them.

    When a point's Newton fails (also from a prediction), it is retried from its last
    converged state, then with the gradient increment since that state applied in 2, 4, 8
    substeps, before the failure is reported.

    Args:
        cell: The nonlinear cell.
        substeps: Substep counts of the retries.
        predict: Error-controlled prediction on (settable).
        tangent_reuse: Relative distance below which an accepted prediction reuses the
            anchor's tangent (0: always form it, one factorization).

    Attributes:
        states, converged: Per point the last converged fluctuation and its gradient.
        iterations: Micro Newton steps per point of the last ``respond``.
        solve_counts: ``SOLVE_COUNTS`` → totals since the last ``commit``/``rollback`` (the
            current attempt of a step).
    """

    def __init__(
        self,
        cell: NonlinearCellProblem,
        substeps: tuple[int, ...] = (2, 4, 8),
        predict: bool = True,
        tangent_reuse: float = TANGENT_REUSE,
    ) -> None:
        self.cell, self.substeps = cell, substeps
        self.predict, self.tangent_reuse = predict, tangent_reuse
        self.states: npt.NDArray[np.float64] | None = None
        self.converged: npt.NDArray[np.float64] | None = None
        self.iterations: list[int] = []
        self.last_costs: npt.NDArray[np.float64] | None = None
        self.solve_counts = dict.fromkeys(SOLVE_COUNTS, 0)
        self._committed: tuple[Any, Any] = (None, None)  # (states, converged) at the last commit
        self._new_attempt = False
        self._anchors: tuple[Any, Any, Any] | None = None  # (G_a (nan: none), C_a, X_a)

    @property
    def anchor_bytes(self) -> int:
        """Memory of the prediction anchors held (0 without)."""
        return 0 if self._anchors is None else sum(a.nbytes for a in self._anchors)

    def reset(self) -> None:
        """Forget the per-point warm starts and anchors (the points were reassigned)."""
        self.states = self.converged = None
        self._committed = (None, None)
        self._anchors = None

    def commit(self) -> None:
        """The warm starts of the last ``respond`` become the ones a rolled-back step returns to."""
        self._committed = (_copy(self.states), _copy(self.converged))
        self._new_attempt = True

    def rollback(self) -> None:
        """Warm starts back to the last commit (a failed step's trial ones are dropped)."""
        self.states, self.converged = (_copy(a) for a in self._committed)
        self._new_attempt = True

    def warm_rows(self) -> npt.NDArray[np.float64]:
        """The committed warm starts, one row per point: gradient | fluctuation (checkpoints)."""
        states, converged = self._committed
        n = self.cell.physics.n_components
        if states is None:
            return np.zeros((0, n + self.cell.n_unknowns))
        return np.hstack([converged, states])

    def set_warm_rows(self, rows: npt.NDArray[np.float64]) -> None:
        """Take committed warm starts (rows as ``warm_rows``; a restart on the same points).

        The anchors are not part of them: they are rebuilt by the next solves.
        """
        n = self.cell.physics.n_components
        self.converged, self.states = rows[:, :n].copy(), rows[:, n:].copy()
        self._anchors = None
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
            self._anchors = None
        assert self.converged is not None
        if self.predict and self._anchors is None:
            self._anchors = (
                np.full((n_points, n), np.nan),
                np.zeros((n_points, n, n)),
                np.zeros((n_points, self.cell.n_unknowns, n)),
            )
            log.info("prediction anchors: %.1f MiB", self.anchor_bytes / 2**20)
        if self._new_attempt:
            self.solve_counts = dict.fromkeys(SOLVE_COUNTS, 0)
            self._new_attempt = False
        flux = np.zeros((n_points, n))
        tangent = np.zeros((n_points, n, n))
        self.iterations = []
        self.last_costs = np.zeros(n_points)
        progress = BatchProgress(n_points)
        for i, G in enumerate(gradients):
            started = time.perf_counter()
            factorizations = self.cell.factorizations
            solution, predicted = self._solve_point(i, G, points, ids)
            self.last_costs[i] = time.perf_counter() - started
            flux[i], tangent[i] = solution.flux, solution.tangent
            self.states[i], self.converged[i] = solution.fluctuation, G
            if self.predict and self._anchors is not None and solution.lifting is not None:
                anchor_G, anchor_C, anchor_X = self._anchors
                anchor_G[i], anchor_C[i], anchor_X[i] = G, solution.tangent, solution.lifting
            self.iterations.append(solution.iterations)
            self.solve_counts["predicted" if predicted else "newton"] += 1
            self.solve_counts["factorizations"] += self.cell.factorizations - factorizations
            progress.point_started(i, started)
        return check_finite(MicroResponse(flux, tangent), gradients, points, ids)

    def _prediction(
        self, i: int, G: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], Any] | None:
        """The predicted fluctuation of point i at G and the tangent to reuse (or None)."""
        if not self.predict or self._anchors is None:
            return None
        assert self.states is not None and self.converged is not None
        anchor_G, anchor_C, anchor_X = self._anchors
        if np.isnan(anchor_G[i, 0]):
            return None
        guess = self.states[i] + anchor_X[i] @ (G - self.converged[i])
        near = np.linalg.norm(G - anchor_G[i]) <= self.tangent_reuse * np.linalg.norm(anchor_G[i])
        return guess, (anchor_C[i], anchor_X[i]) if near else None

    def _solve_point(
        self,
        i: int,
        G: npt.NDArray[np.float64],
        points: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64] | None,
    ) -> tuple[PointSolution, bool]:
        """The point's solution and whether it was an accepted prediction."""
        assert self.states is not None and self.converged is not None
        if not np.isfinite(G).all():
            error = MicroNewtonError(
                f"non-finite macro gradient {G.tolist()} at {point_label(i, points, ids)}: the "
                "macro Newton diverged; lower the load step."
            )
            error.point = i
            raise error
        prediction = self._prediction(i, G)
        if prediction is not None:
            try:
                solution = self.cell.solve(G, *prediction)
                return solution, solution.iterations == 0
            except MicroFailure:
                pass  # a prediction far off: start again from the converged state
        try:
            return self.cell.solve(G, self.states[i]), False
        except MicroFailure as first:
            for k in self.substeps:
                state, previous = self.states[i].copy(), self.converged[i]
                try:
                    for j in range(1, k + 1):
                        solution = self.cell.solve(previous + (G - previous) * j / k, state)
                        state = solution.fluctuation
                    return solution, False
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
