"""The micro model of history cells: every macro point solved from its committed state.

``HistoryCellModel`` answers a batch of macro points with one ``HistoryCellProblem`` and
keeps their states in a ``StateStore`` (trial gradient and fluctuation written by
``respond``; ``commit`` and ``rollback`` called by the time stepping when the macro step
converged or failed on every rank; ``state_rows``/``set_state_rows`` for migration and
restart). The trial internal variables are not stored: ``commit`` recomputes them with the
cell's ``internal_after`` (the laws' update at the converged strain, the same operations on
the same numbers as the solve, so bitwise the rows the solve returned). Nor is the committed
fluctuation: the cell derives it from the committed gradient and row when a Newton starts
from it (``HistoryCellProblem.committed_fluctuation``).
"""

import time

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import MicroFailure, point_label
from hmm_fenics.micro.cell_problem import MicroResponse, check_finite
from hmm_fenics.micro.history import HistoryCellProblem
from hmm_fenics.micro.nonlinear import BatchProgress, MicroNewtonError
from hmm_fenics.micro.state import StateStore

Array = npt.NDArray[np.float64]


AVERAGES = ("stored_energy", "dissipation", "viscous_dissipation", "plastic_strain", "sigma33")
"""Cell averages a history model reports per point."""

SOLVE_COUNTS = ("newton", "shortcut", "predicted", "factorizations", "krylov_iterations")
"""What ``solve_counts`` counts over a step: micro points answered by the Newton, by the
elastic shortcut, by an accepted prediction (none for history cells), micro
factorizations and CG iterations."""


