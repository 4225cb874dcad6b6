"""Per-point micro states of one RVE template: committed rows and trial solutions, float64.

A macro point's committed state is one row of floats (design.md §8):

    | committed macro gradient (n_components) | internal |

``internal`` is the history cell's row (every history phase's quadrature points × its law's
internal variables, concatenated; ``micro.history``). The committed fluctuation is not
kept: the committed state is in equilibrium at its gradient and every law is affine where
it does not flow, so one solve with the cell's cached elastic factorization derives it from
the row to the micro Newton tolerance (``HistoryCellProblem.committed_fluctuation``), and
only when a Newton needs it as its start. Micro solves read the committed row and write a
trial one, which holds only what the solve converged to: the gradient and the fluctuation.
The trial internal variables are not kept either: they are the laws' update from the
committed ones at the trial strain (the cell's ``internal_after``), a function of what is
kept, so ``commit`` recomputes them row by row (a return mapping per point, no solve) and
writes them in place over the committed ones once the macro step has converged on every
rank (one row of extra memory, no second copy of the states);
``rollback`` forgets the trial rows. No object per point: two arrays, ``(n_points,
n_components + width_internal)`` and ``(n_points, n_components + n_unknowns)``, and a flag
per point.
"""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

InternalUpdate = Callable[[Array, Array, Array], Array]
"""(trial gradient ``(n_components,)``, trial fluctuation ``(n_unknowns,)``, committed
internal row ``(width_internal,)``, not modified) → the trial internal row."""


class StateStore:
    """Committed state rows and trial solutions of ``n_points`` macro points.

    Args:
        n_points: Macro points (rows).
        width_internal: Floats of internal variables per point.
        n_unknowns: Reduced fluctuation length of the cell.
        n_components: Macro gradient length (Mandel).

    Attributes:
        committed: The converged states (gradient, internal variables), ``(n_points, width)``.
        trial: The gradient and fluctuation of the current macro iteration per point,
            ``(n_points, n_components + n_unknowns)``; only rows flagged ``pending`` mean
            anything.
        pending: Which rows hold a trial written since the last commit or rollback,
            ``(n_points,)``.
    """

    def __init__(
        self, n_points: int, width_internal: int, n_unknowns: int, n_components: int
    ) -> None:
        if min(n_points, width_internal, n_unknowns, n_components) < 0:
            raise ValueError("a state store needs non-negative sizes.")
        self.n_components, self.n_unknowns = n_components, n_unknowns
        self.width_internal = width_internal
        self.width_trial = n_components + n_unknowns
        self.width = n_components + width_internal
        self.committed: Array = np.zeros((n_points, self.width))
        self.trial: Array = np.zeros((n_points, self.width_trial))
        self.pending = np.zeros(n_points, dtype=bool)

    @property
    def n_points(self) -> int:
        """Rows held."""
        return len(self.committed)

    @property
    def nbytes(self) -> int:
        """Bytes of the committed rows, the trial rows and the flags."""
        return int(self.committed.nbytes + self.trial.nbytes + self.pending.nbytes)

    def gradient(self, rows: Array) -> Array:
        """The gradient columns of ``rows`` (committed or trial; a view), ``(n, n_components)``."""
        return rows[:, : self.n_components]

    def fluctuation(self, rows: Array) -> Array:
        """The fluctuation columns of trial ``rows`` (a view), ``(n, n_unknowns)``."""
        return rows[:, self.n_components : self.width_trial]

    def internal(self, rows: Array) -> Array:
        """The internal-variable columns of committed ``rows`` (a view), ``(n, width_internal)``."""
        return rows[:, self.n_components :]

    def write_trial(self, i: int, gradient: Array, fluctuation: Array) -> None:
        """Row ``i``'s trial: the gradient and the fluctuation its solve converged to."""
        self.trial[i, : self.n_components] = gradient
        self.trial[i, self.n_components :] = fluctuation
        self.pending[i] = True

    def commit(self, internal_after: InternalUpdate) -> None:
        """The trial rows become committed; their internal variables by ``internal_after``.

        Rows without a trial since the last commit or rollback stay as they are. Row by row
        in place: the extra memory is one row (the committed internal row handed to
        ``internal_after``, which returns the new one), never a second copy of the states.
        Each row is written whole, then its trial is cleared: if ``internal_after`` raises
        at some row, the rows before it are committed and no longer pending, that row and
        the later ones are unchanged and still pending, so a second ``commit`` finishes the
        job as one uninterrupted commit would have. No all-or-nothing is needed: the update
        repeats the return mappings the converged solve did, on the same numbers, so it
        fails only when something is broken, and then the run stops (``stepping.march``
        raises the failure on every rank; a rollback would mix steps, and none is done). The
        last checkpoint on disk was written after an earlier step and stays consistent.
        """
        n = self.n_components
        for i in np.flatnonzero(self.pending):
            row = self.committed[i]
            G, w = self.trial[i, :n], self.trial[i, n : self.width_trial]
            row[n:] = internal_after(G, w, row[n:].copy())
            row[:n] = G
            self.pending[i] = False

    def rollback(self) -> None:
        """Discard the trial rows: the committed rows stay as they were."""
        self.pending[:] = False

    def rows(self) -> Array:
        """A copy of the committed rows, ``(n_points, width)``: later commits leave it."""
        return self.committed.copy()

    def view(self) -> Array:
        """The committed rows, read-only and without a copy, ``(n_points, width)``.

        For writers (checkpoints, snapshots) done before the next commit or ``set_rows``.
        """
        view = self.committed.view()
        view.flags.writeable = False
        return view

    def set_rows(self, rows: Array, copy: bool = True) -> None:
        """Replace every committed state by ``rows`` (no trial), resizing to ``len(rows)``.

        The old rows are released before the copy is made: the peak is the new rows and
        ``rows`` (plus the old rows while the caller holds them). With ``copy=False`` the
        store keeps ``rows`` itself when it is a writable C-ordered float64 array (the
        caller hands it over: a migration's new rows), with no copy at all.

        Raises:
            ValueError: ``rows`` is not ``(n, width)``.
        """
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"state rows must have shape (n, {self.width}), got {rows.shape}.")
        # the old rows go first: the copy then needs the memory of the new rows only
        self.committed = self.trial = np.zeros((0, 0))
        take = not copy and rows.flags.c_contiguous and rows.flags.writeable
        self.committed = rows if take else np.array(rows, dtype=np.float64, order="C", copy=True)
        self.trial = np.zeros((len(rows), self.width_trial))
        self.pending = np.zeros(len(rows), dtype=bool)