class HistoryCellModel:
    """One history cell answers every macro point of a template, each from its committed state.

    The states of the points live in a ``StateStore`` (created at the first ``respond`` with
    virgin states, or by ``set_state_rows``). Every ``respond`` solves each point from its
    committed row and writes the trial gradient and fluctuation; ``commit`` (which recomputes
    the trial internal variables from them) and ``rollback`` are called by the time stepping
    once the macro step has converged (or failed) on every rank.

    Attributes:
        cell: The history cell.
        store: The points' states (None before the first ``respond``).
        iterations: Micro Newton steps per point of the last ``respond``.
        last_costs: Seconds per point of the last ``respond``.
        solve_counts: ``SOLVE_COUNTS`` → totals over every ``respond`` since
            ``begin_step`` (the current attempt of the step).
        time, dt: End time and length of the current step (``begin_step``; dt = 1 before).
        commit_seconds: Wall time of the last ``commit`` (its recomputed return mappings).
    """

    def __init__(self, cell: HistoryCellProblem) -> None:
        self.cell = cell
        self.store: StateStore | None = None
        self.iterations: list[int] = []
        self.last_costs: Array | None = None
        self.time, self.dt = 0.0, 1.0
        self._trial_dt = 1.0  # the Δt the trial states were solved with
        self.commit_seconds = 0.0
        self.solve_counts = dict.fromkeys(SOLVE_COUNTS, 0)
        self._averages: dict[str, Array] = {}

    def state_width(self) -> int:
        """Floats per point of a committed row (gradient, internal variables: no fluctuation)."""
        cell = self.cell
        return cell.physics.n_components + cell.width_internal

    def trial_width(self) -> int:
        """Floats per point of a trial row (gradient, fluctuation: no internal variables)."""
        return self.cell.physics.n_components + self.cell.n_unknowns

    def _new_store(self, n_points: int) -> StateStore:
        cell = self.cell
        return StateStore(n_points, cell.width_internal, cell.n_unknowns, cell.physics.n_components)

    def begin_step(self, time: float, dt: float) -> None:
        """Set the step's end time and length (Δt > 0) for the rate-dependent laws."""
        if not dt > 0:
            raise ValueError(f"a time step must be positive, got dt = {dt}.")
        self.time, self.dt = float(time), float(dt)
        self.solve_counts = dict.fromkeys(SOLVE_COUNTS, 0)

    def commit(self) -> None:
        """The trial states of the last ``respond`` become committed.

        Their internal variables are recomputed from the committed ones at the trial strain
        (``HistoryCellProblem.internal_after`` with the Δt of that ``respond``): one return
        mapping per point, no solve.
        """
        started = time.perf_counter()
        if self.store is not None:
            cell, dt = self.cell, self._trial_dt
            self.store.commit(lambda G, w, row: cell.internal_after(G, w, row, dt))
        self.commit_seconds = time.perf_counter() - started

    def rollback(self) -> None:
        """Discard the trial states: the next ``respond`` starts again from the committed ones."""
        if self.store is not None:
            self.store.rollback()

    def state_rows(self) -> Array:
        """The committed state rows, ``(n_points, state_width())`` (empty before any state)."""
        if self.store is None:
            return np.zeros((0, self.state_width()))
        return self.store.rows()

    def state_view(self) -> Array:
        """The committed state rows read-only, without a copy (checkpoints, snapshots).

        Valid until the next ``commit`` or ``set_state_rows``; ``state_rows`` is the copy.
        """
        if self.store is None:
            return np.zeros((0, self.state_width()))
        return self.store.view()

    def set_state_rows(self, rows: Array) -> None:
        """Take the committed states of the points this rank now computes (migration, restart)."""
        store = self.store or self._new_store(0)
        store.set_rows(rows)
        self.store = store

    def take_state_rows(self, rows: Array) -> None:
        """As ``set_state_rows``, keeping ``rows`` itself (no copy; the caller hands it over).

        A migration's new rows: the store's old rows are released first, so the peak holds
        the old and the new rows once each.
        """
        store = self.store or self._new_store(0)
        store.set_rows(rows, copy=False)
        self.store = store

    def averages(self) -> dict[str, Array]:
        """Per-point cell averages of the last ``respond``: ``AVERAGES`` → ``(n_points,)``."""
        return {key: value.copy() for key, value in self._averages.items()}

    def respond(
        self,
        gradients: Array,
        points: Array,
        ids: npt.NDArray[np.int64] | None = None,
    ) -> MicroResponse:
        """Solve every point from its committed state; write the trial states.

        Raises:
            MicroNewtonError: a point failed (``.point`` is its position in the batch; the
                message names it by ``point_label``).
            ValueError: the batch size differs from the states held (migrate them first).
        """
        n_points, n = gradients.shape
        if self.store is None:
            self.store = self._new_store(n_points)
        store = self.store
        if store.n_points != n_points:
            raise ValueError(
                f"{n_points} points asked but {store.n_points} states held: move the states "
                "with the points (set_state_rows) before answering them."
            )
        flux, tangent = np.zeros((n_points, n)), np.zeros((n_points, n, n))
        averages = {key: np.zeros(n_points) for key in AVERAGES}
        self.iterations = []
        self.last_costs = np.zeros(n_points)
        committed = store.committed
        committed_gradients, internals = store.gradient(committed), store.internal(committed)
        self._trial_dt = self.dt
        progress = BatchProgress(n_points)
        for i, G in enumerate(gradients):
            started = time.perf_counter()
            if not np.isfinite(G).all():
                raise _failure(i, points, ids, f"non-finite macro gradient {G.tolist()}", None)
            try:
                solution = self.cell.solve(G, internals[i], committed_gradients[i], self.dt)
            except MicroFailure as err:
                what = f"macro gradient {np.round(G, 8).tolist()}"
                raise _failure(i, points, ids, what, err) from err
            store.write_trial(i, G, solution.fluctuation)  # internal_row: recomputed at commit
            flux[i], tangent[i] = solution.flux, solution.tangent
            for key in AVERAGES:
                averages[key][i] = getattr(solution, key)
            self.iterations.append(solution.iterations)
            counts = self.solve_counts
            counts[solution.method] += 1
            counts["factorizations"] += solution.factorizations
            counts["krylov_iterations"] += solution.krylov_iterations
            self.last_costs[i] = time.perf_counter() - started
            progress.point_started(i, started)
        self._averages = averages
        return check_finite(MicroResponse(flux, tangent), gradients, points, ids)


def _failure(
    i: int,
    points: Array,
    ids: npt.NDArray[np.int64] | None,
    what: str,
    cause: MicroFailure | None,
) -> MicroNewtonError:
    """The error naming point ``i`` of a batch (``.point`` = i)."""
    detail = (
        f": {cause}" if cause is not None else ": the macro Newton diverged; lower the load step."
    )
    error = MicroNewtonError(f"micro solve failed at {point_label(i, points, ids)}, {what}{detail}")
    error.point = i
    return error
